"""Policy loading (schema errors name line and key), thresholds, rules and the engine."""

from __future__ import annotations

import pytest

from mlgate.errors import InvalidInputError, UsageError
from mlgate.lineage.chain import Dataset, Lineage, Link
from mlgate.lineage.records import ModelVersion, RegisteredModel, Run
from mlgate.policy import Threshold, parse_policy
from mlgate.policy.engine import evaluate
from mlgate.policy.rules import IntegrityResult

POLICY = """\
version: 1
default_risk: high
risk_classes:
  high:
    lineage: [source_run_finished, git_commit, training_dataset]
    tags_required: [owner, use_case, rollback_plan]
    metrics: {auc: ">= 0.80"}
    fairness: {demographic_parity_difference: "<= 0.10"}
    approvals: {min_approvers: 2, approver_not_author: true, approver_not_requester: true}
  low:
    lineage: [source_run_finished]
stages:
  production:
    tags_required: [change_ticket]
    metrics: {auc: ">= 0.85"}
  staging: {}
"""


def test_design_policy_loads_and_stage_adds_requirements() -> None:
    policy = parse_policy(POLICY)
    high = policy.requirements("high")
    assert high.lineage == ("source_run_finished", "git_commit", "training_dataset")
    assert high.approvals.min_approvers == 2 and high.approvals.approver_not_author
    prod = policy.requirements("high", "production")
    assert prod.tags_required == ("owner", "use_case", "rollback_plan", "change_ticket")
    assert [str(b) for b in prod.metrics["auc"]] == [">= 0.8 (risk class high)", ">= 0.85 (stage production)"]
    assert policy.requirements("low", "staging").lineage == ("source_run_finished",)
    with pytest.raises(UsageError, match="no stage 'prod'"):
        policy.requirements("high", "prod")
    assert len(policy.sha256) == 64


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nrisk_classes:\n  high:\n    metrics: {auc: 'at least 0.8'}\n",
     "line 4, key risk_classes.high.metrics.auc: 'at least 0.8' is not a threshold"),
    ("version: 1\nrisk_classes:\n  high:\n    lineage: [git_commit, gitcommit]\n",
     "line 4, key risk_classes.high.lineage[1]: 'gitcommit' is not a lineage link"),
    ("version: 2\nrisk_classes: {high: {}}\n", "line 1, key version"),
    ("version: 1\nrisk_classes:\n  high:\n    tags_requried: [owner]\n",
     "line 3, key risk_classes.high: Additional properties are not allowed ('tags_requried'"),
    ("version: 1\ndefault_risk: medium\nrisk_classes: {high: {}}\n",
     "line 2, key default_risk: 'medium' is not one of risk_classes (high)"),
    ("version: 1\nrisk_classes:\n  high: {}\n  high: {}\n", "line 4, key risk_classes.high: duplicate key"),
    ("version: 1\nrisk_classes:\n  high:\n    approvals: {min_approvers: -1}\n",
     "line 4, key risk_classes.high.approvals.min_approvers"),
    ("version: 1\n", "key (top level): 'risk_classes' is a required property"),
    ("version: [1\n", "invalid YAML: line 2"),
    ("- 1\n", "must be a YAML mapping"),
])
def test_invalid_policies_name_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_policy(text, source="p.yaml")
    assert expected in info.value.message
    assert info.value.exit_code == 2


def test_every_problem_is_reported_at_once() -> None:
    text = "version: 1\nrisk_classes:\n  high:\n    metrics: {auc: 'x'}\n    fairness: {dpd: '~0.1'}\n"
    with pytest.raises(InvalidInputError, match=r"2 problem\(s\)") as info:
        parse_policy(text)
    assert "metrics.auc" in info.value.message and "fairness.dpd" in info.value.message


@pytest.mark.parametrize(("text", "value", "ok"), [
    (">= 0.80", 0.80, True), (">= 0.80", 0.79, False), ("> 1", 1.0, False), ("<= 0.1", 0.1, True),
    ("< 0.1", 0.1, False), ("== 3", 3.0, True), (">=1e-3", 0.002, True),
])
def test_thresholds(text: str, value: float, ok: bool) -> None:
    assert Threshold.parse(text).check(value) is ok


def lineage(*, tags: dict[str, str] | None = None, version_tags: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None, missing: tuple[str, ...] = (), run: bool = True) -> Lineage:
    links = [Link(i, i not in missing, "why" if i in missing else "ok") for i in (
        "logged_model", "source_run", "source_run_finished", "experiment", "git_commit", "training_dataset",
        "owner", "use_case")]
    run_doc = Run.from_json({"info": {"run_id": "r"}, "data": {"metrics": [
        {"key": k, "value": v} for k, v in (metrics or {}).items()]}}, "test") if run else None
    return Lineage(
        ref="models:/m/1", name="m", version="1",
        model_version=ModelVersion("m", "1", tags=dict(version_tags or {})),
        registered_model=RegisteredModel("m", tags=dict(tags or {}), aliases={}),
        run=run_doc, datasets=[Dataset("train", "d1", "s3://x", "s3")], links=links,
    )


GOOD_TAGS = {"owner": "team", "use_case": "uc", "rollback_plan": "rb"}
GOOD_METRICS = {"auc": 0.9, "demographic_parity_difference": 0.05}
SEALED = IntegrityResult("directory", "a" * 64, files_checked=3)


def test_engine_passes_a_complete_model() -> None:
    result = evaluate(parse_policy(POLICY), lineage(tags=GOOD_TAGS, metrics=GOOD_METRICS), SEALED)
    assert result.passed, [r for r in result.rules if not r.passed]
    assert result.risk_class == "high" and result.risk_source == "policy default_risk"


def test_engine_reports_every_failure_not_just_the_first() -> None:
    result = evaluate(
        parse_policy(POLICY),
        lineage(tags={"owner": "team"}, metrics={"auc": 0.5}, missing=("git_commit", "training_dataset")),
        IntegrityResult("directory", None, "the model version was never sealed"),
    )
    assert [r.id for r in result.failed] == [
        "integrity.sealed", "integrity.matches", "lineage.git_commit", "lineage.training_dataset",
        "tags.use_case", "tags.rollback_plan", "metrics.auc", "fairness.demographic_parity_difference",
    ]
    fairness = result.failed[-1]
    assert fairness.actual == "missing" and "logged no metric" in fairness.message


def test_missing_fairness_metric_never_passes_even_without_a_run() -> None:
    result = evaluate(parse_policy(POLICY), lineage(tags=GOOD_TAGS, run=False), SEALED)
    failed = {r.id: r for r in result.failed}
    assert failed["fairness.demographic_parity_difference"].message == "no source run"


def test_risk_class_from_tag_and_unknown_class_refuses() -> None:
    low = evaluate(parse_policy(POLICY), lineage(version_tags={"risk_class": "low"}), SEALED)
    assert low.passed and low.risk_source == "model version tag risk_class"
    odd = evaluate(parse_policy(POLICY), lineage(version_tags={"risk_class": "medium"}), SEALED)
    assert [r.id for r in odd.failed] == ["risk.class"]
    no_default = parse_policy("version: 1\nrisk_classes: {low: {}}\n")
    assert [r.id for r in evaluate(no_default, lineage(), SEALED).failed] == ["risk.class"]


def test_integrity_modes() -> None:
    policy = parse_policy("version: 1\ndefault_risk: low\nrisk_classes: {low: {}}\n")
    changed = IntegrityResult("store", "a" * 64, files_checked=2, changed=["w.bin"])
    assert [r.id for r in evaluate(policy, lineage(), changed).failed] == ["integrity.matches"]
    digest_ok = IntegrityResult("digest", "a" * 64, compared_sha256="a" * 64)
    assert evaluate(policy, lineage(), digest_ok).passed
    hostile = IntegrityResult("directory", "a" * 64, compare_problem="refused to hash: symlink leaves")
    failed = evaluate(policy, lineage(), hostile).failed
    assert [r.id for r in failed] == ["integrity.matches"] and "symlink" in failed[0].message
