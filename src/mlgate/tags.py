"""Every MLflow tag name mlgate reads or writes, in one place."""

from __future__ import annotations

# the seal (written by `seal --model`)
MANIFEST_SHA256 = "mlgate.manifest.sha256"
MANIFEST_URI = "mlgate.manifest.uri"
MANIFEST_FILES = "mlgate.manifest.files"
MANIFEST_BYTES = "mlgate.manifest.bytes"
SEALED_AT = "mlgate.sealed_at"
SEALED_BY = "mlgate.sealed_by"
RESEALED = "mlgate.resealed"
# the signature of the seal (written by `seal --model --sign`)
SIGNATURE_SHA256 = "mlgate.signature.sha256"
SIGNATURE_URI = "mlgate.signature.uri"
SIGNATURE_KEY = "mlgate.signature.key_hint"

# the governed record (written by `record` and `rollback`)
APPROVED_BY = "mlgate.approved_by"
APPROVED_AT = "mlgate.approved_at"
APPROVAL_COMMENT = "mlgate.approval_comment"
EVIDENCE_SHA256 = "mlgate.evidence.sha256"
DEPLOYMENT = "mlgate.deployment"
ROLLBACK_BY = "mlgate.rollback.approved_by"
ROLLBACK_AT = "mlgate.rollback.approved_at"
ROLLBACK_COMMENT = "mlgate.rollback.comment"

# the ledger anchors (written by `record`; read by `audit verify` and `audit show`)
LEDGER_HEAD = "mlgate.ledger.head"
LEDGER = "mlgate.ledger"  # the identity (ledger_id) of the ledger the head belongs to
LEDGER_LOCATION = "mlgate.ledger.location"  # where that ledger was when the tag was written

# read from the team's own tags
RISK_CLASS = "risk_class"
OWNER = "owner"
USE_CASE = "use_case"

# written by MLflow itself (read for lineage and separation of duties)
GIT_COMMIT = "mlflow.source.git.commit"  # on a run
DATASET_CONTEXT = "mlflow.data.context"  # on a run's dataset input ("training", "eval", ...)
MLFLOW_USER = "mlflow.user"  # on a run: who started it

MAX_TAG_CHARS = 5000  # MLflow's limit on a model version tag value (bounded by its database schema)
