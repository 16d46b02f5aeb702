"""Read the gate's evidence pack and check it belongs to the version being recorded and passed."""

from __future__ import annotations

import json
from typing import Any

from mlgate.errors import InvalidInputError, RefusedError, UsageError

MAX_EVIDENCE_BYTES = 64 << 20


def load_evidence(path: str, *, name: str, version: str) -> dict[str, Any]:
    """The evidence document at ``path``; its digest, model and decision are checked."""
    from mlgate.evidence.pack import DIGEST_KEY, digest

    hint = "pass --evidence with the evidence.json that `mlgate gate` wrote for this model version"
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read evidence {path}: {exc.strerror}", hint=hint) from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_EVIDENCE_BYTES >> 20} MiB", hint=hint)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc})", hint=hint) from None
    if not isinstance(doc, dict) or not isinstance(doc.get(DIGEST_KEY), str):
        raise InvalidInputError(f"{path}: not an mlgate evidence pack (no {DIGEST_KEY})", hint=hint)
    actual = digest(doc)
    if actual != doc[DIGEST_KEY]:
        raise RefusedError(
            f"{path}: evidence was changed after the gate wrote it (says {doc[DIGEST_KEY]}, content is {actual})",
            hint="re-run `mlgate gate`; evidence is never edited by hand",
        )
    model: dict[str, Any] = doc["model"] if isinstance(doc.get("model"), dict) else {}
    if model.get("name") != name or str(model.get("version")) != str(version):
        raise RefusedError(
            f"{path}: evidence is for {model.get('name')}/{model.get('version')}, not {name}/{version}",
            hint=hint,
        )
    decision: dict[str, Any] = doc["decision"] if isinstance(doc.get("decision"), dict) else {}
    if decision.get("passed") is not True:
        failed = ", ".join(map(str, decision.get("failed_rules") or [])) or "unknown"
        raise RefusedError(
            f"the gate refused {name}/{version} (failed: {failed}); a refused release is never recorded as approved",
            hint="fix what the gate reported and gate again",
        )
    return doc


def evidence_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The few facts of the evidence worth keeping in the ledger entry."""
    decision = doc.get("decision") or {}
    risk = doc.get("risk") or {}
    policy = doc.get("policy") or {}
    manifest = doc.get("manifest") or {}
    return {
        "verdict": decision.get("verdict"),
        "rules_total": decision.get("rules_total"),
        "failed_rules": decision.get("failed_rules") or [],
        "risk_class": risk.get("class"),
        "policy_sha256": policy.get("sha256"),
        "manifest_sha256": manifest.get("sha256"),
        "generated_at": doc.get("generated_at"),
    }
