"""`mlgate record`, `rollback` and `audit show` against a real MLflow server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.ledger import open_ledger
from tests.fakes.ci import ADO_TOKEN, GH_TOKEN, FakeAzureDevOps, FakeGitHub

from .helpers import AUTHOR, alias_of, register, version_tags, write_evidence

pytestmark = pytest.mark.integration


def record(env: dict[str, str], ref: str, *extra: str, platform: str = "local") -> int:
    return main(["record", ref, "--platform", platform, "--ledger", env["ledger"], *extra])


def entries(env: dict[str, str]) -> list[dict[str, object]]:
    return [dict(e.data) for e in open_ledger(env["ledger"]).entries()]


def test_local_record_writes_tags_alias_and_one_entry(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 1)
    evidence = write_evidence(Path(env["tmp"]) / "evidence" / "evidence.json", model.name, model.versions[0])
    args = ["--approver", "Ana Approver", "--comment", "evidence reviewed, ship it"]
    assert record(env, model.ref(), *args) == 0
    printed = capsys.readouterr().out
    assert "approved for production" in printed and "Ana Approver" in printed
    [entry] = entries(env)
    assert entry["event"] == "approved" and entry["model"] == model.ref()
    evidence_sha = json.loads(evidence.read_text())["evidence_sha256"]
    tags = version_tags(env["uri"], model.name, model.versions[0])
    assert tags["mlgate.approved_by"] == "Ana Approver"
    assert tags["mlgate.approval_comment"] == "Ana Approver: evidence reviewed, ship it"
    assert tags["mlgate.evidence.sha256"] == evidence_sha == entry["evidence_sha256"]
    assert tags["mlgate.ledger.head"] == f"1:{entry['hash']}"
    assert tags["mlgate.approved_at"].endswith("Z")
    assert "mlgate.deployment" in tags
    assert alias_of(env["uri"], model.name, "production") == model.versions[0]

    # the same run again: no second entry, same record
    assert record(env, model.ref(), *args) == 0
    assert "already recorded by this run: no new entry" in capsys.readouterr().out
    assert len(entries(env)) == 1
    assert main(["audit", "verify", "--ledger", env["ledger"]]) == 0
    assert "1 anchor(s) on model versions match" in capsys.readouterr().out


def test_approver_who_trained_the_model_is_refused(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    assert record(env, model.ref(), "--approver", AUTHOR, "--comment", "looks fine to me") == 1
    err = capsys.readouterr().err
    assert "approver_not_author" in err and "nothing was promoted" in err
    [entry] = entries(env)
    assert entry["event"] == "refused"
    assert alias_of(env["uri"], model.name, "production") is None
    assert "mlgate.approved_by" not in version_tags(env["uri"], model.name, model.versions[0])


def test_too_few_approvers_per_policy_is_refused(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\ndefault_risk: high\nrisk_classes:\n  high:\n"
        "    approvals: {min_approvers: 2, approver_not_author: true, approver_not_requester: true}\n"
        "stages:\n  production: {}\n"
    )
    assert record(env, model.ref(), "--policy", str(policy), "--approver", "Ana", "--comment", "ok") == 1
    assert "min_approvers" in capsys.readouterr().err
    assert (
        record(env, model.ref(), "--policy", str(policy), "--approver", "Ana", "--approver", "Ben", "--comment", "ok")
        == 0
    )
    assert [e["event"] for e in entries(env)] == ["refused", "approved"]


def test_approver_who_wrote_the_commit_is_refused(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    git = ["git", "-c", "user.name=Carl Committer", "-c", "user.email=carl@corp.example"]
    subprocess.run(["git", "init", "-q", "."], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "train"], check=True)
    assert record(env, model.ref(), "--approver", "carl@corp.example", "--comment", "mine") == 1
    assert "approver_not_committer" in capsys.readouterr().err


def test_refused_gate_is_never_recorded(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0], passed=False)
    assert record(env, model.ref(), "--approver", "Ana", "--comment", "ok") == 1
    assert "the gate refused" in capsys.readouterr().err
    assert not open_ledger(env["ledger"]).exists()


def test_evidence_for_another_version_or_edited_is_refused(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 2)
    path = write_evidence(Path("evidence/evidence.json"), model.name, model.versions[1])
    assert record(env, model.ref(0), "--approver", "Ana", "--comment", "ok") == 1
    assert "not " + model.name in capsys.readouterr().err
    write_evidence(path, model.name, model.versions[0])
    path.write_text(path.read_text().replace('"rules_total": 9', '"rules_total": 10'))
    assert record(env, model.ref(0), "--approver", "Ana", "--comment", "ok") == 1
    assert "changed after the gate wrote it" in capsys.readouterr().err


def _ci_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str], tmp: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GITHUB_OUTPUT", f"{tmp}/gh-output")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", f"{tmp}/gh-summary")
    monkeypatch.setenv("AGENT_TEMPDIRECTORY", tmp)


def test_azure_devops_record_names_microsofts_approver(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    fake = FakeAzureDevOps()
    with fake.server:
        _ci_env(monkeypatch, fake.env(), env["tmp"])
        assert record(env, model.ref(), platform="azure-devops") == 0
    captured = capsys.readouterr()
    assert ADO_TOKEN not in captured.out + captured.err
    tags = version_tags(env["uri"], model.name, model.versions[0])
    assert tags["mlgate.approved_by"] == "User Name"
    assert tags["mlgate.approval_comment"] == "User Name: Approving"
    assert tags["mlgate.approved_at"] == "2020-11-19T09:57:54.252505Z"
    assert tags["mlgate.deployment"].endswith("/_build/results?buildId=4711")
    [entry] = entries(env)
    assert entry["approvers"][0]["id"] == "uniqueName"  # type: ignore[index]
    assert "##vso[task.setvariable variable=ledger_head" in captured.out


def test_azure_devops_requester_approving_own_run_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    fake = FakeAzureDevOps()
    with fake.server:
        _ci_env(monkeypatch, fake.env() | {"BUILD_REQUESTEDFOR": "User Name"}, env["tmp"])
        assert record(env, model.ref(), platform="azure-devops") == 1
    assert "approver_not_requester" in capsys.readouterr().err
    assert alias_of(env["uri"], model.name, "production") is None


def test_github_triggering_actor_approving_own_run_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    fake = FakeGitHub()
    with fake.server:
        _ci_env(monkeypatch, fake.env(), env["tmp"])
        assert record(env, model.ref(), "--environment", "staging", platform="github") == 1
        err = capsys.readouterr().err
        assert "approver_not_requester" in err and "octocat" in err
        # another reviewer, not the requester, approves: recorded
        fake.reviews[0]["user"]["login"] = "hubot"
        fake.reviews[0]["user"]["id"] = 2
        assert record(env, model.ref(), "--environment", "staging", platform="github") == 0
    captured = capsys.readouterr()
    assert GH_TOKEN not in captured.out + captured.err
    assert version_tags(env["uri"], model.name, model.versions[0])["mlgate.approved_by"] == "hubot"
    outputs = Path(env["tmp"], "gh-output").read_text()
    assert "ledger_head<<" in outputs and "\nhubot\n" in outputs
    assert "| hubot | github |" in Path(env["tmp"], "gh-summary").read_text()


def test_rollback_moves_alias_back_with_its_own_entry(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 3)
    for i, who in enumerate(("Ana", "Ben", "Cleo")):
        write_evidence(Path("evidence/evidence.json"), model.name, model.versions[i])
        assert record(env, model.ref(i), "--approver", who, "--comment", f"release {i + 1}") == 0
    assert alias_of(env["uri"], model.name, "production") == model.versions[2]
    capsys.readouterr()

    rollback = ["rollback", model.name, "--platform", "local", "--ledger", env["ledger"]]
    assert main([*rollback, "--approver", "Olga On-call", "--comment", "v3 misbehaves"]) == 0
    assert f"-> version {model.versions[1]}" in capsys.readouterr().out
    assert alias_of(env["uri"], model.name, "production") == model.versions[1]
    last = entries(env)[-1]
    assert last["event"] == "rolled_back" and last["model"] == model.ref(1)
    tags = version_tags(env["uri"], model.name, model.versions[1])
    assert tags["mlgate.rollback.approved_by"] == "Olga On-call"
    assert tags["mlgate.ledger.head"] == f"{last['seq']}:{last['hash']}"
    assert tags["mlgate.approved_by"] == "Ben"  # the original approval stays

    # again: goes further back, to version 1, not forward to version 3
    assert main([*rollback, "--approver", "Olga On-call", "--comment", "v2 too"]) == 0
    assert alias_of(env["uri"], model.name, "production") == model.versions[0]
    # nothing earlier than version 1
    assert main([*rollback, "--approver", "Olga On-call", "--comment", "more"]) == 1
    assert "no earlier approved version" in capsys.readouterr().err

    # rollback without an approver is a usage error
    assert main(rollback) == 2
    assert main(["audit", "verify", "--ledger", env["ledger"]]) == 0


def test_rollback_refuses_when_alias_was_moved_outside_mlgate(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    model = register(env["uri"], 3)
    for i in range(2):
        write_evidence(Path("evidence/evidence.json"), model.name, model.versions[i])
        assert record(env, model.ref(i), "--approver", "Ana", "--comment", "ok") == 0
    MlflowClient(env["uri"]).set_registered_model_alias(model.name, "production", model.versions[2])
    assert (
        main(
            [
                "rollback",
                model.name,
                "--platform",
                "local",
                "--ledger",
                env["ledger"],
                "--approver",
                "Olga",
                "--comment",
                "x",
            ]
        )
        == 1
    )
    assert "moved outside mlgate" in capsys.readouterr().err


def test_audit_show_answers_the_regulator(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 1)
    evidence = write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    assert record(env, model.ref(), "--approver", "Ana Approver", "--comment", "fairness ok") == 0
    capsys.readouterr()
    ref = f"models:/{model.name}@production"
    assert main(["audit", "show", ref, "--ledger", env["ledger"]]) == 0
    text = capsys.readouterr().out
    assert "Ana Approver" in text and "fairness ok" in text
    assert json.loads(evidence.read_text())["evidence_sha256"] in text
    assert "anchor verified" in text and "lineage:" in text

    assert main(["audit", "show", ref, "--ledger", env["ledger"], "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"]["version"] == model.versions[0]
    assert answer["approval"]["approvers"][0]["name"] == "Ana Approver"
    assert answer["approval"]["approvers"][0]["comment"] == "fairness ok"
    assert answer["evidence"]["tag_matches"] is True
    assert answer["evidence"]["summary"]["verdict"] == "passed"
    assert answer["ledger"]["anchor_verified"] is True
    assert answer["lineage"]["run"]["id"] == model.run_ids[0]


def test_audit_show_without_record_is_exit_1(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    model = register(env["uri"], 2)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    assert record(env, model.ref(0), "--approver", "Ana", "--comment", "ok") == 0
    capsys.readouterr()
    assert main(["audit", "show", model.ref(1), "--ledger", env["ledger"]]) == 1
    assert "NO GOVERNED RECORD" in capsys.readouterr().out


def test_rewritten_ledger_is_caught_by_the_mlflow_anchor(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlgate.ledger import Draft
    from mlgate.ledger.file import FileLedger

    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    assert record(env, model.ref(), "--approver", "Ana", "--comment", "ok") == 0
    path = Path(env["ledger"].removeprefix("file:"))
    [original] = entries(env)
    # forge: rewrite the entry with another approver and a fully recomputed (valid) chain
    path.unlink()
    FileLedger(path).append(
        Draft(
            event="approved",
            model=str(original["model"]),
            stage="production",
            actor=str(original["actor"]),
            approvers=[{"name": "Mallory", "comment": "ok", "source": "local"}],
            evidence_sha256=str(original["evidence_sha256"]),
            run_url=None,
            details={"ledger_id": original["details"]["ledger_id"]},  # type: ignore[index]
        )
    )
    capsys.readouterr()
    assert main(["audit", "verify", "--ledger", env["ledger"], "--no-anchors"]) == 0  # the chain alone holds
    capsys.readouterr()
    assert main(["audit", "verify", "--ledger", env["ledger"]]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err
    assert main(["audit", "show", model.ref(), "--ledger", env["ledger"]]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err

    # a forged ledger with a new ledger_id at the same location: MLflow's anchors there contradict it
    path.unlink()
    FileLedger(path).append(Draft(event="approved", model=str(original["model"]), stage="production"))
    capsys.readouterr()
    assert main(["audit", "verify", "--ledger", env["ledger"]]) == 1
    assert "emptied, replaced or re-created" in capsys.readouterr().err

# ---------------------------------------------------------------------------- binding the evidence
def _gated(env: dict[str, str], model_ref: str, evidence: Path, *, passed: bool) -> None:
    """The `gated` entry `mlgate gate --ledger` appends for this evidence."""
    from mlgate.governed.events import append_event
    from mlgate.platforms.base import CIContext

    digest = json.loads(evidence.read_text())["evidence_sha256"]
    name, version = model_ref.removeprefix("models:/").split("/")
    append_event(env["ledger"], "gated", name=name, version=version, ci=CIContext("local"), evidence_sha256=digest,
              details={"passed": passed, "failed_rules": [], "stage": "production"}, fingerprint=digest)


@pytest.mark.parametrize("gated_for", [None, "staging"])
def test_evidence_gated_for_another_stage_is_refused(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], gated_for: str | None
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0], stage=gated_for)
    assert record(env, model.ref(), "--stage", "production", "--approver", "Ana", "--comment", "ok") == 1
    err = capsys.readouterr().err
    assert "not for 'production'" in err and "mlgate gate ... --stage production" in err
    assert not open_ledger(env["ledger"]).exists()
    assert alias_of(env["uri"], model.name, "production") is None
    if gated_for == "staging":  # the stage it was gated for is recorded
        assert record(env, model.ref(), "--stage", "staging", "--approver", "Ana", "--comment", "ok") == 0
        assert alias_of(env["uri"], model.name, "staging") == model.versions[0]


def test_evidence_for_an_older_seal_or_an_unsealed_version_is_refused(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    model = register(env["uri"], 2)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    MlflowClient(env["uri"]).set_model_version_tag(model.name, model.versions[0], "mlgate.manifest.sha256", "12" * 32)
    assert record(env, model.ref(0), "--approver", "Ana", "--comment", "ok") == 1
    assert "re-sealed after the gate" in capsys.readouterr().err
    MlflowClient(env["uri"]).delete_model_version_tag(model.name, model.versions[1], "mlgate.manifest.sha256")
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[1])
    assert record(env, model.ref(1), "--approver", "Ana", "--comment", "ok") == 1
    assert "carries no seal" in capsys.readouterr().err
    assert not open_ledger(env["ledger"]).exists()


def test_forged_pass_is_refused_when_the_ledger_holds_the_gate(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    path = Path("evidence/evidence.json")
    _gated(env, model.ref(), write_evidence(path, model.name, model.versions[0], passed=False), passed=False)
    # the pipeline flips decision.passed and recomputes the unkeyed digest
    write_evidence(path, model.name, model.versions[0], passed=True)
    assert record(env, model.ref(), "--approver", "Ana", "--comment", "ok") == 1
    assert "none passed with evidence sha256" in capsys.readouterr().err
    assert [e["event"] for e in entries(env)] == ["gated"]
    assert alias_of(env["uri"], model.name, "production") is None


def test_evidence_of_a_passing_gate_in_the_ledger_is_recorded(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    _gated(env, model.ref(), write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0]),
           passed=True)
    capsys.readouterr()
    assert record(env, model.ref(), "--approver", "Ana", "--comment", "ok") == 0
    captured = capsys.readouterr()
    assert "(found in the ledger)" in captured.out and "warning" not in captured.err
    gated, approved = entries(env)
    assert approved["evidence_sha256"] == gated["evidence_sha256"]
    assert approved["details"]["evidence_in_ledger"] is True  # type: ignore[index]


def test_evidence_without_a_gated_entry_is_recorded_and_says_so(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    assert record(env, model.ref(), "--approver", "Ana", "--comment", "ok") == 0
    captured = capsys.readouterr()
    assert "NOT found in the ledger" in captured.out
    assert "evidence_in_ledger: false" in captured.err
    [entry] = entries(env)
    assert entry["details"]["evidence_in_ledger"] is False  # type: ignore[index]


def test_record_reads_the_ledger_twice_not_three_times(env: dict[str, str], capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Once for the evidence binding, once under the conditional append; the identity is not read again."""
    from mlgate.ledger.file import FileLedger

    model = register(env["uri"], 2)
    write_evidence(Path(env["tmp"]) / "evidence" / "evidence.json", model.name, model.versions[0])
    args = ["--approver", "Ana Approver", "--comment", "evidence reviewed"]
    assert record(env, model.ref(), *args) == 0  # the ledger now has a first entry
    write_evidence(Path(env["tmp"]) / "evidence" / "evidence.json", model.name, model.versions[1])
    reads: list[str] = []
    lines, snapshot = FileLedger.lines, FileLedger.snapshot

    inside: list[bool] = []

    def counted_lines(self: FileLedger) -> object:
        if not inside:  # the snapshot streams the lines itself: one read
            reads.append("lines")
        return lines(self)

    def counted_snapshot(self: FileLedger, *, whole: bool) -> object:
        reads.append("snapshot")
        inside.append(True)
        try:
            return snapshot(self, whole=whole)
        finally:
            inside.pop()

    monkeypatch.setattr(FileLedger, "lines", counted_lines)
    monkeypatch.setattr(FileLedger, "snapshot", counted_snapshot)
    ref = f"models:/{model.name}/{model.versions[1]}"
    assert record(env, ref, *args) == 0, capsys.readouterr()
    assert reads == ["lines", "snapshot"]
