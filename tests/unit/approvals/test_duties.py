"""Separation of duties: each rule, the policy block's validation, identity matching."""

from __future__ import annotations

import pytest

from mlgate.approvals import Approval, ApprovalReport
from mlgate.approvals.duties import check_duties, person_keys
from mlgate.approvals.rules import ApprovalRules
from mlgate.errors import InvalidInputError


def approval(name: str, *ids: str) -> Approval:
    return Approval(
        approver=name,
        approver_id=ids[0] if ids else name,
        comment="ok",
        time=None,
        source="azure-devops",
        identities=(name, *ids),
    )


def report(
    *approvals: Approval,
    requesters: tuple[str, ...] = ("Rita Requester", "rita@corp.example"),
    authors: tuple[str, ...] = (),
    min_required: int | None = None,
) -> ApprovalReport:
    return ApprovalReport("azure-devops", approvals, min_required, requesters, authors, where="stage prod")


STRICT = ApprovalRules.from_dict({"min_approvers": 2, "approver_not_author": True, "approver_not_requester": True})


def test_two_independent_approvers_pass() -> None:
    r = report(approval("Ana", "ana@corp.example"), approval("Ben", "ben@corp.example"), authors=("Carl",))
    assert check_duties(r, STRICT, model_authors=["dora@corp.example"]) == []


def test_too_few_distinct_approvers() -> None:
    same_twice = report(approval("Ana", "ana@corp.example"), approval("Ana M.", "ana@corp.example"))
    [v] = check_duties(same_twice, STRICT)
    assert v.rule == "min_approvers" and "1 distinct approver(s)" in v.message and "2 required" in v.message


def test_no_approver_at_all_is_a_violation_by_default() -> None:
    [v] = check_duties(report(), ApprovalRules())
    assert v.rule == "min_approvers" and "nobody" in v.message


def test_ci_minimum_counts_too() -> None:
    [v] = check_duties(report(approval("Ana", "ana@corp.example"), min_required=2), ApprovalRules())
    assert v.rule == "min_approvers"


def test_approver_is_the_model_author() -> None:
    r = report(approval("Ana", "ana@corp.example"), approval("Ben", "ben@corp.example"))
    [v] = check_duties(r, STRICT, model_authors=["ana"])  # mlflow.user is often the bare user name
    assert v.rule == "approver_not_author" and v.approver == "Ana" and "mlflow.user" in v.message


def test_approver_is_the_requester() -> None:
    r = report(approval("Ben", "ben@corp.example"), approval("Rita Requester", "rita@corp.example"))
    [v] = check_duties(r, STRICT)
    assert v.rule == "approver_not_requester" and v.approver == "Rita Requester"


def test_approver_is_the_commit_author_github_noreply() -> None:
    r = report(
        approval("monalisa", "583231"),
        approval("Ben", "ben@corp.example"),
        authors=("Mona Lisa", "583231+monalisa@users.noreply.github.com"),
    )
    [v] = check_duties(r, STRICT)
    assert v.rule == "approver_not_committer" and "monalisa" in v.message


def test_rules_can_be_switched_off_explicitly() -> None:
    rules = ApprovalRules.from_dict(
        {
            "min_approvers": 1,
            "approver_not_author": False,
            "approver_not_requester": False,
            "approver_not_committer": False,
        }
    )
    r = report(approval("Rita Requester", "rita@corp.example"), authors=("rita@corp.example",))
    assert check_duties(r, rules, model_authors=["rita"]) == []


def test_every_conflict_is_reported_not_just_the_first() -> None:
    r = report(approval("Rita Requester", "rita@corp.example"), authors=("rita@corp.example",))
    rules = {v.rule for v in check_duties(r, STRICT, model_authors=["CORP\\rita"])}
    assert rules == {
        "min_approvers",
        "approver_not_author",
        "approver_not_requester",
        "approver_not_committer",
    }


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"min_approvers": 0}, "approvals.min_approvers: must be an integer >= 1"),
        ({"min_approvers": "2"}, "approvals.min_approvers"),
        ({"approver_not_author": "yes"}, "approvals.approver_not_author: must be true or false"),
        ({"aprover_not_author": True}, "approvals.aprover_not_author: unknown key"),
        (["min_approvers"], "approvals: must be a mapping"),
    ],
)
def test_bad_policy_blocks_name_the_key(block: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace(".", r"\.")):
        ApprovalRules.from_dict(block)


def test_missing_block_is_strict() -> None:
    assert ApprovalRules.from_dict(None) == ApprovalRules(1, True, True, True)


def test_person_keys() -> None:
    assert person_keys("Ana@Corp.Example") == {"ana@corp.example", "ana"}
    assert "octocat" in person_keys("1+octocat@users.noreply.github.com")
    assert "ana" in person_keys("CORP\\Ana")
    assert person_keys("  ") == set()


def test_one_rules_type_round_trips_through_the_evidence() -> None:
    from mlgate.policy import Approvals, parse_policy

    assert Approvals is ApprovalRules  # the policy's approvals block and the duty rules are one class
    policy = parse_policy(
        "version: 1\nrisk_classes:\n  high:\n    approvals: {min_approvers: 2, approver_not_committer: false}\n"
        "stages:\n  production:\n    approvals: {min_approvers: 3}\n"
    )
    rules = policy.requirements("high", "production").approvals
    written = policy.requirements("high", "production").to_dict()["approvals"]
    # the JSON the gate writes into the evidence, key for key
    assert written == {"min_approvers": 3, "approver_not_author": True, "approver_not_requester": True,
                       "approver_not_committer": False}
    assert list(written) == ["min_approvers", "approver_not_author", "approver_not_requester",
                             "approver_not_committer"]
    assert ApprovalRules.from_dict(written) == rules


def test_a_stage_only_tightens() -> None:
    lax = ApprovalRules(2, False, False, False)
    assert lax.tightened({"min_approvers": 1, "approver_not_author": True}) == ApprovalRules(2, True, False, False)
    assert lax.tightened({}) == lax
