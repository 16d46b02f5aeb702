"""The audit ledger interface: append-only, hash-chained entries behind one abstract class.

Every entry is one line of canonical JSON (sorted keys, no spaces, UTF-8) carrying ``seq``,
``prev`` (the previous entry's hash; 64 zeros for the first), ``time``, ``event``, the model
ref, actor, approvers, evidence digest, CI run URL and ``hash``: the SHA-256 of the canonical
JSON of the entry *without* its ``hash`` key. Verification hashes the stored bytes themselves
(the line minus its hash member), so a change of any single byte anywhere breaks the line's
JSON, its own hash, or the next entry's ``prev``; rewriting the whole chain from some entry on
is caught by the anchors (``mlgate.ledger.head`` tags written on model versions).

Back-ends (``file``, ``azure-blob``) only store and stream lines; ``seq``/``prev``/``hash``
are computed here, under the back-end's concurrency control (a file lock, or a conditional
append on the blob), so two writers neither lose nor fork entries.
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlgate.errors import EvaluationError, RefusedError
from mlgate.integrity.manifest import canonical_json

GENESIS = "0" * 64
FORMAT_VERSION = 1
LEDGER_ID = "ledger_id"  # key in seq 1's details: the ledger's identity wherever it is stored
EVENTS = ("sealed", "gated", "approved", "rolled_back", "refused")  # `approved` is written after the deployment


def utc_now() -> str:
    """Current time as ISO 8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_HASH_MATCH = re.compile(r"[0-9a-f]{64}").fullmatch
_DECODE = json.JSONDecoder().decode


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and _HASH_MATCH(value) is not None


@dataclass(frozen=True)
class Draft:
    """What a caller wants recorded; the ledger adds ``seq``, ``prev``, ``time`` and ``hash``."""

    event: str
    model: str | None = None
    stage: str | None = None
    actor: str | None = None
    approvers: list[dict[str, Any]] = field(default_factory=list)
    evidence_sha256: str | None = None
    run_url: str | None = None
    key: str | None = None  # idempotency key: an entry with the same key is never added twice
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown ledger event {self.event!r}")


@dataclass(frozen=True)
class Entry:
    """One stored, chained ledger entry."""

    data: Mapping[str, Any]

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    @property
    def hash(self) -> str:
        return str(self.data["hash"])

    @property
    def prev(self) -> str:
        return str(self.data["prev"])

    @property
    def event(self) -> str:
        return str(self.data["event"])

    @property
    def key(self) -> str | None:
        value = self.data.get("key")
        return value if isinstance(value, str) else None

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def line(self) -> bytes:
        return canonical_json(dict(self.data)) + b"\n"

    @property
    def anchor(self) -> str:
        """The value written to the ``mlgate.ledger.head`` model version tag: ``SEQ:HASH``."""
        return f"{self.seq}:{self.hash}"


def entry_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an entry without its ``hash`` key."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def chain(draft: Draft, previous: Entry | None, *, time: str | None = None) -> Entry:
    """Build the entry that follows ``previous`` (None: the first entry).

    The first entry's details carry a random ``ledger_id``: the ledger's identity, which the
    anchors on model versions name, so a copy, an export or a moved file finds its anchors.
    """
    details = dict(draft.details)
    if previous is None:
        details.setdefault(LEDGER_ID, uuid.uuid4().hex)
    body: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "seq": previous.seq + 1 if previous else 1,
        "prev": previous.hash if previous else GENESIS,
        "time": time or utc_now(),
        "event": draft.event,
        "model": draft.model,
        "stage": draft.stage,
        "actor": draft.actor,
        "approvers": list(draft.approvers),
        "evidence_sha256": draft.evidence_sha256,
        "run_url": draft.run_url,
        "key": draft.key,
        "details": details,
    }
    body["hash"] = entry_hash(body)
    return Entry(body)


def ledger_id(first: Entry) -> str | None:
    """The ``ledger_id`` recorded in a ledger's first entry, if any."""
    details = first.get("details")
    value = details.get(LEDGER_ID) if isinstance(details, dict) else None
    return value if isinstance(value, str) and value else None


class TamperedError(RefusedError):
    """The ledger's chain does not verify (exit 1)."""

    def __init__(self, message: str, *, line: int, seq: int | None) -> None:
        super().__init__(
            message,
            hint="the ledger was changed after it was written; restore it from a trusted copy "
            "(an export, or the store's versioning/soft delete) and investigate who changed it",
        )
        self.line = line
        self.seq = seq


def _body_bytes(raw: bytes, claimed: str) -> bytes | None:
    """The stored line without its top-level ``hash`` member: the bytes the hash covers.

    Canonical JSON has no insignificant bytes, so hashing the stored bytes (rather than a
    re-serialisation) makes any change of any byte outside the hash member change the hash.
    Returns None when the member does not occur exactly once (then the slow path re-serialises).
    """
    member = b'"hash":"' + claimed.encode("ascii") + b'"'
    if raw.count(member) != 1:
        return None
    at = raw.index(member)
    end = at + len(member)
    if raw[at - 1 : at] == b",":
        return raw[: at - 1] + raw[end:-1]
    if raw[end : end + 1] == b"," and raw[at - 1 : at] == b"{":
        return raw[:at] + raw[end + 1 : -1]
    if raw[at - 1 : at] == b"{" and raw[end : end + 1] == b"}":
        return raw[:at] + raw[end:-1]
    return None


def parse_line(raw: bytes, *, line: int) -> Entry:
    """Parse and self-check one stored line (not its link to the previous one).

    Raises :class:`TamperedError` naming the line when it is not a JSON entry whose ``hash`` is
    the SHA-256 of its own bytes without the hash member (for a line mlgate wrote, that is the
    canonical JSON of the entry without ``hash``).
    """
    if not raw.endswith(b"\n"):
        raise TamperedError(f"line {line}: incomplete last line (no newline)", line=line, seq=None)
    try:
        data = _DECODE(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise TamperedError(f"line {line}: not valid JSON ({exc})", line=line, seq=None) from exc
    if not isinstance(data, dict):
        raise TamperedError(f"line {line}: not a JSON object", line=line, seq=None)
    seq = data.get("seq")
    seq_i = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    claimed = data.pop("hash", None)
    if not _is_hash(claimed):
        raise TamperedError(f"line {line} (seq {seq}): missing or malformed hash", line=line, seq=seq_i)
    for name in ("prev",):
        if not _is_hash(data.get(name)):
            raise TamperedError(f"line {line} (seq {seq}): missing or malformed {name}", line=line, seq=seq_i)
    if seq_i is None or seq_i < 1:
        raise TamperedError(f"line {line}: seq must be a positive integer", line=line, seq=None)
    if not isinstance(data.get("event"), str) or not isinstance(data.get("time"), str):
        raise TamperedError(f"line {line} (seq {seq}): event and time must be strings", line=line, seq=seq_i)
    body = _body_bytes(raw, claimed)
    if body is None:  # the hash member is not where the canonical form puts it
        body = canonical_json(data)
        data["hash"] = claimed
        if canonical_json(data) + b"\n" != raw:
            raise TamperedError(
                f"line {line} (seq {seq}): bytes differ from the entry's canonical form", line=line, seq=seq_i
            )
    else:
        data["hash"] = claimed
    actual = hashlib.sha256(body).hexdigest()
    if actual != claimed:
        raise TamperedError(
            f"line {line} (seq {seq}): content does not match its hash (expected {claimed}, got {actual})",
            line=line,
            seq=seq_i,
        )
    return Entry(data)


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    head: Entry | None
    anchors_checked: int = 0


def verify_lines(
    lines: Iterable[bytes], *, anchors: Mapping[int, Iterable[tuple[str, str]]] | None = None
) -> VerifyResult:
    """Stream ``lines`` and check every entry and link; raise :class:`TamperedError` at the first bad one.

    ``anchors`` maps a ``seq`` to ``(where, hash)`` pairs recorded outside the ledger (model
    version tags); each must name an entry that exists with exactly that hash.
    """
    pending = {seq: list(items) for seq, items in (anchors or {}).items()}
    checked = 0
    previous: Entry | None = None
    count = 0
    expected_seq, expected_prev = 1, GENESIS
    for number, raw in enumerate(lines, start=1):
        entry = parse_line(raw, line=number)
        data = entry.data
        if data["seq"] != expected_seq:
            raise TamperedError(
                f"line {number} (seq {entry.seq}): expected seq {expected_seq} "
                "(an entry was removed, inserted or reordered)",
                line=number,
                seq=entry.seq,
            )
        if data["prev"] != expected_prev:
            raise TamperedError(
                f"line {number} (seq {entry.seq}): prev does not match the previous entry's hash "
                f"(expected {expected_prev}, got {entry.prev})",
                line=number,
                seq=entry.seq,
            )
        if pending:
            for where, digest in pending.pop(expected_seq, ()):
                checked += 1
                if digest != entry.hash:
                    raise TamperedError(
                        f"line {number} (seq {entry.seq}): anchor on {where} says hash {digest}, "
                        f"the ledger has {entry.hash} (the ledger was rewritten)",
                        line=number,
                        seq=entry.seq,
                    )
        previous = entry
        count = number
        expected_seq, expected_prev = expected_seq + 1, data["hash"]
    if pending:
        seq = min(pending)
        where = pending[seq][0][0]
        raise TamperedError(
            f"anchor on {where} names entry seq {seq}, but the ledger ends at seq {count} "
            "(entries were removed)",
            line=count + 1,
            seq=seq,
        )
    return VerifyResult(entries=count, head=previous, anchors_checked=checked)


class LedgerUnavailable(EvaluationError):
    """The ledger store could not be read or written (exit 3)."""


class Ledger(abc.ABC):
    """An append-only, hash-chained store of audit entries."""

    #: a short, secret-free description of where the ledger lives (for messages)
    location: str = "ledger"

    @abc.abstractmethod
    def append(self, draft: Draft) -> tuple[Entry, bool]:
        """Chain and store ``draft``; return ``(entry, created)``.

        When ``draft.key`` is set and an entry with that key exists, nothing is written and
        that existing entry is returned with ``created=False`` (re-runs add no duplicate).
        """

    @abc.abstractmethod
    def lines(self) -> Iterator[bytes]:
        """Stream the stored lines, oldest first, each ending with ``\\n`` (except a torn tail)."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store holds a ledger at all."""

    def identity(self) -> str | None:
        """The ``ledger_id`` in the first entry (None: an empty ledger or a first entry without one)."""
        lines = self.lines()
        try:
            first = next(lines, None)
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()
        return ledger_id(parse_line(first, line=1)) if first is not None else None

    def entries(self) -> Iterator[Entry]:
        """Stream the entries, checking each line and link as it goes (tampering raises)."""
        previous: Entry | None = None
        for number, raw in enumerate(self.lines(), start=1):
            entry = parse_line(raw, line=number)
            if entry.seq != (previous.seq + 1 if previous else 1) or entry.prev != (
                previous.hash if previous else GENESIS
            ):
                raise TamperedError(
                    f"line {number} (seq {entry.seq}): broken chain; run `mlgate audit verify`",
                    line=number,
                    seq=entry.seq,
                )
            previous = entry
            yield entry

    def verify(self, *, anchors: Mapping[int, Iterable[tuple[str, str]]] | None = None) -> VerifyResult:
        return verify_lines(self.lines(), anchors=anchors)


def find_key(lines: Iterable[bytes], key: str) -> tuple[Entry | None, Entry | None]:
    """Scan ``lines`` for an entry with ``key``; return ``(match, last entry)``.

    Candidate lines and the last line are fully self-checked, so a tampered tail is never
    appended to silently.
    """
    needle = json.dumps(key, ensure_ascii=False).encode("utf-8")
    match: Entry | None = None
    last_raw: bytes | None = None
    last_number = 0
    for number, raw in enumerate(lines, start=1):
        if match is None and needle in raw:
            entry = parse_line(raw, line=number)
            if entry.key == key:
                match = entry
        last_raw, last_number = raw, number
    last = parse_line(last_raw, line=last_number) if last_raw is not None else None
    return match, last
