"""The governed record: who approved which model version, when, why, with what evidence.

``record`` (after a deployment) and ``rollback`` read the named approver(s) from the CI,
enforce separation of duties, append an audit-ledger entry, write the record onto the MLflow
model version as tags and move the stage alias. See :mod:`mlgate.governed.record`.
"""

TAG_APPROVED_BY = "mlgate.approved_by"
TAG_APPROVED_AT = "mlgate.approved_at"
TAG_APPROVAL_COMMENT = "mlgate.approval_comment"
TAG_EVIDENCE = "mlgate.evidence.sha256"
TAG_DEPLOYMENT = "mlgate.deployment"
TAG_LEDGER_HEAD = "mlgate.ledger.head"
TAG_LEDGER = "mlgate.ledger"
TAG_ROLLBACK_BY = "mlgate.rollback.approved_by"
TAG_ROLLBACK_AT = "mlgate.rollback.approved_at"
TAG_ROLLBACK_COMMENT = "mlgate.rollback.comment"
MAX_TAG_CHARS = 5000  # MLflow's limit on a model version tag value (bounded by its database schema)


def clip(text: str, limit: int = MAX_TAG_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
