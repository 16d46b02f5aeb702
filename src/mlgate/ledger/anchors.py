"""Anchors: the ``mlgate.ledger.head`` tags (``SEQ:HASH``) that ``record`` writes on model versions.

A ledger rewritten from some entry on (every later hash recomputed) still chains; the anchors,
kept in another system (MLflow), do not move with it, so ``audit verify`` catches the rewrite.

Each anchor names its ledger by the ledger's identity (the random ``ledger_id`` in the first
entry), never by where the ledger is stored: a copy, an export or a moved file finds the same
anchors. Without any anchor, a ledger rewritten in full cannot be told from the original.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlgate.ledger.base import Ledger
    from mlgate.lineage.mlflow import MlflowClient, ModelVersion


HEAD_TAG = "mlgate.ledger.head"
LEDGER_TAG = "mlgate.ledger"  # which ledger the anchor belongs to (its identity)
LOCATION_TAG = "mlgate.ledger.location"  # where that ledger was when the tag was written (informational)
MAX_PAGES = 1000
_ANCHOR = re.compile(r"^([1-9][0-9]*):([0-9a-f]{64})$")


def parse_anchor(value: str) -> tuple[int, str] | None:
    match = _ANCHOR.match(value.strip())
    return (int(match.group(1)), match.group(2)) if match else None


def collect(versions: Iterable[ModelVersion]) -> dict[int, list[tuple[str, str]]]:
    """Anchors from MLflow model-version records.

    A malformed tag value is itself recorded as an anchor that cannot match (seq 0 is never
    valid), so it fails verification instead of being ignored.
    """
    anchors: dict[int, list[tuple[str, str]]] = {}
    for mv in versions:
        value = mv.tags.get(HEAD_TAG)
        if value is None:
            continue
        where = f"models:/{mv.label}"
        parsed = parse_anchor(value)
        if parsed is None:
            anchors.setdefault(1, []).append((f"{where} (malformed tag {value[:80]!r})", "malformed"))
            continue
        anchors.setdefault(parsed[0], []).append((where, parsed[1]))
    return anchors


def anchor_name(ledger: Ledger) -> str:
    """The value of ``mlgate.ledger`` for ``ledger``: its ``ledger_id`` (its location for a ledger without one)."""
    return ledger.identity() or ledger.location


def read_anchors(name: str, client: MlflowClient | None = None) -> dict[int, list[tuple[str, str]]]:
    """Anchors of the ledger called ``name`` (see :func:`anchor_name`); none without MLFLOW_TRACKING_URI.

    Model versions carry ``mlgate.ledger`` (the ledger's identity) next to the head, so
    several ledgers (a developer's file, the pipelines' blob) can share one MLflow. One
    ``model-versions/search`` with a tag filter, paged: one request per 1,000 tagged versions.
    """
    if client is None:
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            return {}
        from mlgate.lineage.mlflow import MlflowClient

        client = MlflowClient.from_env()
    return collect(search_tagged_versions(client, name))


def search_tagged_versions(client: MlflowClient, location: str) -> list[ModelVersion]:
    escaped = location.replace("\\", "\\\\").replace("'", "\\'")
    return client.search_model_versions(filter=f"tags.`{LEDGER_TAG}` = '{escaped}' AND tags.`{HEAD_TAG}` LIKE '%'")
