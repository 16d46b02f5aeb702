"""Anchors: the ``mlgate.ledger.head`` tags (``SEQ:HASH``) that ``record`` writes on model versions.

A ledger rewritten from some entry on (every later hash recomputed) still chains; the anchors,
kept in another system (MLflow), do not move with it, so ``audit verify`` catches the rewrite.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlgate.errors import NotBuiltError

HEAD_TAG = "mlgate.ledger.head"
_ANCHOR = re.compile(r"^([1-9][0-9]*):([0-9a-f]{64})$")


def parse_anchor(value: str) -> tuple[int, str] | None:
    match = _ANCHOR.match(value.strip())
    return (int(match.group(1)), match.group(2)) if match else None


def collect(versions: Iterable[Mapping[str, Any]]) -> dict[int, list[tuple[str, str]]]:
    """Anchors from MLflow model-version records (``name``, ``version``, ``tags`` as a dict or list).

    A malformed tag value is itself recorded as an anchor that cannot match (seq 0 is never
    valid), so it fails verification instead of being ignored.
    """
    anchors: dict[int, list[tuple[str, str]]] = {}
    for mv in versions:
        tags = mv.get("tags") or {}
        if isinstance(tags, list):
            tags = {t.get("key"): t.get("value") for t in tags if isinstance(t, dict)}
        value = tags.get(HEAD_TAG)
        if not isinstance(value, str):
            continue
        where = f"models:/{mv.get('name')}/{mv.get('version')}"
        parsed = parse_anchor(value)
        if parsed is None:
            anchors.setdefault(1, []).append((f"{where} (malformed tag {value[:80]!r})", "malformed"))
            continue
        anchors.setdefault(parsed[0], []).append((where, parsed[1]))
    return anchors


def read_anchors() -> dict[int, list[tuple[str, str]]]:
    """Anchors from the MLflow named by MLFLOW_TRACKING_URI; none when it is not set."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return {}
    raise NotBuiltError(
        "reading ledger anchors from MLflow is not built in this version",
        hint="pass --no-anchors to check the chain only",
    )
