"""Offline pieces of `record`/`rollback`: which rules apply, CI approvals only in CI, the alias history."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.approvals import ApprovalRequest
from mlgate.approvals.rules import ApprovalRules
from mlgate.errors import InvalidInputError, RefusedError, UsageError
from mlgate.evidence.pack import Evidence
from mlgate.governed.record import duty_rules, rollback_target, run_key
from mlgate.ledger import Draft
from mlgate.ledger.file import FileLedger
from mlgate.platforms.base import CIContext


def test_approver_flag_is_refused_inside_ci() -> None:
    from mlgate.platforms import detect_platform

    request = ApprovalRequest("production", approvers=("Me",), comment="trust me")
    for platform in ("github", "azure-devops"):
        with pytest.raises(UsageError, match="only for local runs"):
            detect_platform(platform, {}).read_approvals(request)


def _evidence(approvals: object = None) -> Evidence:
    """An evidence pack as the gate writes it, with ``requirements.approvals`` = ``approvals``."""
    doc = {
        "model": {"ref": "models:/m/1", "name": "m", "version": "1"},
        "decision": {"passed": True, "failed_rules": []},
        "policy": {"source": "p.yaml", "sha256": "cd" * 32},
        "requirements": None if approvals is None else {"approvals": approvals},
        "evidence_sha256": "ab" * 32,
    }
    return Evidence.from_document(doc, error=InvalidInputError)


def test_rules_from_policy_file_evidence_or_strict_defaults(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ndefault_risk: high\nrisk_classes:\n  high:\n"
        "    approvals: {min_approvers: 3, approver_not_author: true}\n  low: {}\n"
    )
    rules, source = duty_rules(policy_path=str(policy), evidence=None, version_tags={}, stage="production")
    # a rule the block leaves out is strict, never lax
    assert (rules.min_approvers, rules.approver_not_author, rules.approver_not_requester) == (3, True, True)
    assert rules.approver_not_committer
    assert "risk class high" in source
    low, _ = duty_rules(policy_path=str(policy), evidence=None, version_tags={"risk_class": "low"}, stage="x")
    # no approvals block at all: the strict defaults, never fewer than one approver
    assert (low.min_approvers, low.approver_not_author, low.approver_not_requester) == (1, True, True)
    with pytest.raises(UsageError, match="risk class"):
        duty_rules(policy_path=str(policy), evidence=None, version_tags={"risk_class": "nope"}, stage="x")
    from_evidence, source = duty_rules(
        policy_path=None,
        evidence=_evidence({"min_approvers": 2}),
        version_tags={},
        stage="production",
    )
    assert from_evidence.min_approvers == 2 and "evidence" in source
    assert from_evidence.approver_not_author and from_evidence.approver_not_requester
    lax_file = tmp_path / "lax.yaml"
    lax_file.write_text(
        "version: 1\ndefault_risk: low\nrisk_classes:\n  low:\n"
        "    approvals: {approver_not_author: false, approver_not_requester: false, approver_not_committer: false}\n"
    )
    lax, _ = duty_rules(policy_path=str(lax_file), evidence=None, version_tags={}, stage="x")
    assert (lax.approver_not_author, lax.approver_not_requester, lax.approver_not_committer) == (False, False, False)
    strict, source = duty_rules(policy_path=None, evidence=_evidence(), version_tags={}, stage="production")
    assert strict.approver_not_author and strict.approver_not_requester and "strict" in source


def test_run_key_is_per_ci_run_and_stable_locally() -> None:
    ci = CIContext(platform="github", run_id="42", repository="o/r")
    again = CIContext(platform="github", run_id="42", repository="o/r", run_url="https://x")
    assert run_key(ci, "approved", "m", "1", "production") == run_key(again, "approved", "m", "1", "production")
    assert run_key(ci, "approved", "m", "1", "production") != run_key(ci, "approved", "m", "2", "production")
    local = CIContext(platform="local")
    assert run_key(local, "approved", "m", "1", "p", "a") == run_key(local, "approved", "m", "1", "p", "a")
    assert run_key(local, "approved", "m", "1", "p", "a") != run_key(local, "approved", "m", "1", "p", "b")


def _history(tmp_path: Path, steps: list[tuple[str, str]]) -> list[object]:
    ledger = FileLedger(tmp_path / "l.jsonl")
    for event, version in steps:
        ledger.append(Draft(event=event, model=f"models:/m/{version}", stage="production"))
    return list(ledger.entries())


def test_rollback_target_replays_the_alias_history(tmp_path: Path) -> None:
    from mlgate.ledger.base import Entry

    history = [
        e
        for e in _history(tmp_path, [("approved", "1"), ("approved", "2"), ("approved", "3"), ("rolled_back", "2")])
        if isinstance(e, Entry)
    ]
    last, target = rollback_target(history, "2", "m", "production")
    assert last.seq == 4 and target.get("model") == "models:/m/1"
    with pytest.raises(RefusedError, match="moved outside mlgate"):
        rollback_target(history, "3", "m", "production")
    with pytest.raises(RefusedError, match="no earlier approved version"):
        rollback_target(history[:1], "1", "m", "production")
    with pytest.raises(RefusedError, match="no approved record"):
        rollback_target([], "1", "m", "production")


def test_record_with_a_stage_cannot_weaken_the_risk_class_duties(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ndefault_risk: high\nrisk_classes:\n  high:\n    approvals: {min_approvers: 2}\n"
        "stages:\n  production:\n    approvals: {min_approvers: 1, approver_not_author: false,"
        " approver_not_requester: false, approver_not_committer: false}\n"
    )
    rules, _ = duty_rules(policy_path=str(policy), evidence=None, version_tags={}, stage="production")
    assert rules.min_approvers == 2
    assert rules.approver_not_author and rules.approver_not_requester and rules.approver_not_committer


def test_no_deployed_event_the_approved_entry_is_the_deployment_record(tmp_path: Path) -> None:
    from mlgate.ledger.base import EVENTS

    assert "deployed" not in EVENTS and "approved" in EVENTS
    with pytest.raises(ValueError, match="unknown ledger event 'deployed'"):
        Draft(event="deployed")


def test_rules_recorded_in_the_evidence_are_read_back_typed() -> None:
    # the evidence's approvals block is read by the same ApprovalRules that wrote it
    rules = ApprovalRules(3, True, False, True)
    assert _evidence(rules.to_dict()).approvals == rules
    with pytest.raises(InvalidInputError, match=r"requirements\.approvals\.min_approvers"):
        _evidence({"min_approvers": "2"})
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        _evidence("lax")
