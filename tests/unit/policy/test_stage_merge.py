"""A ``stages:`` overlay can only add to or tighten the risk class's requirements, never weaken them."""

from __future__ import annotations

from mlgate.evidence.markdown import render
from mlgate.policy import parse_policy
from mlgate.policy.engine import evaluate
from tests.unit.policy.test_policy import GOOD_TAGS, SEALED, lineage

POLICY = """\
version: 1
default_risk: high
risk_classes:
  high:
    lineage: [source_run_finished, git_commit]
    tags_required: [owner]
    metrics: {auc: ">= 0.80"}
    fairness: {demographic_parity_difference: "<= 0.10"}
    approvals: {min_approvers: 2, approver_not_author: true, approver_not_requester: false,
                approver_not_committer: false}
  lax:
    approvals: {min_approvers: 3, approver_not_author: false, approver_not_requester: false}
stages:
  weaker:
    metrics: {auc: ">= 0.5"}
    fairness: {demographic_parity_difference: "<= 0.9"}
    approvals: {min_approvers: 1, approver_not_author: false}
  tighter:
    lineage: [training_dataset, git_commit]
    tags_required: [change_ticket, owner]
    metrics: {auc: ">= 0.85", precision: ">= 0.7"}
    approvals: {min_approvers: 4, approver_not_requester: true}
  silent: {}
  empty:
"""


def _auc(value: float, stage: str) -> list[str]:
    metrics = {"auc": value, "demographic_parity_difference": 0.05, "precision": 0.9}
    result = evaluate(parse_policy(POLICY), lineage(tags={**GOOD_TAGS, "change_ticket": "c"}, metrics=metrics),
                      SEALED, stage=stage)
    return [r.id for r in result.failed]


def test_a_weakening_stage_does_not_lower_a_threshold() -> None:
    assert _auc(0.6, "weaker") == ["metrics.auc"]  # the risk class's >= 0.80 still applies
    assert _auc(0.81, "weaker") == []
    result = evaluate(parse_policy(POLICY), lineage(tags=GOOD_TAGS, metrics={
        "auc": 0.9, "demographic_parity_difference": 0.5}), SEALED, stage="weaker")
    assert [r.id for r in result.failed] == ["fairness.demographic_parity_difference"]


def test_a_tightening_stage_tightens_and_adds() -> None:
    assert _auc(0.82, "tighter") == ["metrics.auc"]
    assert _auc(0.86, "tighter") == []
    assert _auc(0.82, "silent") == [] and _auc(0.82, "empty") == []


def test_both_thresholds_are_shown_with_their_source() -> None:
    result = evaluate(parse_policy(POLICY), lineage(tags=GOOD_TAGS, metrics={
        "auc": 0.6, "demographic_parity_difference": 0.05}), SEALED, stage="weaker")
    rule = next(r for r in result.rules if r.id == "metrics.auc")
    assert not rule.passed and rule.actual == "0.6"
    assert rule.expected == "auc >= 0.8 (risk class high) and auc >= 0.5 (stage weaker)"
    assert rule.message == "auc = 0.6, required >= 0.8 (risk class high)"
    assert [r.id for r in result.rules].count("metrics.auc") == 1
    assert result.requirements is not None
    assert result.requirements.to_dict()["metrics"] == {"auc": ">= 0.8 (risk class high) and >= 0.5 (stage weaker)"}
    evidence = {
        "decision": {"passed": False, "failed_rules": ["metrics.auc"], "rules_total": len(result.rules)},
        "model": {"ref": "models:/m/1", "name": "m", "version": "1"}, "policy": {"source": "p", "sha256": "0" * 64},
        "rules": [r.to_dict() for r in result.rules], "requirements": result.requirements.to_dict(),
    }
    assert "auc &gt;= 0.8 (risk class high) and auc &gt;= 0.5 (stage weaker)" in render(evidence)
    no_stage = evaluate(parse_policy(POLICY), lineage(tags=GOOD_TAGS, metrics={"auc": 0.9}), SEALED)
    assert next(r for r in no_stage.rules if r.id == "metrics.auc").expected == "auc >= 0.8 (risk class high)"


def test_a_stage_only_threshold_keeps_the_plain_rule_id() -> None:
    result = evaluate(parse_policy(POLICY), lineage(tags={**GOOD_TAGS, "change_ticket": "c"}, metrics={
        "auc": 0.9, "demographic_parity_difference": 0.05, "precision": 0.5}), SEALED, stage="tighter")
    rule = next(r for r in result.rules if r.id == "metrics.precision")
    assert not rule.passed and rule.expected == "precision >= 0.7 (stage tighter)"


def test_lists_are_joined_without_duplicates() -> None:
    req = parse_policy(POLICY).requirements("high", "tighter")
    assert req.lineage == ("source_run_finished", "git_commit", "training_dataset")
    assert req.tags_required == ("owner", "change_ticket")


def test_approvals_a_stage_can_only_tighten() -> None:
    policy = parse_policy(POLICY)
    weaker = policy.requirements("high", "weaker").approvals
    assert (weaker.min_approvers, weaker.approver_not_author) == (2, True)  # neither lowered nor switched off
    assert (weaker.approver_not_requester, weaker.approver_not_committer) == (False, False)
    tighter = policy.requirements("high", "tighter").approvals
    assert tighter.min_approvers == 4 and tighter.approver_not_requester  # raised, switched on
    assert tighter.approver_not_author and not tighter.approver_not_committer
    # A stage that says nothing adds nothing: the risk class's own "false" stays false.
    assert policy.requirements("high", "silent").approvals == policy.requirements("high").approvals
    assert policy.requirements("high", "empty").approvals == policy.requirements("high").approvals
    # Off only where the policy says false on both sides; an unstated risk-class key is strict.
    lax = policy.requirements("lax", "weaker").approvals
    assert (lax.min_approvers, lax.approver_not_author, lax.approver_not_requester) == (3, False, False)
    assert lax.approver_not_committer
    plain = parse_policy("version: 1\nrisk_classes: {low: {}}\nstages: {p: {approvals: {approver_not_author: false,"
                         " approver_not_committer: false}}}\n").requirements("low", "p").approvals
    assert plain.approver_not_author and plain.approver_not_committer and plain.min_approvers == 1


README_EXAMPLE = """\
version: 1
risk_classes:
  high:
    metrics: {auc: ">= 0.80"}
    approvals: {min_approvers: 2, approver_not_committer: false}
stages:
  production:
    metrics: {auc: ">= 0.5", precision: ">= 0.7"}
    approvals: {min_approvers: 1, approver_not_author: false, approver_not_committer: true}
"""


def test_the_readme_example_does_what_the_readme_says() -> None:
    req = parse_policy(README_EXAMPLE).requirements("high", "production")
    assert req.to_dict()["metrics"] == {"auc": ">= 0.8 (risk class high) and >= 0.5 (stage production)",
                                        "precision": ">= 0.7 (stage production)"}
    assert req.approvals.to_dict() == {"min_approvers": 2, "approver_not_author": True,
                                       "approver_not_requester": True, "approver_not_committer": True}
    result = evaluate(parse_policy(README_EXAMPLE), lineage(version_tags={"risk_class": "high"},
                                                            metrics={"auc": 0.6, "precision": 0.9}),
                      SEALED, stage="production")
    assert [r.id for r in result.failed] == ["metrics.auc"]
