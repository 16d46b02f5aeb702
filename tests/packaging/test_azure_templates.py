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
    assert {p.name for p in TEMPLATES} >= {
        "register-seal.yml", "gate.yml", "deploy.yml", "pipeline.yml", "release.yml", "extends-example.yml"}


EXTENDS_TEMPLATE = ROOT / "templates" / "azure-pipelines" / "release.yml"
EXTENDS_EXAMPLE = ROOT / "templates" / "azure-pipelines" / "extends-example.yml"
PARAMETER = re.compile(r"^\$\{\{ parameters\.(\w+) \}\}$")


def expand_parameters(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with every value that is exactly ``${{ parameters.NAME }}`` replaced by ``values[NAME]``, and
    such a list item spliced when the value is a list (a stepList): what Azure Pipelines does when it expands
    the template at compile time. The schema knows no template expressions (``lockBehavior`` must be one of
    its words, a step must be a step), so it checks the expanded pipeline, as the service does."""
    def value_of(item: Any) -> tuple[bool, Any]:
        match = PARAMETER.match(item) if isinstance(item, str) else None
        if match and match.group(1) in values:
            return True, copy.deepcopy(values[match.group(1)])
        return False, item

    if isinstance(node, dict):
        return {key: expand_parameters(value, values) for key, value in node.items()}
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            found, value = value_of(item)
            if found and isinstance(value, list):
                out += value
            else:
                out.append(value if found else expand_parameters(item, values))
        return out
    return value_of(node)[1]


def expanded(path: Path, passed: dict[str, Any] | None = None) -> Any:
    """The template as the service validates it: its parameters' defaults, overridden by ``passed``
    (for the extends template: what the example pipeline passes, its steps included)."""
    document = load(path)
    if passed is None and path == EXTENDS_TEMPLATE:
        passed = load(EXTENDS_EXAMPLE)["extends"]["parameters"]
    values = {p["name"]: p["default"] for p in document.get("parameters", []) if "default" in p}
    values.update(passed or {})
    return expand_parameters(document, values)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_valid_against_the_service_schema(path: Path) -> None:
    assert errors_of(expanded(path)) == []


def test_extends_template_takes_the_teams_steps_as_step_lists() -> None:
    template = load(EXTENDS_TEMPLATE)
    kinds = {p["name"]: p["type"] for p in template["parameters"]}
    assert kinds["buildSteps"] == kinds["deploySteps"] == "stepList"
    assert kinds["pool"] == "object"
    assert errors_of(template), "unexpanded, `- ${{ parameters.buildSteps }}` is no step: the splice is what is checked"
    example = load(EXTENDS_EXAMPLE)
    assert example["extends"]["template"] == "templates/azure-pipelines/release.yml@mlgate"
    assert set(example["extends"]["parameters"]) <= set(kinds)
    required = {p["name"] for p in template["parameters"] if "default" not in p}
    assert required <= set(example["extends"]["parameters"]), required - set(example["extends"]["parameters"])
    broken = copy.deepcopy(example["extends"]["parameters"])
    broken["deploySteps"][0]["scrpt"] = broken["deploySteps"][0].pop("script")
    assert errors_of(expanded(EXTENDS_TEMPLATE, broken)), "a malformed team step must be refused"
    wrong = {**example["extends"]["parameters"], "lockBehavior": "whenever"}
    assert errors_of(expanded(EXTENDS_TEMPLATE, wrong)), "a lock behaviour the service does not know must be refused"


def _steps_of(stage: dict[str, Any]) -> list[Any]:
    [job] = stage["jobs"]
    return job["strategy"]["runOnce"]["deploy"]["steps"] if "deployment" in job else job["steps"]


def test_extends_template_runs_the_teams_steps_inside_the_governed_flow() -> None:
    stages = {s["stage"]: s for s in load(EXTENDS_TEMPLATE)["stages"]}
    assert list(stages) == ["Register", "Gate", "Deploy"]

    def kind(step: Any) -> str:
        if isinstance(step, str):
            return "TEAM"  # `${{ parameters.buildSteps }}` / `deploySteps`: the team's steps
        return str(step["inputs"]["command"]) if step.get("task") == task_ref() else "other"

    def order(stage: str) -> list[str]:
        return [kind(step) for step in _steps_of(stages[stage])]

    register = [x for x in order("Register") if x != "other"]
    assert register == ["TEAM", "seal"]
    assert [x for x in order("Gate") if x != "other"] == ["gate"]
    # secrets are secret variables of this job: set before the team's deploy steps, which map them in env
    assert [x for x in order("Deploy") if x != "other"] == ["secrets", "verify", "TEAM", "record"]
    assert _steps_of(stages["Register"]).count("${{ parameters.buildSteps }}") == 1
    assert _steps_of(stages["Deploy"]).count("${{ parameters.deploySteps }}") == 1
    deploy = stages["Deploy"]
    assert deploy["jobs"][0]["environment"] == "${{ parameters.environment }}"
    assert deploy["lockBehavior"] == "${{ parameters.lockBehavior }}"
    for stage in stages.values():
        assert stage["pool"] == "${{ parameters.pool }}", stage["stage"]
    for step in our_steps(load(EXTENDS_TEMPLATE)):
        if step["inputs"]["command"] in ("seal", "gate", "record", "secrets"):
            assert step["inputs"]["azureSubscription"] == "${{ parameters.azureSubscription }}"
        if step["inputs"]["command"] == "gate":
            assert step["inputs"]["setAlias"] == "${{ parameters.setAlias }}"


def test_stage_templates_take_a_pool_and_the_deploy_stage_a_lock_behaviour() -> None:
    for name in ("register-seal.yml", "gate.yml", "deploy.yml"):
        template = load(ROOT / "templates" / "azure-pipelines" / name)
        assert {p["name"]: p["type"] for p in template["parameters"]}["pool"] == "object", name
        assert template["stages"][0]["pool"] == "${{ parameters.pool }}", name
    deploy = load(ROOT / "templates" / "azure-pipelines" / "deploy.yml")
    lock = next(p for p in deploy["parameters"] if p["name"] == "lockBehavior")
    assert lock["values"] == ["sequential", "runLatest"] and lock["default"] == "sequential"
    assert deploy["stages"][0]["lockBehavior"] == "${{ parameters.lockBehavior }}"


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
