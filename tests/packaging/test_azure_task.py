"""The Azure DevOps extension: task.json, the Node shim under MockTestRunner, and the .vsix build."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

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
SPECIAL_INPUTS = {
    "command",
    "ref",
    "directory",
    "modelName",
    "azureSubscription",
    "verbose",
    "pythonPath",
    "install",
    "extras",
    "wheelhouse",
}


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
    assert manifest["files"] == [{"path": "MlgateV1"}, {"path": "images", "addressable": True}]
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
        assert (inputs()[name]["type"] == "filePath") == (kind == "path"), name


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


def test_shim_under_mock_test_runner(bundled: dict[str, Any]) -> None:
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
    assert failed == 0 and passed == total >= 25, report


@pytest.fixture(scope="module")
def bundled(dist: dict[str, Path]) -> dict[str, Any]:
    """The built wheel and the locks bundled into the task (azure-pipelines-task/bundle.py)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "azure-pipelines-task" / "bundle.py"), "--wheel", str(dist["wheel"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest: dict[str, Any] = json.loads((TASK_DIR / "mlgate" / "bundle.json").read_text(encoding="utf-8"))
    return manifest


def extension() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (ROOT / "azure-pipelines-task" / "vss-extension.json").read_text(encoding="utf-8")
    )
    return data


def test_tfx_builds_the_vsix_with_the_wheel_inside(tmp_path: Path, bundled: dict[str, Any]) -> None:
    task_node_modules()
    # a copy with symlinks resolved (tfx cannot package a symlinked node_modules), without the tests
    source = tmp_path / "azure-pipelines-task"
    shutil.copytree(
        ROOT / "azure-pipelines-task",
        source,
        symlinks=False,
        ignore=shutil.ignore_patterns("tests", "__pycache__", ".taskkey"),
    )
    proc = subprocess.run(
        [
            node_bin("tfx"),
            "extension",
            "create",
            "--manifest-globs",
            "vss-extension.json",
            "--output-path",
            str(tmp_path),
            "--no-prompt",
            "--json",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert result["extensionId"] == "mlgate"
    # the name the README gives: <publisher>.<id>-<version>.vsix
    out = tmp_path / f"{extension()['publisher']}.{extension()['id']}-{extension()['version']}.vsix"
    assert out.is_file(), sorted(p.name for p in tmp_path.iterdir())
    assert f"`{out.name}`" in (ROOT / "README.md").read_text(encoding="utf-8")
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
        packaged = json.loads(vsix.read("MlgateV1/task.json"))
        manifest = vsix.read("extension.vsixmanifest").decode("utf-8")
        wheel = vsix.read(f"MlgateV1/mlgate/{bundled['wheel']}")
        carried = json.loads(vsix.read("MlgateV1/mlgate/bundle.json"))
    assert {
        "MlgateV1/task.json",
        "MlgateV1/index.js",
        "MlgateV1/icon.png",
        "images/icon.png",
        "MlgateV1/node_modules/azure-pipelines-task-lib/task.js",
        "MlgateV1/mlgate/locks/core.txt",
        "MlgateV1/mlgate/locks/azure.txt",
    } <= names
    assert hashlib.sha256(wheel).hexdigest() == bundled["sha256"] == carried["sha256"]
    assert not any(n.startswith("tests/") or n.endswith((".taskkey", ".py")) for n in names)
    assert packaged["id"] == task_json()["id"]
    assert f'Version="{extension()["version"]}"' in manifest


def test_task_extension_and_mlgate_versions_move_together(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "azure-pipelines-task"))
    try:
        import bundle
    finally:
        sys.path.pop(0)
    from mlgate import __version__

    assert set(bundle.versions().values()) == {__version__}, bundle.versions()
    assert bundle.mismatches() == []
    # a copy whose task.json moved on alone is refused
    for name in (
        "src/mlgate/__init__.py",
        "azure-pipelines-task/MlgateV1/task.json",
        "azure-pipelines-task/vss-extension.json",
        "azure-pipelines-task/MlgateV1/package.json",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    spec = json.loads((tmp_path / "azure-pipelines-task/MlgateV1/task.json").read_text(encoding="utf-8"))
    spec["version"]["Minor"] += 1
    (tmp_path / "azure-pipelines-task/MlgateV1/task.json").write_text(json.dumps(spec), encoding="utf-8")
    assert any("task.json" in line for line in bundle.mismatches(tmp_path))


def test_help_url_release_notes_icons_and_outputs() -> None:
    spec = task_json()
    assert spec["helpUrl"] == (
        f"https://marketplace.visualstudio.com/items?itemName={extension()['publisher']}.{extension()['id']}"
    )
    assert spec["releaseNotes"].startswith(f"{extension()['version']}:")
    for path, size in (
        (ROOT / "azure-pipelines-task" / "images" / "icon.png", 128),
        (TASK_DIR / "icon.png", 32),
    ):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert int.from_bytes(data[16:20], "big") == int.from_bytes(data[20:24], "big") == size
    assert extension()["icons"] == {"default": "images/icon.png"}
    names = [o["name"] for o in spec["outputVariables"]]
    assert {
        "manifestSha256",
        "evidenceSha256",
        "ledgerHead",
        "approver",
        "exitCode",
        "result",
        "decision",
        "evidencePath",
        "gatePassed",
    } == set(names)
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z0-9][a-z0-9]*)*", n) for n in names), "one casing: camelCase"
    shim = (TASK_DIR / "index.js").read_text(encoding="utf-8")
    for name in names:
        assert f"'{name}'" in shim or f": '{name}'" in shim, f"the shim never sets {name}"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "npx tfx-cli extension create" in text and "npx tfx extension" not in text


def test_path_inputs_are_file_paths() -> None:
    kinds = {i["name"]: i["type"] for i in task_json()["inputs"]}
    for name in (
        "directory",
        "output",
        "manifest",
        "artifacts",
        "policy",
        "evidenceDir",
        "evidence",
        "file",
        "pythonPath",
        "wheelhouse",
    ):
        assert kinds[name] == "filePath", name
    assert kinds["ledger"] == "string"  # file:PATH or a blob URL
    assert kinds["ref"] == "string"


def test_overview_has_a_yaml_example_for_each_command() -> None:
    overview = (ROOT / "azure-pipelines-task" / "overview.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", overview, re.S)]
    shown = {
        step["inputs"]["command"] for block in blocks for step in block if step.get("task") == "Mlgate@1"
    }
    assert shown == set(inputs()["command"]["options"])
    valid = set(inputs())
    for block in blocks:
        for step in block:
            if step.get("task") == "Mlgate@1":
                assert set(step["inputs"]) <= valid, set(step["inputs"]) - valid
    assert "pip install mlgate" not in overview


def test_the_task_installs_its_bundled_wheel_offline(tmp_path: Path, bundled: dict[str, Any]) -> None:
    """For real: node runs the shim, which checks this Python, makes a venv, installs the bundled wheel and
    locks/core.txt from a wheelhouse with --require-hashes and no index, then runs mlgate from that venv."""
    wheels = tmp_path / "wheelhouse"
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-r",
            str(TASK_DIR / "mlgate" / "locks" / "core.txt"),
            "-d",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert download.returncode == 0, download.stderr
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(1024))
    manifest = tmp_path / "manifest.json"
    agent_temp = tmp_path / "agent-temp"
    agent_temp.mkdir()
    proc = _run_shim(
        tmp_path,
        {
            "command": "seal",
            "directory": str(model),
            "output": str(manifest),
            "install": "bundled",
            "wheelhouse": str(wheels),
        },
        {"PIP_INDEX_URL": "http://127.0.0.1:9/no-index", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": ""},
        source=False,
        agent_temp=agent_temp,
    )
    log = proc.stdout + proc.stderr
    assert _vso(proc.stdout, "task.complete result=Succeeded"), log
    assert f"mlgate {bundled['version']}: installing the bundled wheel and locks/core.txt" in log
    [venv] = agent_temp.glob("mlgate-*/venv")
    site = next(venv.glob("lib/python*/site-packages"))
    assert (site / f"mlgate-{bundled['version']}.dist-info").is_dir()
    assert not (site / "azure").exists(), "seal of local files needs no Azure SDK"
    assert any(
        line.endswith(hashlib.sha256(manifest.read_bytes()).hexdigest()) and "manifestSha256" in line
        for line in _vso(proc.stdout, "task.setvariable")
    ), proc.stdout


# -- the shim for real: task-lib reading INPUT_* as the agent sets them, the real CLI behind it -----------


def _run_shim(
    tmp_path: Path,
    inputs: dict[str, str],
    variables: dict[str, str] | None = None,
    *,
    source: bool = True,
    agent_temp: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The shim as the agent runs it. ``source``: mlgate from this tree (input install=preinstalled)."""
    task_node_modules()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INPUT_", "MLGATE_", "GITHUB_", "PYTHONPATH"))
    }
    env.update(variables or {})  # pipeline variables: the agent puts them in the environment
    if source:
        env.update(INPUT_INSTALL="preinstalled", PYTHONPATH=str(ROOT / "src"))
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update(
        INPUT_PYTHONPATH=sys.executable,  # the task input `pythonPath`
        TF_BUILD="True",
        AGENT_TEMPDIRECTORY=str(agent_temp or tmp_path),
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
    proc = _run_shim(
        tmp_path, {"command": "seal", "directory": str(model), "output": str(manifest)}, variables
    )
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    assert manifest.is_file()
    assert not (tmp_path / "elsewhere.json").exists()


def test_shim_signs_and_verifies_with_the_real_cli(tmp_path: Path) -> None:
    """sign, signature, serialization, shardSize on seal and publicKey on verify, through task-lib and the CLI."""
    from tests.integration.signing.conftest import make_pair

    pair, other = make_pair(tmp_path / "keys", "release"), make_pair(tmp_path / "keys", "other")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(4096))
    manifest, signature = tmp_path / "manifest.json", tmp_path / "release.sig"
    proc = _run_shim(tmp_path, {"command": "seal", "directory": str(model), "output": str(manifest),
                                "sign": str(pair.private), "signature": str(signature),
                                "serialization": "shards", "shardSize": "1MiB"})
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    assert json.loads(manifest.read_text())["predicate"]["serialization"]["method"] == "shards"
    assert signature.is_file()
    verify = {"command": "verify", "directory": str(model), "signature": str(signature)}
    proc = _run_shim(tmp_path, {**verify, "publicKey": str(pair.public)})
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    proc = _run_shim(tmp_path, {**verify, "publicKey": str(other.public)})
    [complete] = _vso(proc.stdout, "task.complete")
    assert "result=Failed" in complete and "refused the release (exit 1)" in complete, proc.stdout
