"""The composite GitHub Action (action.yml), its self-test workflow and the reusable workflow templates."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.conftest import ROOT, command_parsers, is_switch, long_options, tool

pytestmark = pytest.mark.packaging

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# The reusable workflows: under .github/workflows, so another repository calls them by commit SHA
# (`owner/mlgate/.github/workflows/mlgate-gate.yml@SHA`); GitHub accepts no other place.
TEMPLATES = sorted((ROOT / ".github" / "workflows").glob("mlgate-*.yml"))
EXAMPLES = sorted((ROOT / "templates" / "github" / "examples").glob("*.yml"))
# How the examples call them: this repository's path at a full commit SHA.
REMOTE_CALL = re.compile(r"uses: your-org/mlgate/(\.github/workflows/[\w.-]+\.yml)@[0-9a-f]{40}")


def as_local_calls(text: str) -> str:
    """An example caller with its remote calls made local, so actionlint checks them against the workflows."""
    return REMOTE_CALL.sub(lambda m: f"uses: ./{m.group(1)}", text)
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Inputs that are not CLI options: the command, its positionals and the action's own settings.
NOT_OPTIONS = {"command", "ref", "directory", "model-name", "python-version", "extras"}


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return data


def run_step() -> dict[str, Any]:
    steps = [s for s in action()["runs"]["steps"] if s.get("id") == "run"]
    assert len(steps) == 1
    return steps[0]


def test_files_exist() -> None:
    assert (ROOT / "action.yml").is_file()
    assert WORKFLOWS, "no workflow in .github/workflows"
    assert {p.name for p in TEMPLATES} >= {"mlgate-register-seal.yml", "mlgate-gate.yml", "mlgate-deploy.yml"}


def _lint(tmp_path: Path, break_input: str = "") -> subprocess.CompletedProcess[str]:
    """actionlint on the workflows and templates in a scratch repository that holds action.yml both at
    the root (`uses: ./` of the self-test) and at ./.mlgate-action (where the templates check the action
    out), so every `with:` is checked against the action's inputs. actionlint reads local actions only
    inside a git repository, hence `git init`."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for path in [*WORKFLOWS, *EXAMPLES]:
        text = as_local_calls(path.read_text(encoding="utf-8"))
        if break_input:
            text = text.replace(
                "          command: verify\n", f"          command: verify\n          {break_input}\n"
            )
        (workflows / path.name).write_text(text, encoding="utf-8")
    for where in (tmp_path, tmp_path / ".mlgate-action"):
        where.mkdir(exist_ok=True)
        (where / "action.yml").write_text((ROOT / "action.yml").read_text(encoding="utf-8"), encoding="utf-8")
    return subprocess.run(
        [tool("actionlint"), "-oneline", *sorted(str(p) for p in workflows.iterdir())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_actionlint_workflows_and_templates_against_the_action_inputs(tmp_path: Path) -> None:
    proc = _lint(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_an_unknown_action_input(tmp_path: Path) -> None:
    proc = _lint(tmp_path, break_input="manifest-file: nope")
    assert proc.returncode != 0
    flagged = {
        Path(line.split(":", 1)[0]).name for line in proc.stdout.splitlines() if "manifest-file" in line
    }
    assert flagged == {"self-test.yml", "mlgate-deploy.yml"}, proc.stdout


def test_zizmor_offline_has_no_findings() -> None:
    files = [ROOT / "action.yml", *WORKFLOWS, *EXAMPLES]
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout, proc.stdout


def test_every_external_action_is_pinned_by_commit_sha() -> None:
    uses = []
    for step in action()["runs"]["steps"]:
        if "uses" in step:
            uses.append(step["uses"])
    for path in [*WORKFLOWS, *EXAMPLES]:
        uses += re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)", path.read_text(encoding="utf-8"), re.M)
    external = [u for u in uses if not u.startswith("./")]
    assert external
    for ref in external:
        assert SHA_PIN.match(ref), f"{ref} is not pinned to a full commit SHA"


def test_inputs_reach_the_code_only_through_env() -> None:
    for step in action()["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], f"expression pasted into run: of step {step.get('name')}"
    for path in [*WORKFLOWS, *TEMPLATES]:
        for step in _all_steps(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if "run" in step:
                assert "${{" not in step["run"], f"{path.name}: expression in run: of {step.get('name')}"


def _all_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_every_option_input_maps_to_one_mlgate_variable() -> None:
    inputs = action()["inputs"]
    env = run_step()["env"]
    for name in inputs:
        if name in NOT_OPTIONS:
            continue
        var = "MLGATE_" + name.upper().replace("-", "_")
        assert env.get(var) == f"${{{{ inputs.{name} }}}}", f"input {name} must be passed as env {var}"
    for var, value in env.items():
        match = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", str(value))
        if var.startswith("MLGATE_") and var != "MLGATE_ACTION_PYTHON":
            assert match and match.group(1) in inputs, f"{var} does not come from an input"


def test_option_inputs_are_options_of_the_commands_they_name() -> None:
    """Each option input's description starts with the commands it applies to ("gate/record: ...")."""
    parsers = command_parsers()
    common = long_options(parsers["seal"]) & long_options(parsers["verify"])
    for name, spec in action()["inputs"].items():
        if name in NOT_OPTIONS:
            continue
        flag = "--" + name
        prefix = spec["description"].split(":", 1)[0]
        commands = [c.strip() for c in prefix.split("/")] if ":" in spec["description"] else []
        if not commands or not all(c.split()[0] in {p.split()[0] for p in parsers} for c in commands):
            assert flag in common, f"input {name}: no command prefix and {flag} is not a common option"
            continue
        for command in commands:
            subcommands = [k for k in parsers if k.startswith(f"{command} ")]
            targets = subcommands if command == "audit" and subcommands else [command]
            having = [t for t in targets if flag in long_options(parsers[t])]
            assert having, f"`mlgate {command}` has no {flag}"
            boolean = str(spec.get("default")) == "false"
            for target in having:
                assert is_switch(parsers[target], flag) == boolean, f"input {name}: {flag} on/off mismatch"


# Step outputs written by a command through the platform adapter, and the command writing each.
OUTPUT_WRITERS = {
    "manifest_sha256": "seal",
    "evidence_sha256": "gate",
    "approver": "record",
    "ledger_head": "record",
}
# Step outputs the entry point writes itself (from the exit code and the command's options).
ENTRY_POINT_OUTPUTS = {"exit_code", "result", "decision", "evidence_path"}


def test_outputs_the_action_exposes_are_written() -> None:
    exposed = {spec["value"].split(".")[-1].rstrip(" }") for spec in action()["outputs"].values()}
    assert exposed == set(OUTPUT_WRITERS) | ENTRY_POINT_OUTPUTS
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "mlgate").rglob("*.py"))
    for output in OUTPUT_WRITERS:
        assert re.search(rf"set_output\(\s*[\"']{output}[\"']", source), f"nothing writes the {output} output"


def test_option_inputs_can_be_environment_defaults() -> None:
    """MLGATE_<OPTION> sets an option's default for single-value, repeatable and on/off options (cli.py)."""
    import argparse

    parsers = command_parsers()
    for var in run_step()["env"]:
        if not var.startswith("MLGATE_") or var == "MLGATE_ACTION_PYTHON":
            continue
        dest = var[len("MLGATE_") :].lower()
        for name, parser in parsers.items():
            for action in parser._actions:
                if action.dest == dest and action.option_strings:
                    ok = (argparse._StoreAction, argparse._StoreTrueAction, argparse._CountAction,
                          argparse._AppendAction)  # repeatable: one value per line
                    assert isinstance(action, ok), f"{var}: `mlgate {name}` {action.option_strings} cannot read it"


def test_setup_python_leaves_the_callers_python_alone() -> None:
    setup = [
        s for s in action()["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@")
    ]
    assert len(setup) == 1
    assert setup[0]["with"]["update-environment"] is False
    cache = [
        s["uses"].split("@")[0] for s in action()["runs"]["steps"] if "actions/cache" in str(s.get("uses"))
    ]
    assert cache == ["actions/cache/restore", "actions/cache/save"]


def test_outputs_come_from_the_run_step() -> None:
    outputs = action()["outputs"]
    assert set(outputs) >= {"decision", "manifest-sha256", "evidence-path", "approver", "exit-code", "result"}
    for name, spec in outputs.items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name.replace('-', '_')} }}}}"


def test_templates_use_environment_and_oidc() -> None:
    for path in TEMPLATES:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        triggers = workflow.get(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
        assert "workflow_call" in triggers, path.name
        assert workflow["permissions"] == {}, f"{path.name}: default to no permissions"
        for job in workflow["jobs"].values():
            assert job["permissions"].get("id-token") == "write", path.name
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "mlgate-deploy.yml").read_text(encoding="utf-8"))
    assert deploy["jobs"]["deploy"]["environment"] == "${{ inputs.environment }}"


# -- the run step executed as the runner would: bash with the step's env ----------------------------------


def _step_env(inputs: dict[str, str], tmp_path: Path) -> dict[str, str]:
    defaults = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()}
    values = {**defaults, **inputs}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLGATE_", "GITHUB_", "ACTION_MLGATE_"))}
    for var, expr in run_step()["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", expr)
        env[var] = values[match.group(1)] if match else ""
    env["MLGATE_ACTION_PYTHON"] = sys.executable
    env["PYTHONPATH"] = str(ROOT / "src")
    env["GITHUB_OUTPUT"] = str(tmp_path / "output")
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    return env


def _run_action(
    inputs: dict[str, str], tmp_path: Path, platform: str = "local"
) -> tuple[int, dict[str, str], str]:
    for name in ("output", "summary.md"):
        (tmp_path / name).write_text("", encoding="utf-8")
    env = _step_env({"platform": platform, **inputs}, tmp_path)
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run_step()["run"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = dict(
        line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines() if "=" in line
    )
    return proc.returncode, outputs, proc.stdout + proc.stderr


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model dir $(touch pwned)"
    root.mkdir()
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.bin").write_bytes(os.urandom(4096))
    return root


def test_action_seal_then_verify_and_refuse_a_tampered_copy(tmp_path: Path, model: Path) -> None:
    manifest = tmp_path / "manifest.json"
    code, outputs, log = _run_action(
        {"command": "seal", "directory": str(model), "output": str(manifest)}, tmp_path
    )
    assert code == 0, log
    assert outputs["exit_code"] == "0" and outputs["result"] == "passed"
    assert "**mlgate seal**: passed (exit 0)" in (tmp_path / "summary.md").read_text()
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert digest in log
    assert not (tmp_path / "pwned").exists()

    code, outputs, log = _run_action(
        {"command": "verify", "directory": str(model), "manifest": str(manifest)}, tmp_path
    )
    assert (code, outputs["result"]) == (0, "passed"), log

    (model / "model.bin").write_bytes(b"tampered")
    code, outputs, log = _run_action(
        {"command": "verify", "directory": str(model), "manifest": str(manifest)}, tmp_path
    )
    assert (code, outputs["exit_code"], outputs["result"]) == (1, "1", "refused"), log
    assert "**mlgate verify**: refused (exit 1)" in (tmp_path / "summary.md").read_text()


def test_action_input_values_are_never_run_as_shell(tmp_path: Path) -> None:
    code, outputs, log = _run_action(
        {"command": 'seal"; touch pwned; echo "', "directory": "$(touch pwned2)"}, tmp_path
    )
    assert code == 2, log
    assert outputs["result"] == "configuration-error"
    assert "not an mlgate command this action runs" in log
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_action_reports_a_missing_positional_input(tmp_path: Path) -> None:
    code, outputs, log = _run_action({"command": "verify", "manifest": "m.json"}, tmp_path)
    assert code == 2
    assert "needs the input 'directory'" in log
    assert outputs["exit_code"] == "2"


# -- the isolated, cached environment -----------------------------------------------------------------------


def test_step_outputs_the_action_reads_are_written_by_its_steps() -> None:
    sys.path.insert(0, str(ROOT / "action"))
    try:
        import setup_venv
    finally:
        sys.path.pop(0)
    text = (ROOT / "action.yml").read_text(encoding="utf-8")
    read = set(re.findall(r"steps\.plan\.outputs\.([a-z_-]+)", text))
    assert read and read <= set(setup_venv.plan({"ACTION_MLGATE_COMMAND": "verify"}))
    assert set(re.findall(r"steps\.install\.outputs\.([a-z_-]+)", text)) == {"python"}
    assert set(re.findall(r"steps\.python\.outputs\.([a-z_-]+)", text)) == {"python-path"}
    assert set(re.findall(r"steps\.cache\.outputs\.([a-z_-]+)", text)) == {"cache-hit"}


def test_workflows_run_commands_the_action_accepts() -> None:
    from mlgate.github_action import COMMANDS

    seen = set()
    for path in [*WORKFLOWS, *TEMPLATES]:
        for step in _all_steps(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if str(step.get("uses", "")).startswith("./"):
                command = step["with"]["command"]
                seen.add(command)
                if path.name != "self-test.yml" or step.get("id") != "bad":
                    assert command in COMMANDS, f"{path.name}: {command!r}"
    assert {"seal", "verify", "gate", "secrets", "record"} <= seen


def test_example_callers_are_in_the_readme_and_call_every_template_by_sha() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    called = set()
    for example in EXAMPLES:
        text = example.read_text(encoding="utf-8")
        assert f"```yaml\n{text}```" in readme, f"{example.name} is not in the README verbatim"
        assert "uses: ./" not in text, f"{example.name}: a caller in another repository cannot use a local path"
        called |= {Path(m).name for m in REMOTE_CALL.findall(text)}
    assert called == {p.name for p in TEMPLATES}


def test_reusable_workflows_are_callable_and_serialise_what_they_move() -> None:
    for path in TEMPLATES:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "workflow_call" in workflow.get(True, workflow.get("on")), path.name
    for name in ("mlgate-gate.yml", "mlgate-deploy.yml", "mlgate-rollback.yml"):
        [job] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))["jobs"].values()
        assert job["concurrency"]["cancel-in-progress"] is False, name  # wait, never cancel a release half-way
    groups = {name: yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))["jobs"]
              for name in ("mlgate-deploy.yml", "mlgate-rollback.yml")}
    assert groups["mlgate-deploy.yml"]["deploy"]["concurrency"]["group"] == \
        groups["mlgate-rollback.yml"]["rollback"]["concurrency"]["group"]  # a rollback never races a deploy
    rollback = yaml.safe_load((ROOT / "templates" / "github" / "examples" / "rollback.yml").read_text(encoding="utf-8"))
    assert "workflow_dispatch" in rollback[True]


def test_actionlint_checks_the_callers_inputs(tmp_path: Path) -> None:
    """A caller passing an input the reusable workflow does not declare is caught."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for path in TEMPLATES:
        (workflows / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = as_local_calls(
        (ROOT / "templates" / "github" / "examples" / "release.yml").read_text(encoding="utf-8")
    ).replace("      deploy-script: deploy.sh\n", "      deploy-scrip: deploy.sh\n")
    (workflows / "release.yml").write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [tool("actionlint"), "-oneline", str(workflows / "release.yml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "deploy-scrip" in proc.stdout, proc.stdout


def parse_github_file_command(text: str) -> dict[str, str]:
    """`NAME=VALUE` lines and `NAME<<DELIMITER` heredocs, as the runner reads $GITHUB_OUTPUT."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for part in lines:
                if part == delimiter:
                    break
                body.append(part)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_action_on_a_github_runner_has_mlgate_outputs_next_to_its_own(tmp_path: Path, model: Path) -> None:
    """With GITHUB_ACTIONS=true the CLI's GitHub adapter writes its outputs into the same file."""
    (tmp_path / "output").write_text("", encoding="utf-8")
    (tmp_path / "summary.md").write_text("", encoding="utf-8")
    env = _step_env({"command": "seal", "directory": str(model), "platform": ""}, tmp_path)
    env["GITHUB_ACTIONS"] = "true"
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run_step()["run"]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = parse_github_file_command((tmp_path / "output").read_text(encoding="utf-8"))
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :].splitlines()[0])
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert outputs["manifest_sha256"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert (outputs["exit_code"], outputs["result"]) == ("0", "passed")


# -- the signing inputs: each reaches its flag on every command it names; a bad value is refused ------------

SIGNING_INPUTS = {
    # input: (value, {command argv: (dest, parsed value)})
    "sign": ("azure-keyvault://kv-ml/keys/release", {
        ("seal", "DIR"): ("sign", "azure-keyvault://kv-ml/keys/release"),
        ("gate", "m/1", "--policy", "p.yml"): ("sign", "azure-keyvault://kv-ml/keys/release"),
    }),
    "public-key": ("release.pub.pem\nazure-keyvault://kv-ml/keys/old", {
        ("verify", "DIR"): ("public_key", "release.pub.pem\nazure-keyvault://kv-ml/keys/old"),
        ("gate", "m/1", "--policy", "p.yml"): ("public_key", ["release.pub.pem", "azure-keyvault://kv-ml/keys/old"]),
        ("audit", "verify"): ("public_key", "release.pub.pem\nazure-keyvault://kv-ml/keys/old"),
        ("audit", "show", "m@production"): ("public_key", "release.pub.pem\nazure-keyvault://kv-ml/keys/old"),
    }),
    "signature": ("out/model.sig", {("seal", "DIR"): ("signature", "out/model.sig"),
                                    ("verify", "DIR"): ("signature", "out/model.sig")}),
    "serialization": ("shards", {("seal", "DIR"): ("serialization", "shards")}),
    "shard-size": ("512MiB", {("seal", "DIR"): ("shard_size", 512 << 20)}),
    "ledger-key": ("ledger.pem", {("seal", "--model", "m/1"): ("ledger_key", "ledger.pem"),
                                  ("gate", "m/1", "--policy", "p.yml"): ("ledger_key", "ledger.pem")}),
    "identity": ("github-oidc", {("seal", "DIR"): ("identity", "github-oidc"),
                                 ("verify", "DIR"): ("identity", "github-oidc")}),
}


@pytest.mark.parametrize("name", sorted(SIGNING_INPUTS))
def test_signing_inputs_reach_their_flags(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.cli import build_parser

    value, expected = SIGNING_INPUTS[name]
    env = run_step()["env"]
    [variable] = [var for var, expr in env.items() if expr == f"${{{{ inputs.{name} }}}}"]
    for var in env:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(variable, value)
    for argv, (dest, parsed) in expected.items():
        assert getattr(build_parser().parse_args(list(argv)), dest) == parsed, (name, argv)
    monkeypatch.delenv(variable)
    for argv, (dest, _parsed) in expected.items():  # and nothing without the input
        assert getattr(build_parser().parse_args(list(argv)), dest) in (None, "files", "auto"), (name, argv)


@pytest.mark.parametrize(("inputs", "says"), [
    ({"serialization": "zip"}, "input 'serialization' is not valid: MLGATE_SERIALIZATION='zip' is not one of the "
     "choices of --serialization"),
    ({"shard-size": "big"}, "input 'shard-size' is not valid: MLGATE_SHARD_SIZE='big' is not a valid value"),
    ({"identity": "workload"}, "input 'identity' is not valid"),
    ({"follow-internal-symlinks": "perhaps"}, "input 'follow-internal-symlinks' is not valid"),
])
def test_an_input_with_an_unknown_value_is_refused_naming_it(inputs: dict[str, str], says: str,
                                                              tmp_path: Path, model: Path) -> None:
    manifest = tmp_path / "manifest.json"
    code, outputs, log = _run_action({"command": "seal", "directory": str(model), "output": str(manifest), **inputs},
                                     tmp_path)
    assert (code, outputs["result"]) == (2, "configuration-error"), log
    assert says in log and "Traceback" not in log, log
    assert not manifest.exists()


def test_action_signs_in_shards_and_verifies_with_the_public_key(tmp_path: Path, model: Path) -> None:
    """The run step for real: sign, signature, serialization and shard-size on seal; public-key on verify."""
    from tests.integration.signing.conftest import make_pair

    pair, other = make_pair(tmp_path / "keys", "release"), make_pair(tmp_path / "keys", "other")
    out = tmp_path / "out"
    out.mkdir()
    code, _outputs, log = _run_action({"command": "seal", "directory": str(model), "output": str(out / "m.json"),
                                       "sign": str(pair.private), "signature": str(out / "release.sig"),
                                       "serialization": "shards", "shard-size": "1MiB"}, tmp_path)
    assert code == 0, log
    statement = json.loads((out / "m.json").read_text())
    assert statement["predicate"]["serialization"]["method"] == "shards"
    assert statement["predicate"]["serialization"]["shard_size"] == 1 << 20
    assert (out / "release.sig").is_file() and not (out / "model.sig").exists()
    verify = {"command": "verify", "directory": str(model), "signature": str(out / "release.sig")}
    code, outputs, log = _run_action({**verify, "public-key": str(pair.public)}, tmp_path)
    assert (code, outputs["result"]) == (0, "passed"), log
    assert f"signed by PEM public key {pair.public}" in log
    code, outputs, log = _run_action({**verify, "public-key": str(other.public)}, tmp_path)
    assert (code, outputs["result"]) == (1, "refused"), log
