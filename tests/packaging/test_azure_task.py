"""The Azure DevOps extension: task.json, the Node shim under MockTestRunner, and the .vsix build."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlgate.github_action import COMMANDS as ACTION_COMMANDS
from tests.packaging.conftest import (
    ROOT,
    SCHEMAS,
    TASK_DIR,
    command_parsers,
    is_switch,
    long_options,
    node_bin,
    options_table,
    task_node_modules,
    tool,
)

pytestmark = pytest.mark.packaging

# task inputs that are not CLI options: the command, its positionals, the identity and the runner.
SPECIAL_INPUTS = {"command", "ref", "directory", "modelName", "azureSubscription", "verbose", "pythonPath"}


def task_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TASK_DIR / "task.json").read_text(encoding="utf-8"))
    return data


def inputs() -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in task_json()["inputs"]}


def test_task_json_is_valid_against_the_tasks_schema() -> None:
    schema = json.loads((SCHEMAS / "azure-pipelines-tasks.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(task_json())
    ]
    assert errors == []


def test_the_schema_check_is_real() -> None:
    schema = json.loads((SCHEMAS / "azure-pipelines-tasks.schema.json").read_text(encoding="utf-8"))
    broken = task_json()
    broken["inputs"][0]["name"] = "bad-name"
    broken["execution"]["Node99"] = {"target": "index.js"}
    assert len(list(jsonschema.Draft4Validator(schema).iter_errors(broken))) >= 2


def test_node20_and_node24_handlers_run_the_shim() -> None:
    execution = task_json()["execution"]
    assert set(execution) == {"Node20_1", "Node24"}
    for handler in execution.values():
        assert (TASK_DIR / handler["target"]).is_file()


def test_extension_manifest_contributes_the_task() -> None:
    manifest = json.loads((ROOT / "azure-pipelines-task" / "vss-extension.json").read_text(encoding="utf-8"))
    assert manifest["files"] == [{"path": "MlgateV1"}]
    [contribution] = manifest["contributions"]
    assert contribution["type"] == "ms.vss-distributed-task.task"
    assert contribution["properties"]["name"] == "MlgateV1"


def test_azure_resource_manager_connection_input() -> None:
    connection = inputs()["azureSubscription"]
    assert connection["type"] == "connectedService:AzureRM"
    assert "secrets" in connection["visibleRule"]


def test_command_choices_match_the_shim_and_the_action() -> None:
    text = (TASK_DIR / "index.js").read_text(encoding="utf-8")
    block = text[text.index("const COMMANDS = {") : text.index("};", text.index("const COMMANDS = {"))]
    shim = re.findall(r"^\s*'?([a-z-]+)'?:", block, re.M)
    pick = list(inputs()["command"]["options"])
    assert shim == pick
    assert [c.replace(" ", "-") for c in ACTION_COMMANDS] == pick


def test_every_option_input_is_in_the_shim_table_and_vice_versa() -> None:
    table = options_table()
    table_inputs = [row[0] for row in table]
    assert len(set(table_inputs)) == len(table_inputs)
    assert set(table_inputs) == set(inputs()) - SPECIAL_INPUTS
    for name, _flag, kind, _commands in table:
        assert (inputs()[name]["type"] == "boolean") == (kind == "bool"), name


def test_shim_options_exist_on_the_commands_they_are_passed_to() -> None:
    parsers = command_parsers()
    for name, flag, kind, commands in options_table():
        for command in commands:
            words = command.replace("-", " ")
            parser = parsers.get(words) or parsers[words.split()[0]]
            assert flag in long_options(parser), f"input {name}: `mlgate {words}` has no {flag}"
            assert is_switch(parser, flag) == (kind == "bool"), f"input {name}: {flag} on/off mismatch"


def test_visible_rules_name_the_commands_the_shim_passes_the_input_to() -> None:
    for name, _flag, _kind, commands in options_table():
        rule = inputs()[name].get("visibleRule", "")
        shown = set(re.findall(r"command = ([a-z-]+)", rule))
        assert shown == set(commands), f"{name}: visibleRule {rule!r} vs shim {commands}"


def test_lock_file_names_no_registry_host() -> None:
    lock = (TASK_DIR / "package-lock.json").read_text(encoding="utf-8")
    assert '"resolved"' not in lock
    assert not re.search(r"https?://[^\"/]*registry", lock)
    assert "azure-pipelines-task-lib" in json.loads(lock)["packages"][""]["dependencies"]


def test_shim_under_mock_test_runner() -> None:
    task_node_modules()
    test_file = ROOT / "azure-pipelines-task" / "tests" / "task.test.js"
    proc = subprocess.run(
        [tool("node"), "--test", str(test_file)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    places = (ROOT, ROOT / "azure-pipelines-task", TASK_DIR, ROOT / "azure-pipelines-task" / "tests")
    leftovers = [p / ".taskkey" for p in places if (p / ".taskkey").exists()]
    assert leftovers == [], "task-lib's vault key must go to the scratch agent temp directory"

    passed = int(re.search(r"^# pass (\d+)$", report, re.M).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"^# fail (\d+)$", report, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"^# tests (\d+)$", report, re.M).group(1))  # type: ignore[union-attr]
    assert failed == 0 and passed == total >= 15, report


def test_tfx_builds_the_vsix(tmp_path: Path) -> None:
    task_node_modules()
    out = tmp_path / "mlgate.vsix"
    proc = subprocess.run(
        [
            node_bin("tfx"),
            "extension",
            "create",
            "--manifest-globs",
            "vss-extension.json",
            "--output-path",
            str(out),
            "--no-prompt",
            "--json",
        ],
        cwd=ROOT / "azure-pipelines-task",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert result["extensionId"] == "mlgate"
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
        packaged = json.loads(vsix.read("MlgateV1/task.json"))
        manifest = vsix.read("extension.vsixmanifest").decode("utf-8")
    assert {
        "MlgateV1/task.json",
        "MlgateV1/index.js",
        "MlgateV1/node_modules/azure-pipelines-task-lib/task.js",
    } <= names
    assert not any(n.startswith("tests/") or n.endswith(".taskkey") for n in names)
    assert packaged["id"] == task_json()["id"]
    assert 'Version="1.0.0"' in manifest


# -- the shim for real: task-lib reading INPUT_* as the agent sets them, the real CLI behind it -----------


def _run_shim(
    tmp_path: Path, inputs: dict[str, str], variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    task_node_modules()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "MLGATE_", "GITHUB_"))}
    env.update(variables or {})  # pipeline variables: the agent puts them in the environment
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update(
        INPUT_PYTHONPATH=sys.executable,  # the task input `pythonPath`
        PYTHONPATH=str(ROOT / "src"),
        TF_BUILD="True",
        AGENT_TEMPDIRECTORY=str(tmp_path),
    )
    return subprocess.run(
        [tool("node"), str(TASK_DIR / "index.js")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _vso(stdout: str, command: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(f"##vso[{command}")]


def test_shim_runs_the_real_cli(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(2048))
    manifest = tmp_path / "manifest.json"
    proc = _run_shim(tmp_path, {"command": "seal", "directory": str(model), "output": str(manifest)})
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    # the CLI's Azure DevOps adapter set the digest as an output variable; the shim its own two
    assert any(
        line.endswith(f"]{digest}") and "variable=manifest_sha256;" in line and "isOutput=true" in line
        for line in _vso(proc.stdout, "task.setvariable")
    ), proc.stdout
    assert any(
        "variable=result;" in line and line.endswith("]passed")
        for line in _vso(proc.stdout, "task.setvariable")
    )

    (model / "weights.bin").write_bytes(b"tampered")
    proc = _run_shim(tmp_path, {"command": "verify", "directory": str(model), "manifest": str(manifest)})
    [complete] = _vso(proc.stdout, "task.complete")
    assert "result=Failed" in complete and "refused the release (exit 1)" in complete, proc.stdout

    proc = _run_shim(
        tmp_path, {"command": "verify", "directory": str(model), "manifest": str(tmp_path / "none")}
    )
    [complete] = _vso(proc.stdout, "task.complete")
    assert "result=Failed" in complete and "configuration error (exit 2)" in complete, proc.stdout


def test_pipeline_variables_named_mlgate_do_not_become_option_defaults(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(512))
    manifest = tmp_path / "manifest.json"
    # Were they passed on, the CLI would take them as --platform / --output defaults.
    variables = {"MLGATE_PLATFORM": "not-a-platform", "MLGATE_OUTPUT": str(tmp_path / "elsewhere.json")}
    proc = _run_shim(tmp_path, {"command": "seal", "directory": str(model), "output": str(manifest)}, variables)
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    assert manifest.is_file()
    assert not (tmp_path / "elsewhere.json").exists()
