"""`python -m mlgate.github_action`: inputs (environment) -> explicit mlgate argv, outputs, summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlgate.errors import UsageError
from mlgate.github_action import COMMANDS, build_argv, gate_outputs, main, result_name


def env(command: str, **values: str) -> dict[str, str]:
    return {"ACTION_MLGATE_COMMAND": command, **{f"ACTION_MLGATE_{k.upper()}": v for k, v in values.items()}}


@pytest.mark.parametrize(
    ("environ", "argv"),
    [
        (env("seal", directory="model"), ["seal", "model"]),
        (env("seal"), ["seal"]),  # seal --model REF takes no directory
        (env("verify", directory=" deploy dir "), ["verify", "deploy dir"]),
        (env("gate", ref="models:/m/1", directory="ignored"), ["gate", "models:/m/1"]),
        (env("audit   show", ref="m@production"), ["audit", "show", "m@production"]),
        (env("audit verify"), ["audit", "verify"]),
        (env("secrets", ref="ignored"), ["secrets"]),
        (env("rollback", model_name="fraud", ref="ignored"), ["rollback", "fraud"]),
    ],
)
def test_build_argv(environ: dict[str, str], argv: list[str]) -> None:
    assert build_argv(environ) == argv


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (env(""), "input 'command' is ''"),
        (env("serve"), "input 'command' is 'serve'"),
        (env("seal; rm -rf /"), "not an mlgate command this action runs"),
        (env("audit"), "input 'command' is 'audit'"),
        (env("gate"), "`mlgate gate` needs the input 'ref'"),
        (env("record", ref="--stage=x"), "input 'ref' must not start with '-'"),
    ],
)
def test_bad_inputs_are_usage_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_argv(environ)


def test_result_names() -> None:
    assert [result_name(c) for c in (0, 1, 2, 3, 70)] == [
        "passed",
        "refused",
        "configuration-error",
        "could-not-evaluate",
        "could-not-evaluate",
    ]


def test_commands_cover_the_contract() -> None:
    assert {c.split()[0] for c in COMMANDS} == {
        "seal",
        "verify",
        "lineage",
        "gate",
        "secrets",
        "record",
        "rollback",
        "audit",
    }


def test_main_writes_outputs_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.bin").write_bytes(b"abc")
    out, summary = tmp_path / "out", tmp_path / "summary"
    environ = {
        **env("seal", directory=str(model)),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    assert main(["--platform", "local"], environ) == 0
    assert out.read_text() == "exit_code=0\nresult=passed\n"
    assert "**mlgate seal**: passed (exit 0)" in summary.read_text()
    assert '"_type":"https://in-toto.io/Statement/v1"' in capsys.readouterr().out


def test_main_never_echoes_a_bad_command_into_files(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    canary = "canary-$(id)-value"
    environ = {**env(canary), "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    assert main([], environ) == 2
    assert out.read_text() == "exit_code=2\nresult=configuration-error\n"
    assert canary not in summary.read_text()


def test_gate_outputs_decision_from_the_exit_code(tmp_path: Path) -> None:
    evidence = tmp_path / "ev"
    evidence.mkdir()
    (evidence / "evidence.json").write_text("{}")
    argv = ["gate", "models:/m/1", "--policy", "p.yml", "--evidence-dir", str(evidence)]
    passed = gate_outputs(argv, 0)
    assert passed["decision"] == "passed"
    assert gate_outputs(argv, 1)["decision"] == "refused"
    assert gate_outputs(argv, 2) == {} and gate_outputs(argv, 3) == {}
    assert gate_outputs(["verify", "d"], 0) == {}
    from mlgate.cli import build_parser

    gate_options = (
        next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        .choices["gate"]
        ._option_string_actions
    )  # type: ignore[attr-defined]
    if "--evidence-dir" in gate_options and "--policy" in gate_options:
        assert passed["evidence_path"] == str((evidence / "evidence.json").resolve())
        (evidence / "evidence.json").unlink()
        assert "evidence_path" not in gate_outputs(argv, 0)
