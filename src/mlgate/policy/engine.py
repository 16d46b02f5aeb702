"""The rules engine: run every rule and report all of them, never stopping at the first failure."""

from __future__ import annotations

from dataclasses import dataclass

from mlgate.lineage.chain import Lineage
from mlgate.policy.loader import Policy, Requirements
from mlgate.policy.rules import (
    IntegrityResult,
    RuleResult,
    integrity_rules,
    lineage_rules,
    risk_rule,
    tag_rules,
    threshold_rules,
)

RISK_TAG = "risk_class"


@dataclass(frozen=True)
class Evaluation:
    risk_class: str | None
    risk_source: str
    requirements: Requirements | None
    rules: list[RuleResult]

    @property
    def passed(self) -> bool:
        return bool(self.rules) and all(r.passed for r in self.rules)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]


def risk_class_of(policy: Policy, lineage: Lineage) -> tuple[str | None, str]:
    """The version's ``risk_class`` tag, else the policy's ``default_risk``."""
    tagged = lineage.version_tags.get(RISK_TAG, "").strip()
    if tagged:
        return tagged, f"model version tag {RISK_TAG}"
    if policy.default_risk:
        return policy.default_risk, "policy default_risk"
    return None, "nowhere"


def evaluate(policy: Policy, lineage: Lineage, integrity: IntegrityResult, *, stage: str | None = None) -> Evaluation:
    rules: list[RuleResult] = list(integrity_rules(integrity))
    risk, source = risk_class_of(policy, lineage)
    known = risk is not None and risk in policy.risk_classes
    rules.append(risk_rule(risk, source, known, policy.risk_classes))
    requirements: Requirements | None = None
    if known:
        assert risk is not None
        requirements = policy.requirements(risk, stage)
        metrics = lineage.metrics
        has_run = lineage.run is not None
        rules += lineage_rules(lineage, requirements)
        rules += tag_rules(lineage, requirements)
        rules += threshold_rules("metrics", metrics, dict(requirements.metrics), has_run)
        rules += threshold_rules("fairness", metrics, dict(requirements.fairness), has_run)
    elif stage is not None:
        policy.requirements(next(iter(policy.risk_classes)), stage)  # an unknown stage is still a usage error
    return Evaluation(risk, source, requirements, rules)
