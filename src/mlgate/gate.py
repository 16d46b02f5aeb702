"""The gate engine: integrity + lineage + policy -> a decision and its evidence.

Used by ``mlgate gate`` and by the approval-check service. :func:`evaluate` never returns a pass
when unsure: a policy that does not validate raises :class:`InvalidInputError` (exit 2), MLflow
unreachable or answering garbage raises :class:`NetworkError` (exit 3), a model version that does
not exist raises :class:`mlgate.lineage.mlflow.NotFound` (exit 1). Everything else -- an unsealed
or altered model, a missing lineage link, tag or metric -- is a failed rule in the outcome.

Integrity has three modes:

* ``artifacts_dir``: re-hash that directory and compare it with the sealed manifest (the files
  about to be deployed);
* ``manifest_sha256`` only (a service with no files): the digest must equal the one recorded on
  the version;
* neither: re-hash the version's files in the MLflow artifact store (streamed, nothing written)
  and compare them with the sealed manifest, which catches a store altered after sealing.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlgate.errors import InvalidInputError, RefusedError
from mlgate.evidence import markdown, pack
from mlgate.lineage import artifacts
from mlgate.lineage.chain import trace
from mlgate.lineage.mlflow import MlflowClient
from mlgate.lineage.records import LoggedModel, ModelVersion
from mlgate.platforms.base import CIContext
from mlgate.policy.engine import evaluate as evaluate_policy
from mlgate.policy.loader import Policy, load_policy
from mlgate.policy.rules import IntegrityResult, SignatureCheck
from mlgate.refs import ModelRef

if TYPE_CHECKING:
    from mlgate.secrets.credentials import IdentityOptions

SUMMARY_LIMIT = 60 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

__all__ = ["CIContext", "GateOutcome", "evaluate"]


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    evidence: pack.Evidence
    evidence_sha256: str
    markdown: str
    failed_rules: list[str] = field(default_factory=list)
    summary: str = ""


def _integrity(
    client: MlflowClient, model_version: ModelVersion, *, artifacts_dir: str | None, manifest_sha256: str | None,
    ci: bool, logged_model: LoggedModel | None = None,
) -> IntegrityResult:
    from mlgate.integrity import verify_directory
    from mlgate.integrity.manifest import compare

    recorded = artifacts.recorded_digest(model_version)
    if manifest_sha256 is not None and artifacts_dir is None:
        given = manifest_sha256.strip().lower().removeprefix("sha256:")
        if not _SHA256.match(given):
            raise InvalidInputError(f"manifest digest {manifest_sha256!r} is not a SHA-256 (64 hex characters)")
        return IntegrityResult("digest", recorded, None if recorded else "the model version was never sealed",
                               compared_sha256=given)
    mode = "directory" if artifacts_dir is not None else "store"
    try:
        manifest = artifacts.load_manifest(client, model_version)
    except (RefusedError, InvalidInputError) as exc:
        return IntegrityResult(mode, recorded, exc.message)
    try:
        if artifacts_dir is not None:
            comparison = verify_directory(artifacts_dir, manifest, ci=ci)
        else:
            current, _ = artifacts.seal_from_store(client, model_version, ci=ci, logged_model=logged_model,
                                                   serialization=manifest.serialization)
            comparison = compare(manifest.subjects, current.subjects)
    except RefusedError as exc:
        return IntegrityResult(mode, recorded, compare_problem=exc.message)
    extra = [n for n, _ in comparison.extra]
    tolerated: list[str] = []
    if (artifacts_dir is not None and artifacts.REGISTERED_MODEL_META in extra
            and artifacts.REGISTERED_MODEL_META not in manifest.subjects
            and artifacts.is_mlflow_download_marker(artifacts_dir, model_version)):
        extra.remove(artifacts.REGISTERED_MODEL_META)
        tolerated.append(f"{artifacts.REGISTERED_MODEL_META}: written by MLflow's client when downloading "
                         f"models:/{model_version.label}; names this version only")
    problem = None
    if manifest_sha256 is not None and manifest_sha256.strip().lower().removeprefix("sha256:") != recorded:
        problem = f"the manifest digest given ({manifest_sha256}) is not the one sealed (sha256:{recorded})"
    return IntegrityResult(
        mode, recorded, files_checked=comparison.checked - len(tolerated), compare_problem=problem,
        changed=[n for n, _, _ in comparison.changed], missing=[n for n, _ in comparison.missing],
        extra=extra, tolerated=tolerated,
    )


def trusted_key_layers(policy: Policy, lineage_tags: dict[str, str], stage: str | None,
                       public_keys: list[str] | None) -> list[tuple[str, ...]]:
    """The trusted keys, one group per place that names them (``--public-key``, risk class, stage).

    The seal's signature must verify with a key of every group.
    """
    from mlgate.policy.engine import RISK_TAG

    layers: list[tuple[str, ...]] = [tuple(public_keys)] if public_keys else []
    risk = lineage_tags.get(RISK_TAG, "").strip() or policy.default_risk
    if risk and risk in policy.risk_classes:
        layers += list(policy.requirements(risk, stage).trusted_keys)
    return layers


def check_signature(client: MlflowClient, model_version: ModelVersion, layers: list[tuple[str, ...]],
                    identity: IdentityOptions | None) -> SignatureCheck:
    """The seal's recorded signature against every group of trusted keys (a bad key spec: exit 2; Key Vault: 3)."""
    from mlgate.lineage.signatures import check_version_signature
    from mlgate.signing.keys import SignatureInvalid, load_public_key

    groups = [[load_public_key(spec, identity=identity) for spec in layer] for layer in layers]
    expected = " and ".join(keys[0].description if len(keys) == 1 else
                            "one of " + ", ".join(k.description for k in keys) for keys in groups)
    try:
        manifest = artifacts.load_manifest(client, model_version)
    except (RefusedError, InvalidInputError) as exc:
        return SignatureCheck(expected, False, f"no usable seal to check the signature of: {exc.message}")
    detail = ""
    try:
        for keys in groups:
            detail = check_version_signature(client, model_version, manifest, keys)
    except SignatureInvalid as exc:
        return SignatureCheck(expected, False, exc.message)
    return SignatureCheck(expected, True, detail)


def summarize(evidence: pack.Evidence, limit: int = SUMMARY_LIMIT) -> str:
    """A short plain-text verdict and the failing rules (for a check log or a PR comment)."""
    decision = evidence.decision
    verdict = "PASSED" if decision.passed else "REFUSED"
    lines = [
        f"mlgate gate: {verdict} {evidence.model.ref} (risk class {evidence.risk_class or 'unknown'}): "
        f"{len(decision.failed_rules)} of {decision.rules_total} rules failed",
    ]
    for rule in evidence.rules:
        if not rule.passed:
            lines.append(f"- {rule.id}: {rule.message} (expected {rule.expected}; got {rule.actual})")
    lines.append(f"evidence sha256:{evidence.sha256}")
    text = "\n".join(lines)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = "\n… (truncated; see evidence.md)"
    return data[: limit - len(note.encode())].decode("utf-8", errors="ignore") + note


def evaluate(
    ref: str,
    *,
    policy_path: str | None = None,
    artifacts_dir: str | None = None,
    manifest_sha256: str | None = None,
    client: MlflowClient | None = None,
    ci: CIContext | None = None,
    stage: str | None = None,
    policy: Policy | None = None,
    public_keys: list[str] | None = None,
    identity: IdentityOptions | None = None,
) -> GateOutcome:
    """Gate ``ref``: integrity, lineage and the policy's rules. See the module docstring for errors.

    Give the policy as ``policy_path`` (read here) or as an already loaded ``policy`` (the
    check service loads it once at start-up). Trusted keys (``public_keys``, and the policy's
    ``signing.trusted_keys`` for the version's risk class and stage) add the ``integrity.signed``
    rule: the seal's recorded signature must verify with them.
    """
    if policy is None:
        if policy_path is None:
            raise TypeError("evaluate() needs policy_path or policy")
        policy = load_policy(policy_path)
    if stage is not None:
        policy.requirements(policy.risk_classes[0], stage)  # an unknown stage fails before any request
    parsed = ModelRef.parse(ref)
    mlflow = client or MlflowClient.from_env()
    model_version = mlflow.resolve(parsed)
    lineage = trace(mlflow, parsed, model_version=model_version)
    integrity = _integrity(mlflow, model_version, artifacts_dir=artifacts_dir, manifest_sha256=manifest_sha256,
                           ci=bool(ci and ci.platform != "local"), logged_model=lineage.logged_model)
    layers = trusted_key_layers(policy, dict(model_version.tags), stage, public_keys)
    if layers:
        integrity = dataclasses.replace(integrity, signature=check_signature(mlflow, model_version, layers, identity))
    evaluation = evaluate_policy(policy, lineage, integrity, stage=stage)
    document = pack.build(ref=parsed, lineage=lineage, evaluation=evaluation, integrity=integrity, policy=policy,
                          ci=ci, stage=stage)
    evidence = pack.Evidence.from_document(document, where="the evidence just built")
    return GateOutcome(
        passed=evaluation.passed,
        evidence=evidence,
        evidence_sha256=evidence.sha256,
        markdown=markdown.render(document),
        failed_rules=[r.id for r in evaluation.failed],
        summary=summarize(evidence),
    )
