"""Anchors: the ``mlgate.ledger.head`` tags (``SEQ:HASH``) that ``record`` writes on model versions.

A ledger rewritten from some entry on (every later hash recomputed) still chains; the anchors,
kept in another system (MLflow), do not move with it, so ``audit verify`` catches the rewrite.

Each anchor names its ledger by the ledger's identity (``mlgate.ledger``: the random
``ledger_id`` in the first entry) and says where that ledger was (``mlgate.ledger.location``).
Verification finds the anchors three ways, so that neither emptying the ledger nor rewriting it
under a new identity hides them:

* by the ledger's identity (a copy, an export or a moved file finds its anchors);
* by the ledger's location (a ledger emptied, deleted or re-created under a new identity where
  the anchored one was);
* by the registered models whose versions the ledger says it approved (one search per model).

:func:`check` then refuses every anchor the ledger does not contain or contradicts. What stays
undetectable: a ledger that was never anchored, and a rewritten copy handed over elsewhere that
names no anchored version (it then verifies with "0 anchors checked" and a warning;
``--require-anchors`` refuses it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgate import tags
from mlgate.ledger.base import TamperedError, VerifyResult, model_name

if TYPE_CHECKING:
    from mlgate.ledger.base import Ledger
    from mlgate.lineage.mlflow import MlflowClient, ModelVersion


HEAD_TAG = tags.LEDGER_HEAD
LEDGER_TAG = tags.LEDGER  # which ledger the anchor belongs to (its identity)
LOCATION_TAG = tags.LEDGER_LOCATION  # where that ledger was when the tag was written
_ANCHOR = re.compile(r"^([1-9][0-9]{0,17}):([0-9a-f]{64})$")


def parse_anchor(value: str) -> tuple[int, str] | None:
    match = _ANCHOR.match(value.strip())
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass(frozen=True)
class Anchor:
    """The anchor tags of one model version, as MLflow holds them."""

    model: str  # models:/NAME/VERSION
    value: str  # the mlgate.ledger.head tag as written
    ledger: str | None  # mlgate.ledger: the identity of the ledger it belongs to
    location: str | None  # mlgate.ledger.location

    @property
    def parsed(self) -> tuple[int, str] | None:
        return parse_anchor(self.value)

    @property
    def where(self) -> str:
        """The version, and the malformed value when the tag is not ``SEQ:HASH``."""
        return self.model if self.parsed else f"{self.model} (malformed tag {self.value[:80]!r})"

    def describe(self) -> str:
        return f"ledger {self.ledger or '(none)'} at {self.location or '(no location tag)'}"


def _version_anchor(mv: ModelVersion) -> Anchor | None:
    value = mv.tags.get(HEAD_TAG)
    if value is None:
        return None
    return Anchor(f"models:/{mv.label}", value, mv.tags.get(LEDGER_TAG) or None, mv.tags.get(LOCATION_TAG) or None)


def collect(versions: Iterable[ModelVersion]) -> list[Anchor]:
    """The anchors among MLflow model-version records."""
    return [anchor for anchor in map(_version_anchor, versions) if anchor is not None]


def by_seq(anchors: Iterable[Anchor]) -> dict[int, list[tuple[str, str]]]:
    """``seq -> [(where, hash)]`` for :func:`~mlgate.ledger.base.verify_lines` (a malformed tag never matches)."""
    result: dict[int, list[tuple[str, str]]] = {}
    for anchor in anchors:
        parsed = anchor.parsed
        seq, digest = parsed if parsed else (1, "malformed")
        result.setdefault(seq, []).append((anchor.where, digest))
    return result


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def search(client: MlflowClient, query: str) -> list[Anchor]:
    """Every anchored version matching ``query``: one paged search (the client bounds the paging, exit 3)."""
    return collect(client.search_model_versions(filter=query))


def anchor_name(ledger: Ledger) -> str:
    """The value of ``mlgate.ledger`` for ``ledger``: its ``ledger_id`` (its location for a ledger without one)."""
    return ledger.identity() or ledger.location


def client_from_env() -> MlflowClient | None:
    """The MLflow client of MLFLOW_TRACKING_URI (None when it is not set: no anchors)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    from mlgate.lineage.mlflow import MlflowClient

    return MlflowClient.from_env()


def find(
    client: MlflowClient, *, identity: str | None, locations: Iterable[str] = (), models: Iterable[str] = ()
) -> list[Anchor]:
    """The anchors of ledger ``identity``, at ``locations``, and on versions of ``models`` (deduplicated).

    One paged search per filter and per registered model, never one request per entry.
    """
    head = f"tags.`{HEAD_TAG}` LIKE '%'"
    queries = []
    if identity:
        queries.append(f"tags.`{LEDGER_TAG}` = {_quote(identity)} AND {head}")
    queries += [f"tags.`{LOCATION_TAG}` = {_quote(location)} AND {head}" for location in dict.fromkeys(locations)]
    queries += [f"name = {_quote(name)} AND {head}" for name in sorted(set(models))]
    unique: dict[str, Anchor] = {}
    for query in queries:
        for anchor in search(client, query):
            unique.setdefault(anchor.model, anchor)
    return list(unique.values())


def read_anchors(name: str, client: MlflowClient | None = None) -> dict[int, list[tuple[str, str]]]:
    """Anchors of the ledger called ``name`` (see :func:`anchor_name`) by seq; none without MLFLOW_TRACKING_URI."""
    client = client or client_from_env()
    if client is None:
        return {}
    return by_seq(a for a in find(client, identity=name) if a.ledger == name)


def recorded_model_names(result: VerifyResult) -> list[str]:
    """The registered models whose versions the ledger records as approved or rolled back to."""
    names = {model_name(r.model) for r in result.recorded.values()}
    return sorted(n for n in names if n)


def _tampered(message: str, result: VerifyResult, seq: int | None = None) -> TamperedError:
    return TamperedError(message, line=seq if seq is not None else result.entries + 1, seq=seq)


def _check_own(anchor: Anchor, result: VerifyResult) -> None:
    """An anchor of this very ledger: it must name an anchoring entry of this version, with this hash."""
    parsed = anchor.parsed
    if parsed is None:
        raise _tampered(f"{anchor.model}: tag {HEAD_TAG} is malformed ({anchor.value[:80]!r})", result)
    seq, digest = parsed
    if seq > result.entries:
        end = f"ends at seq {result.entries}" if result.entries else "is empty"
        raise _tampered(f"anchor on {anchor.model} names entry seq {seq}, but the ledger {end} "
                        "(entries were removed)", result, seq)
    entry = result.recorded.get(seq)
    if entry is None:
        raise _tampered(f"anchor on {anchor.model} names entry seq {seq}, which records no approval "
                        "(the ledger was rewritten, or the tag was forged)", result, seq)
    if entry.hash != digest:
        raise _tampered(f"entry seq {seq}: anchor on {anchor.model} says hash {digest}, the ledger has "
                        f"{entry.hash} (the ledger was rewritten)", result, seq)
    if entry.model != anchor.model:
        raise _tampered(f"anchor on {anchor.model} names entry seq {seq}, which records {entry.model!r}, "
                        "not this version (the ledger was rewritten, or the tag was copied)", result, seq)


def check(anchors: Sequence[Anchor], result: VerifyResult, *, identity: str | None, locations: Sequence[str],
          what: str) -> int:
    """Refuse the anchors ``result`` (a verified ledger called ``what``) does not contain or contradicts.

    ``identity`` is the ledger's name in the anchors (its ``ledger_id``), ``locations`` the names
    of where it is (none for a copy without one). Returns how many anchors of this ledger matched.
    """
    recorded = result.recorded_models
    matched = 0
    for anchor in anchors:
        if identity is not None and anchor.ledger == identity:
            _check_own(anchor, result)
            matched += 1
            continue
        state = f"has the identity {identity}" if identity else "is empty" if not result.entries else "has no identity"
        if anchor.location is not None and anchor.location in locations:
            raise _tampered(
                f"{anchor.model} carries the anchor {anchor.value[:80]} of ledger {anchor.ledger or '(none)'}, "
                f"written at this ledger's location, but {what} {state}: the ledger at {anchor.location} was "
                "emptied, replaced or re-created",
                result,
            )
        mine = recorded.get(anchor.model)
        if mine is not None:
            raise _tampered(
                f"{what} records the {'approval' if mine.event == 'approved' else 'rollback'} of {anchor.model} "
                f"at seq {mine.seq}, but MLflow's anchor on that "
                f"version ({anchor.value[:80]}) belongs to {anchor.describe()}, which is not this ledger "
                "(the ledger was rewritten under another identity, or the version was recorded in another ledger)",
                result,
                mine.seq,
            )
    return matched
