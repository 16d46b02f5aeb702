from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate import __version__
from mlgate.cli import COMMANDS, main


def _model(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "shard-0.bin").write_bytes(b"\x00" * 4096)
    (root / "MLmodel").write_text("flavors: {}\n")
    return root


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlgate {__version__}"


def test_help_lists_every_command_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "could not evaluate" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: mlgate {command}")
    assert "--verbose" in out


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["verify"]) == 2
    assert "required" in capsys.readouterr().err


def test_seal_writes_canonical_manifest_and_prints_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    out_file = tmp_path / "manifest.json"
    assert main(["seal", str(model), "-o", str(out_file)]) == 0
    data = out_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert f"manifest sha256:{digest}" in capsys.readouterr().out
    doc = json.loads(data)
    assert doc["predicateType"] == "https://model_signing/signature/v1.0"
    assert doc["subject"][0]["name"] == "m"
    resources = doc["predicate"]["resources"]
    assert [r["name"] for r in resources] == ["MLmodel", "weights/shard-0.bin"]
    assert resources[1] == {"name": "weights/shard-0.bin", "algorithm": "sha256",
                            "digest": hashlib.sha256(b"\x00" * 4096).hexdigest()}
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert doc["subject"][0]["digest"]["sha256"] == root
    assert doc["predicate"]["serialization"] == {"method": "files", "hash_type": "sha256", "allow_symlinks": False}


def test_seal_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", str(_model(tmp_path))]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["predicate"]["resources"]) == 2
    assert "sealed 2 files" in captured.err


def test_verify_match_and_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    manifest = tmp_path / "manifest.json"
    assert main(["seal", str(model), "-o", str(manifest)]) == 0
    assert main(["verify", str(model), "--manifest", str(manifest)]) == 0
    assert "verified: 2 files match" in capsys.readouterr().out
    (model / "MLmodel").write_text("tampered")
    (model / "extra.py").write_text("x")
    (model / "weights" / "shard-0.bin").unlink()
    assert main(["verify", str(model), "--manifest", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "changed  MLmodel" in out
    assert "missing  weights/shard-0.bin" in out
    assert "extra    extra.py" in out
    assert out.strip().splitlines()[-1].startswith("MISMATCH: 1 changed, 1 missing, 1 extra")


def test_verify_rejects_bad_manifest_before_hashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(tmp_path / "m")
    bad = tmp_path / "bad.json"
    bad.write_text('{"_type": ')
    import mlgate.integrity as integrity

    monkeypatch.setattr(integrity, "scan_tree", lambda *a, **k: pytest.fail("hashed before validating"))
    assert main(["verify", str(model), "--manifest", str(bad)]) == 2
    assert "invalid JSON at line 1, column 11" in capsys.readouterr().err


def test_verify_missing_manifest_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path), "--manifest", str(tmp_path / "nope.json")]) == 2
    assert "manifest " + str(tmp_path / "nope.json") + ": no such file" in capsys.readouterr().err


def test_hostile_tree_exit_1_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    (model / "out").symlink_to("/etc/passwd")
    assert main(["seal", str(model), "-o", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "out: symlink leaves the directory" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


def test_env_defaults_map_onto_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(tmp_path / "m")
    manifest = tmp_path / "manifest.json"
    assert main(["seal", str(model), "-o", str(manifest)]) == 0
    monkeypatch.setenv("MLGATE_MANIFEST", str(manifest))
    assert main(["verify", str(model)]) == 0


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mlgate", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlgate {__version__}"
def test_ci_outputs_when_running_in_github(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path / "m")
    out_file = tmp_path / "gh-output"
    out_file.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(out_file))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    assert main(["seal", str(model), "-o", str(tmp_path / "manifest.json")]) == 0
    digest = hashlib.sha256((tmp_path / "manifest.json").read_bytes()).hexdigest()
    assert digest in out_file.read_text()




def test_debug_logs_of_every_command_are_redacted(tmp_path: Path) -> None:
    """-vv turns on third-party debug logs (urllib3 request lines may carry a SAS); all pass redaction."""
    model = _model(tmp_path / "m")
    script = (
        "import logging, sys\n"
        "from mlgate import redact\n"
        "from mlgate.cli import main\n"
        "redact.register('CANARY-SIG-7f3a')\n"
        f"code = main(['-vv', 'seal', {str(model)!r}, '-o', {str(tmp_path / 'x.json')!r}])\n"
        "logging.getLogger('urllib3.connectionpool').debug('HEAD /c/b?sv=1&sig=%s HTTP/1.1', 'CANARY-SIG-7f3a')\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "HEAD /c/b?sv=1&sig=*** HTTP/1.1" in proc.stderr
    assert "CANARY-SIG-7f3a" not in proc.stderr + proc.stdout


def test_printed_data_never_becomes_a_ci_command(capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow tags, file names and comments are data: a ##vso[ or :: inside them must not reach the agent."""
    from mlgate.console import err, out

    out("risk class ##vso[task.setvariable variable=MLFLOW_TRACKING_URI]https://attacker.invalid/x")
    out("line one\n  ::add-mask::x\n::set-env name=A::b")
    err("##[error]forged")
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "##vso[" not in stream and "##[" not in stream
        assert not any(line.lstrip().startswith("::") for line in stream.splitlines())
    assert "task.setvariable variable=MLFLOW_TRACKING_URI" in captured.out  # still readable


def test_file_name_cannot_inject_an_azure_devops_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    hostile = model / "##vso[task.complete result=Succeeded]x"
    hostile.write_text("x")
    assert main(["seal", str(model), "-o", str(tmp_path / "m.json")]) == 0
    hostile.write_text("changed")
    assert main(["verify", str(model), "--manifest", str(tmp_path / "m.json")]) == 1
    out = capsys.readouterr().out
    assert "task.complete result=Succeeded]x" in out  # the changed file is listed...
    assert "##vso[" not in out  # ...but cannot complete the task


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLGATE_CONCURRENCY", "abc", "MLGATE_CONCURRENCY='abc' is not a valid value for --concurrency"),
        ("MLGATE_PLATFORM", "jenkins", "MLGATE_PLATFORM='jenkins' is not one of the choices of --platform"),
        ("MLGATE_VERBOSE", "abc", "MLGATE_VERBOSE='abc' is not a count for --verbose"),
        ("MLGATE_VERBOSE", "10", "MLGATE_VERBOSE='10' is not a count for --verbose"),
        ("MLGATE_FORCE", "perhaps", "MLGATE_FORCE='perhaps' is not a yes/no value for --force"),
        ("MLGATE_DEADLINE", "inf", "MLGATE_DEADLINE='inf' is not a valid value for --deadline"),
        ("MLGATE_LEDGER_X", "ignored", ""),
    ],
)
def test_bad_environment_default_is_a_usage_error(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["--version"]) == (2 if message else 0)  # a variable no option reads is ignored
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("value", "follows"), [("1", True), ("Yes", True), (" on ", True), ("0", False),
                                                ("false", False), ("OFF", False)])
def test_yes_no_environment_defaults(value: str, follows: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.cli import build_parser

    monkeypatch.setenv("MLGATE_FOLLOW_INTERNAL_SYMLINKS", value)
    monkeypatch.setenv("MLGATE_VERBOSE", " 2 ")
    args = build_parser().parse_args(["verify", "DIR", "--manifest", "m.json"])
    assert args.follow_internal_symlinks is follows and args.verbose == 2


def test_repeatable_options_read_one_value_per_line_and_the_command_line_replaces_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlgate.cli import build_parser

    monkeypatch.setenv("MLGATE_PUBLIC_KEY", "a.pub.pem\n\n  azure-keyvault://kv/keys/release \n")
    gate = ["gate", "m/1", "--policy", "p.yml"]
    assert build_parser().parse_args(gate).public_key == ["a.pub.pem", "azure-keyvault://kv/keys/release"]
    parser = build_parser()
    assert parser.parse_args([*gate, "--public-key", "b.pem", "--public-key", "c.pem"]).public_key == ["b.pem", "c.pem"]
    assert parser.parse_args(gate).public_key == ["a.pub.pem", "azure-keyvault://kv/keys/release"]  # not mutated
    monkeypatch.setenv("MLGATE_PUBLIC_KEY", " \n")
    assert build_parser().parse_args(gate).public_key is None  # blank: no default


@pytest.mark.parametrize("command", [["verify", "DIR", "--signature", "model.sig"], ["audit", "verify"]])
def test_a_key_list_where_the_command_takes_one_key_names_the_option_and_where_lists_go(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The action's multi-line public-key (right for gate) given to verify or audit: exit 2 saying so,
    not a "file not found" for a path with a newline in it; gate in the same environment still reads both."""
    from mlgate.cli import _one_value_each, build_parser

    monkeypatch.setenv("MLGATE_PUBLIC_KEY", "a.pub.pem\nb.pub.pem\n")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"mlgate {command[0]} --public-key takes one value, and it was given 2 lines" in err, err
    assert "MLGATE_PUBLIC_KEY" in err and "only `mlgate gate --public-key` takes several" in err, err
    assert "Traceback" not in err and "not found" not in err
    assert build_parser().parse_args(["gate", "m/1", "--policy", "p.yml"]).public_key == ["a.pub.pem", "b.pub.pem"]
    monkeypatch.setenv("MLGATE_PUBLIC_KEY", "a.pub.pem\n")  # one line (with its newline): that key
    args = build_parser().parse_args(command)
    _one_value_each(args)
    assert args.public_key == "a.pub.pem"


def test_the_list_options_are_exactly_those_repeatable_somewhere_and_single_elsewhere() -> None:
    import argparse

    from mlgate.cli import COMMANDS, LIST_DESTS, build_parser

    parser = build_parser(env_defaults=False)
    repeatable, single = set(), set()
    for name in COMMANDS:
        sub = parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
        for action in sub._actions:
            if action.option_strings:
                (repeatable if isinstance(action, argparse._AppendAction) else single).add(action.dest)
    assert set(LIST_DESTS) == repeatable & single
