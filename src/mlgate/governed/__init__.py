"""The governed record: who approved which model version, when, why, with what evidence.

``record`` (after a deployment) and ``rollback`` read the named approver(s) from the CI,
enforce separation of duties, append an audit-ledger entry, write the record onto the MLflow
model version as tags (names in :mod:`mlgate.tags`) and move the stage alias. See
:mod:`mlgate.governed.record`; ``sealed`` and ``gated`` entries: :mod:`mlgate.governed.events`.
"""

from mlgate.tags import MAX_TAG_CHARS


def clip(text: str, limit: int = MAX_TAG_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
