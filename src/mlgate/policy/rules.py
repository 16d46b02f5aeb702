"""One function per kind of rule. Each returns :class:`RuleResult` s; none raises on a failed check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlgate.jsonvalue import is_number, kind_of
from mlgate.lineage.chain import Lineage
from mlgate.policy.loader import Bound, Requirements

MAX_LISTED = 50  # changed/missing/extra files listed per rule in the evidence


@dataclass(frozen=True)
class RuleResult:
    id: str
    section: str
    passed: bool
    expected: str
    actual: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "section": self.section, "passed": self.passed, "expected": self.expected,
                "actual": self.actual, "message": self.message}


@dataclass(frozen=True)
class SignatureCheck:
    """The seal's signature against the trusted keys (policy ``signing.trusted_keys`` or ``--public-key``)."""

    expected: str  # the trusted keys, as printed
    ok: bool
    detail: str  # who signed it, or what was found instead

    def to_dict(self) -> dict[str, Any]:
        return {"expected": self.expected, "verified": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class IntegrityResult:
    """What the gate found comparing the artifacts with the seal recorded on the version."""

    mode: str  # "directory", "store" or "digest"
    recorded_sha256: str | None  # the version's mlgate.manifest.sha256 tag
    sealed_problem: str | None = None  # why the seal itself is unusable (missing, altered manifest)
    compared_sha256: str | None = None  # mode "digest": the digest given by the caller
    compare_problem: str | None = None  # why the comparison itself refused (hostile tree, digest mismatch)
    files_checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)  # extra files accepted, with the reason
    signature: SignatureCheck | None = None  # only when trusted keys are configured

    @property
    def matches(self) -> bool:
        if self.sealed_problem or self.compare_problem or not self.recorded_sha256:
            return False
        if self.mode == "digest":
            return self.compared_sha256 == self.recorded_sha256
        return not (self.changed or self.missing or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "recorded_sha256": self.recorded_sha256, "sealed_problem": self.sealed_problem,
            "compared_sha256": self.compared_sha256,
            "compare_problem": self.compare_problem, "files_checked": self.files_checked,
            "changed": self.changed[:MAX_LISTED], "missing": self.missing[:MAX_LISTED],
            "extra": self.extra[:MAX_LISTED], "tolerated": self.tolerated,
            "counts": {"changed": len(self.changed), "missing": len(self.missing), "extra": len(self.extra)},
            "matches": self.matches,
        } | ({"signature": self.signature.to_dict()} if self.signature is not None else {})


def integrity_rules(result: IntegrityResult) -> list[RuleResult]:
    sealed = bool(result.recorded_sha256) and not result.sealed_problem
    out = [RuleResult(
        "integrity.sealed", "integrity", sealed,
        "the version carries a seal (mlgate.manifest.sha256) whose manifest is intact",
        f"sha256:{result.recorded_sha256}" if sealed else (result.sealed_problem or "not sealed"),
        "sealed" if sealed else (result.sealed_problem or "the model version was never sealed; run "
                                 "`mlgate seal --model REF` when registering it"),
    )]
    what = {"directory": "the artifacts directory", "store": "the files in the MLflow artifact store",
            "digest": "the manifest digest given"}[result.mode]
    if not sealed:
        actual, message = "nothing to compare with", "cannot match: no usable seal"
    elif result.compare_problem:
        actual, message = "refused", result.compare_problem
    elif result.mode == "digest":
        actual = f"sha256:{result.compared_sha256}"
        message = "the manifest digest matches the seal" if result.matches else (
            f"expected sha256:{result.recorded_sha256}, got sha256:{result.compared_sha256}")
    elif result.matches:
        actual, message = f"{result.files_checked} files match", "every file matches the sealed manifest"
    else:
        actual = (f"{len(result.changed)} changed, {len(result.missing)} missing, {len(result.extra)} extra")
        names = [f"changed {n}" for n in result.changed[:5]] + [f"missing {n}" for n in result.missing[:5]] + [
            f"extra {n}" for n in result.extra[:5]]
        message = "files differ from the sealed manifest: " + "; ".join(names)
    out.append(RuleResult("integrity.matches", "integrity", sealed and result.matches,
                          f"{what} match the sealed manifest", actual, message))
    check = result.signature
    if check is not None:
        out.append(RuleResult("integrity.signed", "integrity", check.ok, f"the seal is signed by {check.expected}",
                              "signed" if check.ok else "refused", check.detail))
    return out


def risk_rule(risk_class: str | None, source: str, known: bool, classes: tuple[str, ...]) -> RuleResult:
    expected = f"a risk class the policy defines ({', '.join(classes)})"
    if risk_class is None:
        return RuleResult("risk.class", "risk", False, expected, "none",
                          "the version has no risk_class tag and the policy has no default_risk")
    if not known:
        return RuleResult("risk.class", "risk", False, expected, f"{risk_class} (from {source})",
                          f"risk class {risk_class!r} is not in the policy")
    return RuleResult("risk.class", "risk", True, expected, f"{risk_class} (from {source})", "ok")


def lineage_rules(lineage: Lineage, req: Requirements) -> list[RuleResult]:
    out = []
    for link_id in req.lineage:
        link = lineage.link(link_id)
        out.append(RuleResult(f"lineage.{link_id}", "lineage", link.ok, f"{link.label} present",
                              link.detail if link.ok else "missing", "ok" if link.ok else link.detail))
    return out


def tag_rules(lineage: Lineage, req: Requirements) -> list[RuleResult]:
    tags = lineage.tags
    out = []
    for key in req.tags_required:
        value = tags.get(key, "").strip()
        out.append(RuleResult(f"tags.{key}", "tags", bool(value), f"tag '{key}' set (version or registered model)",
                              value or "not set", "ok" if value else f"tag '{key}' is missing or empty"))
    return out


def threshold_rules(section: str, metrics: dict[str, float], required: dict[str, tuple[Bound, ...]],
                    has_run: bool) -> list[RuleResult]:
    """Metric or fairness thresholds, one rule per metric; the rule passes only if every bound on it
    (risk class and stage) holds. A missing metric fails, never passes."""
    out = []
    for key, bounds in required.items():
        expected = " and ".join(f"{key} {b}" for b in bounds)
        if key not in metrics:
            why = "no source run" if not has_run else f"the source run logged no metric '{key}'"
            out.append(RuleResult(f"{section}.{key}", section, False, expected, "missing", why))
            continue
        value = metrics[key]
        if not is_number(value):
            out.append(RuleResult(f"{section}.{key}", section, False, expected, kind_of(value),
                                  f"metric '{key}' is {kind_of(value)}, not a finite number"))
            continue
        broken = [b for b in bounds if not b.threshold.check(value)]
        out.append(RuleResult(f"{section}.{key}", section, not broken, expected, f"{value:g}",
                              "ok" if not broken else f"{key} = {value:g}, required " + " and ".join(map(str, broken))))
    return out
