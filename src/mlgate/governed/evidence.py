"""Read the gate's evidence pack and check it belongs to the version being recorded and passed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlgate.errors import InvalidInputError, RefusedError
from mlgate.evidence.pack import Evidence

if TYPE_CHECKING:
    from mlgate.ledger import Ledger
    from mlgate.signing.keys import PublicKey

MAX_EVIDENCE_BYTES = 64 << 20
_HINT = "pass --evidence with the evidence.json that `mlgate gate` wrote for this model version"


def read_pack(path: str, *, name: str, version: str, stage: str) -> Evidence:
    """The evidence pack at ``path``, typed; its digest, model, stage and decision are checked.

    Malformed or wrong-typed: exit 2 naming the file and the field; changed after the gate wrote
    it, for another version or stage, or refused by the gate: exit 1. The digest only proves the
    document is intact, not who wrote it: :func:`bind_evidence` ties it to the version's seal and
    to the gate's ``gated`` ledger entry.
    """
    from mlgate.files import read_bounded

    evidence = Evidence.from_json(read_bounded(path, MAX_EVIDENCE_BYTES, what="evidence"), source=path)
    model = evidence.model
    if model.name != name or model.version != str(version):
        raise RefusedError(f"{path}: evidence is for {model.name}/{model.version}, not {name}/{version}", hint=_HINT)
    if evidence.stage != stage:
        shown = "no stage" if evidence.stage is None else f"stage {evidence.stage!r}"
        raise RefusedError(
            f"{path}: evidence was gated for {shown}, not for {stage!r}: the policy's stages.{stage} rules "
            f"and approvals were never checked",
            hint=f"run `mlgate gate ... --stage {stage}` and record that evidence",
        )
    if not evidence.decision.passed:
        failed = ", ".join(evidence.decision.failed_rules) or "unknown"
        raise RefusedError(
            f"the gate refused {name}/{version} (failed: {failed}); a refused release is never recorded as approved",
            hint="fix what the gate reported and gate again",
        )
    return evidence


def load_evidence(path: str, *, name: str, version: str, stage: str) -> dict[str, Any]:
    """:func:`read_pack`'s document as a dict (for callers not yet reading :class:`Evidence`)."""
    return dict(read_pack(path, name=name, version=version, stage=stage).document)


def _typed(doc: Evidence | Mapping[str, Any]) -> Evidence:
    return doc if isinstance(doc, Evidence) else Evidence.from_document(doc, error=InvalidInputError)


def bind_evidence(
    doc: Evidence | Mapping[str, Any], *, path: str, name: str, version: str, sealed_sha256: str | None, ledger: Ledger
) -> bool:
    """Tie the evidence to facts the pipeline cannot forge as easily as the unkeyed digest.

    The manifest digest the gate checked must be the version's current seal, and when the ledger
    holds ``gated`` entries for the version, one that passed must carry this evidence digest.
    Returns whether the evidence was found in the ledger (False: the ledger has no gate entry
    for the version at all, e.g. the gate ran without a ledger).
    """
    evidence = _typed(doc)
    gated = evidence.manifest_sha256
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
    model = f"models:/{name}/{version}"
    entries = [e for e in ledger.entries() if e.event == "gated" and e.model == model]
    if not entries:
        return False
    claimed = evidence.sha256
    if any(
        e.evidence_sha256 == claimed and e.details.flag("passed") is True for e in entries
    ):
        return True
    raise RefusedError(
        f"{path}: the ledger holds {len(entries)} gated entr{'y' if len(entries) == 1 else 'ies'} for {model}, "
        f"but none passed with evidence sha256 {claimed}: this evidence was not written by a passing gate",
        hint="record the evidence.json that the passing `mlgate gate` run wrote (same ledger); never edit it",
    )


def evidence_summary(doc: Evidence | Mapping[str, Any]) -> dict[str, Any]:
    """The few facts of the evidence worth keeping in the ledger entry."""
    evidence = _typed(doc)
    return {
        "verdict": evidence.decision.verdict or None,
        "rules_total": evidence.decision.rules_total,
        "failed_rules": list(evidence.decision.failed_rules),
        "risk_class": evidence.risk_class,
        "policy_sha256": evidence.policy_sha256 or None,
        "manifest_sha256": evidence.manifest_sha256,
        "generated_at": evidence.generated_at or None,
    }


def signature_path(evidence_path: str, given: str | None) -> str:
    """``--evidence-signature``, else ``evidence.dsse.json`` beside the evidence."""
    import os

    from mlgate.evidence.attestation import SIGNATURE_NAME

    return given or os.path.join(os.path.dirname(evidence_path), SIGNATURE_NAME)


def check_signed(evidence: Evidence, *, path: str, signature: str, key: PublicKey) -> None:
    """Refuse (exit 1) unless ``signature`` is a DSSE envelope by ``key`` over exactly this evidence."""
    import os

    from mlgate.evidence.attestation import MAX_ENVELOPE_BYTES, verify
    from mlgate.files import read_bounded
    from mlgate.signing.keys import SignatureInvalid

    if not os.path.lexists(signature):
        raise SignatureInvalid(
            f"expected {path} signed by {key.description} (hint {key.hint}), found no signature at {signature}",
            hint="run `mlgate gate --sign KEY` (it writes evidence.dsse.json beside evidence.json) and pass "
            "--evidence-signature if it is elsewhere",
        )
    data = read_bounded(signature, MAX_ENVELOPE_BYTES, what="evidence signature")
    verify(data, evidence, key, source=signature, evidence_path=path)
