"""Build ``evidence.json``: everything an approver or auditor needs to re-check a gate decision.

Format (``schema_version`` "1"): ``kind``, ``generated_at``, ``mlgate_version``, ``model`` (ref,
name, version, alias), ``stage``, ``risk`` (class and where it came from), ``policy`` (source
file name and SHA-256 of its bytes), ``manifest`` (the sealed digest and how the artifacts were
compared), ``lineage`` (the chain and every link), ``requirements`` (incl. the approvals the
record step must see), ``rules`` (id, section, passed, expected, actual, message), ``decision``
(passed, failed_rules) and ``ci`` (platform, run URL, commit, requester).

``evidence_sha256`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of the
document without the ``evidence_sha256`` key itself; :func:`digest` recomputes it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

from mlgate import __version__
from mlgate.integrity.manifest import canonical_json, sha256_hex
from mlgate.lineage.chain import Lineage
from mlgate.platforms.base import CIContext
from mlgate.policy.engine import Evaluation
from mlgate.policy.loader import Policy
from mlgate.policy.rules import IntegrityResult
from mlgate.refs import ModelRef

SCHEMA_VERSION = "1"
KIND = "mlgate.evidence"
DIGEST_KEY = "evidence_sha256"


def digest(evidence: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``evidence`` without its own digest field."""
    return sha256_hex(canonical_json({k: v for k, v in evidence.items() if k != DIGEST_KEY}))


def build(
    *,
    ref: ModelRef,
    lineage: Lineage,
    evaluation: Evaluation,
    integrity: IntegrityResult,
    policy: Policy,
    ci: CIContext | None,
    stage: str | None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The evidence document, with ``evidence_sha256`` filled in."""
    when = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
    failed = [r.id for r in evaluation.failed]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "generated_at": when,
        "mlgate_version": __version__,
        "model": {"ref": str(ref), "name": lineage.name, "version": lineage.version, "alias": ref.alias},
        "stage": stage,
        "risk": {"class": evaluation.risk_class, "source": evaluation.risk_source},
        "policy": {"source": os.path.basename(policy.source), "sha256": policy.sha256},
        "manifest": {"sha256": integrity.recorded_sha256, "integrity": integrity.to_dict()},
        "lineage": lineage.to_dict(),
        "requirements": evaluation.requirements.to_dict() if evaluation.requirements else None,
        "rules": [r.to_dict() for r in evaluation.rules],
        "decision": {"passed": evaluation.passed, "verdict": "passed" if evaluation.passed else "refused",
                     "failed_rules": failed, "rules_total": len(evaluation.rules)},
        "ci": dataclasses.asdict(ci) if ci is not None else None,
    }
    doc[DIGEST_KEY] = digest(doc)
    return doc
