"""Read the gate's evidence pack and check it belongs to the version being recorded and passed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlgate.errors import InvalidInputError, RefusedError

if TYPE_CHECKING:
    from mlgate.ledger import Ledger

MAX_EVIDENCE_BYTES = 64 << 20


def load_evidence(path: str, *, name: str, version: str, stage: str) -> dict[str, Any]:
    """The evidence document at ``path``; its digest, model, stage and decision are checked.

    The digest only proves the document is intact, not who wrote it: :func:`bind_evidence`
    ties it to the version's seal and to the gate's ``gated`` ledger entry.
    """
    from mlgate.evidence.pack import DIGEST_KEY, digest

    hint = "pass --evidence with the evidence.json that `mlgate gate` wrote for this model version"
    from mlgate.files import read_bounded

    data = read_bounded(path, MAX_EVIDENCE_BYTES, what="evidence")
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
    gated_for = doc.get("stage")
    if gated_for != stage:
        shown = "no stage" if gated_for is None else f"stage {gated_for!r}"
        raise RefusedError(
            f"{path}: evidence was gated for {shown}, not for {stage!r}: the policy's stages.{stage} rules "
            f"and approvals were never checked",
            hint=f"run `mlgate gate ... --stage {stage}` and record that evidence",
        )
    decision: dict[str, Any] = doc["decision"] if isinstance(doc.get("decision"), dict) else {}
    if decision.get("passed") is not True:
        failed = ", ".join(map(str, decision.get("failed_rules") or [])) or "unknown"
        raise RefusedError(
            f"the gate refused {name}/{version} (failed: {failed}); a refused release is never recorded as approved",
            hint="fix what the gate reported and gate again",
        )
    return doc


def bind_evidence(
    doc: dict[str, Any], *, path: str, name: str, version: str, sealed_sha256: str | None, ledger: Ledger
) -> bool:
    """Tie the evidence to facts the pipeline cannot forge as easily as the unkeyed digest.

    The manifest digest the gate checked must be the version's current seal, and when the ledger
    holds ``gated`` entries for the version, one that passed must carry this evidence digest.
    Returns whether the evidence was found in the ledger (False: the ledger has no gate entry
    for the version at all, e.g. the gate ran without a ledger).
    """
    gated = (doc.get("manifest") or {}).get("sha256") if isinstance(doc.get("manifest"), dict) else None
    if not sealed_sha256:
        raise RefusedError(
            f"models:/{name}/{version} carries no seal (mlgate.manifest.sha256); nothing binds the evidence to it",
            hint=f"run `mlgate seal --model models:/{name}/{version}`, then gate and record again",
        )
    if str(gated or "").lower().removeprefix("sha256:") != sealed_sha256.lower().removeprefix("sha256:"):
        raise RefusedError(
            f"{path}: evidence was gated against manifest sha256:{gated}, but models:/{name}/{version} is now "
            f"sealed as sha256:{sealed_sha256} (re-sealed after the gate?)",
            hint="gate the version again against its current seal and record that evidence",
        )
    from mlgate.evidence.pack import DIGEST_KEY

    model = f"models:/{name}/{version}"
    entries = [e for e in ledger.entries() if e.event == "gated" and e.get("model") == model]
    if not entries:
        return False
    claimed = doc.get(DIGEST_KEY)
    if any(
        e.get("evidence_sha256") == claimed and (e.get("details") or {}).get("passed") is True for e in entries
    ):
        return True
    raise RefusedError(
        f"{path}: the ledger holds {len(entries)} gated entr{'y' if len(entries) == 1 else 'ies'} for {model}, "
        f"but none passed with evidence sha256 {claimed}: this evidence was not written by a passing gate",
        hint="record the evidence.json that the passing `mlgate gate` run wrote (same ledger); never edit it",
    )


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
