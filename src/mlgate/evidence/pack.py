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
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate import __version__
from mlgate.approvals.rules import ApprovalRules
from mlgate.errors import Error, InvalidInputError, NetworkError, RefusedError
from mlgate.integrity.manifest import canonical_json, sha256_hex
from mlgate.jsonvalue import Fields, parse_json
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


@dataclass(frozen=True)
class EvidenceModel:
    ref: str
    name: str
    version: str
    alias: str | None


@dataclass(frozen=True)
class Decision:
    passed: bool
    verdict: str
    failed_rules: tuple[str, ...]
    rules_total: int


@dataclass(frozen=True)
class RuleOutcome:
    id: str
    passed: bool
    expected: str
    actual: str
    message: str


@dataclass(frozen=True)
class Evidence:
    """An evidence pack: the typed facts its readers use, and the document exactly as written.

    Build it with :meth:`from_document` (what the gate just built) or :meth:`from_json` (a
    file); both check every field read here, and :meth:`from_json` also checks the digest.
    """

    model: EvidenceModel
    stage: str | None
    generated_at: str
    risk_class: str | None
    policy_source: str
    policy_sha256: str
    manifest_sha256: str | None
    decision: Decision
    rules: tuple[RuleOutcome, ...]
    approvals: ApprovalRules | None
    sha256: str
    document: Mapping[str, Any] = field(repr=False)

    def to_json(self) -> bytes:
        """The bytes of ``evidence.json``: indented, sorted keys, UTF-8, newline-terminated."""
        return (json.dumps(self.document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    def digest(self) -> str:
        """The digest recomputed from the document (equals :attr:`sha256` for an intact pack)."""
        return digest(dict(self.document))

    @classmethod
    def from_document(
        cls, doc: object, *, where: str = "evidence", error: type[Error] = NetworkError
    ) -> Evidence:
        """The typed view of an evidence document; a wrong-typed field raises ``error`` naming it."""
        f = Fields(doc, where, error=error)
        model, decision, risk, policy = f.obj("model"), f.obj("decision"), f.opt_obj("risk"), f.obj("policy")
        requirements = f.opt_obj("requirements")
        approvals = requirements.raw("approvals")  # written by ApprovalRules.to_dict, read back by it
        return cls(
            model=EvidenceModel(ref=model.text("ref"), name=model.text("name"), version=_text_or_int(model, "version"),
                                alias=model.opt_text("alias")),
            stage=f.opt_text("stage"),
            generated_at=f.opt_text("generated_at", "") or "",
            risk_class=risk.opt_text("class"),
            policy_source=policy.opt_text("source", "") or "",
            policy_sha256=policy.opt_text("sha256", "") or "",
            manifest_sha256=f.opt_obj("manifest").opt_text("sha256"),
            decision=Decision(passed=decision.flag("passed"), verdict=decision.opt_text("verdict", "") or "",
                              failed_rules=tuple(decision.texts("failed_rules")),
                              rules_total=decision.opt_integer("rules_total") or 0),
            rules=tuple(RuleOutcome(id=r.text("id"), passed=r.flag("passed"), expected=_shown(r, "expected"),
                                    actual=_shown(r, "actual"), message=_shown(r, "message"))
                        for r in f.objs("rules")),
            approvals=None if approvals is None else ApprovalRules.from_dict(
                approvals, where=f"{where}: field requirements.approvals", error=error),
            sha256=f.text(DIGEST_KEY),
            document=f.data,
        )

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str) -> Evidence:
        """A user's ``evidence.json``: malformed or wrong-typed is exit 2 naming ``source`` and the field;
        a document whose content does not match its digest is exit 1 (changed after the gate wrote it)."""
        hint = "pass the evidence.json that `mlgate gate` wrote for this model version"
        doc = parse_json(data, what=source, error=InvalidInputError, hint=hint)
        if not isinstance(doc, dict) or not isinstance(doc.get(DIGEST_KEY), str):
            raise InvalidInputError(f"{source}: not an mlgate evidence pack (no {DIGEST_KEY})", hint=hint)
        evidence = cls.from_document(doc, where=source, error=InvalidInputError)
        actual = evidence.digest()
        if actual != evidence.sha256:
            raise RefusedError(
                f"{source}: evidence was changed after the gate wrote it (says {evidence.sha256}, content is {actual})",
                hint="re-run `mlgate gate`; evidence is never edited by hand",
            )
        return evidence


def _text_or_int(f: Fields, key: str) -> str:
    return str(f.integer(key)) if isinstance(f.raw(key), int) else f.text(key)


def _shown(f: Fields, key: str) -> str:
    """A rule's expected/actual/message as shown (they are free-form values, shown as text)."""
    value = f.raw(key)
    return "" if value is None else str(value)
