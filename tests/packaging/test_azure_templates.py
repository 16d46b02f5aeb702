"""templates/azure-pipelines against Microsoft's pipeline schema, with our task added the way the
Azure Pipelines editor adds an organisation's custom tasks (from their task.json)."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.packaging.conftest import ROOT, SCHEMAS, TASK_DIR

pytestmark = pytest.mark.packaging

TEMPLATES = sorted((ROOT / "templates" / "azure-pipelines").glob("*.yml"))
MACRO = re.compile(r"\$\(|\$\{\{|\$\[")  # a value the pipeline fills in at compile or run time


def task_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TASK_DIR / "task.json").read_text(encoding="utf-8"))
    return data


def task_ref() -> str:
    task = task_json()
    return f"{task['name']}@{task['version']['Major']}"


def input_schema(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    if kind == "boolean":
        return {"type": "boolean", "description": spec["label"]}
    if kind == "pickList" and spec.get("properties", {}).get("EditableOptions") != "True":
        return {"enum": list(spec["options"]), "description": spec["label"]}
    return {"type": "string", "description": spec["label"]}


@functools.cache
def pipeline_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS / "azure-pipelines-service-schema.json").read_text(encoding="utf-8")
    )
    schema = copy.deepcopy(schema)
    task = task_json()
    ref = task_ref()
    definition = schema["definitions"]["task"]
    definition["properties"]["task"]["anyOf"].append({"description": task["friendlyName"], "enum": [ref]})
    required = [i["name"] for i in task["inputs"] if i.get("required")]
    definition["anyOf"].append(
        {
            "properties": {
                "task": {"pattern": f"^{re.escape(ref)}$"},
                "inputs": {
                    "properties": {i["name"]: input_schema(i) for i in task["inputs"]},
                    "additionalProperties": False,
                    "required": required,
                },
            },
            "required": ["task", "inputs"] if required else ["task"],
        }
    )
    return schema


@functools.cache
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(pipeline_schema())


def errors_of(document: Any) -> list[str]:
    found = []
    for error in validator().iter_errors(document):
        best = jsonschema.exceptions.best_match([error])
        found.append(f"{'/'.join(map(str, best.absolute_path))}: {best.message[:300]}")
    return found


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def our_steps(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("task") == task_ref():
            found.append(node)
        for value in node.values():
            found += our_steps(value)
    elif isinstance(node, list):
        for value in node:
            found += our_steps(value)
    return found


def test_templates_exist() -> None:
    assert {p.name for p in TEMPLATES} >= {"register-seal.yml", "gate.yml", "deploy.yml", "pipeline.yml"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_valid_against_the_service_schema(path: Path) -> None:
    assert errors_of(load(path)) == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_our_task_steps_match_task_json(path: Path) -> None:
    """Every Mlgate step names only inputs task.json declares, sets the required ones, and gives
    pick-list inputs a value the task accepts (unless the pipeline fills it in)."""
    declared = {i["name"]: i for i in task_json()["inputs"]}
    for step in our_steps(load(path)):
        given = step["inputs"]
        assert set(given) <= set(declared), f"{path.name}: unknown inputs {set(given) - set(declared)}"
        for name, spec in declared.items():
            if spec.get("required"):
                assert name in given, f"{path.name}: step {step.get('name')} lacks the required input {name}"
        for name, value in given.items():
            if declared[name]["type"] == "pickList" and not MACRO.search(str(value)):
                assert str(value) in declared[name]["options"], f"{path.name}: {name}={value!r}"
        rule_ok = [name for name in given if _visible(declared[name], given)]
        assert rule_ok == list(given), f"{path.name}: inputs hidden for command {given['command']!r}"


def _visible(spec: dict[str, Any], given: dict[str, Any]) -> bool:
    rule = spec.get("visibleRule")
    if not rule:
        return True
    return given.get("command") in re.findall(r"command = ([a-z-]+)", rule)


def test_stage_templates_use_our_task_for_each_step_of_the_flow() -> None:
    commands = {
        path.name: [step["inputs"]["command"] for step in our_steps(load(path))] for path in TEMPLATES
    }
    assert commands["register-seal.yml"] == ["seal"]
    assert commands["gate.yml"] == ["gate"]
    assert commands["deploy.yml"] == ["secrets", "verify", "record"]
    deploy = load(ROOT / "templates" / "azure-pipelines" / "deploy.yml")
    [job] = deploy["stages"][0]["jobs"]
    assert job["environment"] == "${{ parameters.environment }}"


def test_the_schema_catches_mistakes() -> None:
    gate = load(ROOT / "templates" / "azure-pipelines" / "gate.yml")
    broken = copy.deepcopy(gate)
    step = our_steps(broken)[0]
    step["inputs"]["evidenceDirectory"] = "typo"
    assert errors_of(broken), "an input our task.json does not declare must be refused"
    broken = copy.deepcopy(gate)
    our_steps(broken)[0]["inputs"]["command"] = "deploy"
    assert errors_of(broken), "a command our task does not offer must be refused"
    broken = copy.deepcopy(gate)
    broken["stages"][0]["jobz"] = broken["stages"][0].pop("jobs")
    assert errors_of(broken)
    broken = copy.deepcopy(gate)
    our_steps(broken)[0]["task"] = "Mlgate@7"
    assert errors_of(broken), "an unknown task version must be refused"


def test_inputs_reach_scripts_through_env_only() -> None:
    """Parameters are mapped into `env:` of script steps, never pasted into the script itself."""
    for path in TEMPLATES:
        for step in _scripts(load(path)):
            assert "${{" not in step["script"], f"{path.name}: parameter pasted into a script"


def _scripts(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "script" in node:
            found.append(node)
        for value in node.values():
            found += _scripts(value)
    elif isinstance(node, list):
        for value in node:
            found += _scripts(value)
    return found
