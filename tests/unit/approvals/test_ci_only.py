"""Inside a CI run the approvers come only from that CI's approvals API: every self-declared path is exit 2.

Each path is run in-process (``mlgate.cli.main`` / ``mlgate.github_action.main``) and through a
``python -m`` process; each must be refused before MLflow, the ledger or the CI's API is touched
(``MLFLOW_TRACKING_URI`` points at a closed port: reaching it would be exit 3, not 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate.approvals import ApprovalRequest
from mlgate.errors import UsageError
from mlgate.platforms import approval_platform, backend, detect_platform, running_ci
from tests.hostile.harness import check_output, run_in_process, run_process

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": "ghs_canaryCIONLY0123456789"}
AZURE = {"TF_BUILD": "True", "SYSTEM_ACCESSTOKEN": "ado-canary-CIONLY-5c1f"}
CANARIES = ("ghs_canaryCIONLY0123456789", "ado-canary-CIONLY-5c1f")
NOWHERE = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLGATE_LEDGER": "file:/nonexistent/ledger.jsonl"}
LOCAL_APPROVAL = ("--approver", "Mallory", "--comment", "trust me")

PATHS = [
    # (id, environment, argv)
    ("record-flag-local-github", GITHUB, ["record", "m/1", "--platform", "local", *LOCAL_APPROVAL]),
    ("record-flag-local-azure", AZURE, ["record", "m/1", "--platform", "local", *LOCAL_APPROVAL]),
    ("record-env-local-github", GITHUB | {"MLGATE_PLATFORM": "local"}, ["record", "m/1", *LOCAL_APPROVAL]),
    ("record-env-local-azure", AZURE | {"MLGATE_PLATFORM": "local"}, ["record", "m/1", *LOCAL_APPROVAL]),
    ("record-global-flag-local", GITHUB, ["--platform", "local", "record", "m/1", *LOCAL_APPROVAL]),
    ("record-approver-detected-github", GITHUB, ["record", "m/1", "--approver", "Mallory"]),
    ("record-approver-forced-azure", AZURE, ["record", "m/1", "--platform", "azure-devops", "--approver", "Me"]),
    ("record-comment-only-azure", AZURE, ["record", "m/1", "--comment", "trust me"]),
    ("record-env-comment-github", GITHUB | {"MLGATE_COMMENT": "trust me"}, ["record", "m/1"]),
    ("record-other-ci-in-github", GITHUB, ["record", "m/1", "--platform", "azure-devops"]),
    ("record-other-ci-in-azure", AZURE, ["record", "m/1", "--platform", "github"]),
    ("rollback-flag-local-github", GITHUB, ["rollback", "m", "--platform", "local", *LOCAL_APPROVAL]),
    ("rollback-env-local-azure", AZURE | {"MLGATE_PLATFORM": "local"}, ["rollback", "m", *LOCAL_APPROVAL]),
    ("rollback-approver-github", GITHUB, ["rollback", "m", "--approver", "Mallory"]),
    ("rollback-other-ci-in-azure", AZURE, ["rollback", "m", "--platform", "github"]),
]


@pytest.mark.parametrize(("environ", "argv"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS])
def test_self_declared_approval_in_ci_is_refused_in_process(
    environ: dict[str, str], argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run_in_process(argv, capsys, monkeypatch, env=environ | NOWHERE)
    assert code == 2, output
    check_output(output, canaries=CANARIES, says=("how to fix:",))
    assert "approv" in output and ("CI" in output or "run" in output)


@pytest.mark.parametrize(("environ", "argv"), [p[1:] for p in PATHS[::3]], ids=[p[0] for p in PATHS[::3]])
def test_self_declared_approval_in_ci_is_refused_by_the_process(environ: dict[str, str], argv: list[str]) -> None:
    code, output = run_process(argv, env=environ | NOWHERE)
    assert code == 2, output
    check_output(output, canaries=CANARIES, says=("how to fix:",))


def test_the_message_says_why_and_what_to_do(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run_in_process(["record", "m/1", "--platform", "local", *LOCAL_APPROVAL], capsys, monkeypatch,
                                  env=GITHUB | NOWHERE)
    assert code == 2
    assert "cannot be recorded in a GitHub Actions run (GITHUB_ACTIONS is set)" in output
    assert "a pipeline cannot name its own approver" in output
    assert "configure the approval on the environment or stage" in output


def _action_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return GITHUB | NOWHERE | {
        "ACTION_MLGATE_COMMAND": "record",
        "ACTION_MLGATE_REF": "models:/m/1",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        **extra,
    }


@pytest.mark.parametrize("extra", [{"MLGATE_PLATFORM": "local"}, {"MLGATE_COMMENT": "trust me"},
                                   {"MLGATE_PLATFORM": "azure-devops"}])
def test_github_action_entry_point_refuses_in_process(
    extra: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgate import github_action

    environ = _action_env(tmp_path, **extra)
    for name in ("TF_BUILD", "MLGATE_PLATFORM", "MLGATE_COMMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert github_action.main([], environ) == 2
    captured = capsys.readouterr()
    check_output(captured.out + captured.err, canaries=CANARIES, says=("a pipeline cannot name its own approver",))
    assert "result=configuration-error" in (tmp_path / "output").read_text()


def test_github_action_entry_point_refuses_in_its_process(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TF_BUILD", "MLGATE_PLATFORM")}
    env.update(_action_env(tmp_path, MLGATE_PLATFORM="local"))
    proc = subprocess.run([sys.executable, "-m", "mlgate.github_action"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    check_output(proc.stdout + proc.stderr, canaries=CANARIES, says=("GITHUB_ACTIONS is set",))
    assert "exit_code=2\nresult=configuration-error" in (tmp_path / "output").read_text()


def test_outside_ci_a_local_approval_is_read() -> None:
    report = detect_platform("local", {}).read_approvals(ApprovalRequest("production", ("Ana",), "ok"))
    assert [a.approver for a in report.approvals] == ["Ana"] and report.source == "local"
    assert approval_platform(ApprovalRequest("production", ("Ana",), "ok"), "auto", {}).name == "local"


def test_ci_is_told_by_its_marker_only() -> None:
    assert running_ci({}) is None
    assert running_ci({"GITHUB_ACTIONS": "false", "TF_BUILD": ""}) is None
    assert running_ci({"TF_BUILD": "True"}) is backend("azure-devops")
    assert running_ci({"GITHUB_ACTIONS": "true", "TF_BUILD": "True"}) is backend("github")
    # both markers: either CI's own platform may read the approvals
    both = {"GITHUB_ACTIONS": "true", "TF_BUILD": "True"}
    assert approval_platform(ApprovalRequest("p"), "azure-devops", both).name == "azure-devops"
    with pytest.raises(UsageError, match="only for local runs"):
        approval_platform(ApprovalRequest("p", ("Me",)), "github", both)


def test_no_ci_entry_point_maps_an_approver() -> None:
    """The Azure task and the action take no approver or comment input (the action's `platform` is refused above)."""
    root = Path(__file__).resolve().parents[3]
    task = json.loads((root / "azure-pipelines-task/MlgateV1/task.json").read_text(encoding="utf-8"))
    names = {i["name"].lower() for i in task["inputs"]}
    assert not names & {"approver", "comment", "platform"}
    import yaml

    action = yaml.safe_load((root / "action.yml").read_text(encoding="utf-8"))
    assert not set(action["inputs"]) & {"approver", "comment"}
