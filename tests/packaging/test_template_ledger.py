"""The shipped templates give the seal and gate steps the same audit ledger as the record step.

`mlgate record` binds the evidence to the gate's `gated` ledger entry only when it finds that entry
in the ledger it records to, so a template that leaves the ledger off seal or gate always records
`evidence_in_ledger: false`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.conftest import ROOT, TASK_DIR
from tests.packaging.test_azure_templates import our_steps

pytestmark = pytest.mark.packaging

AZURE = ROOT / "templates" / "azure-pipelines"
GITHUB = ROOT / ".github" / "workflows"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def azure_step(template: str, command: str) -> dict[str, Any]:
    steps = [s for s in our_steps(load(AZURE / template)) if s["inputs"]["command"] == command]
    assert len(steps) == 1, f"{template}: expected one `{command}` step of our task, found {len(steps)}"
    return steps[0]


def azure_parameters(template: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in load(AZURE / template)["parameters"]}


@pytest.mark.parametrize(
    ("template", "command"),
    [("register-seal.yml", "seal"), ("gate.yml", "gate"), ("deploy.yml", "record")],
)
def test_azure_step_receives_the_ledger_parameter(template: str, command: str) -> None:
    step = azure_step(template, command)
    assert step["inputs"].get("ledger") == "${{ parameters.ledger }}", f"{template}: {command} has no ledger"
    assert "ledger" in azure_parameters(template), f"{template}: no `ledger` parameter"


@pytest.mark.parametrize("template", ["register-seal.yml", "gate.yml"])
def test_azure_seal_and_gate_ledger_defaults_to_none(template: str) -> None:
    assert azure_parameters(template)["ledger"].get("default") == ""


def test_azure_example_pipeline_passes_one_ledger_to_every_stage() -> None:
    pipeline = load(AZURE / "pipeline.yml")
    ledgers = {stage["template"]: stage["parameters"].get("ledger") for stage in pipeline["stages"]}
    assert set(ledgers) == {"register-seal.yml", "gate.yml", "deploy.yml"}
    assert None not in ledgers.values(), ledgers
    assert len(set(ledgers.values())) == 1, ledgers


def test_azure_task_passes_the_ledger_to_seal_and_gate() -> None:
    spec = json.loads((TASK_DIR / "task.json").read_text(encoding="utf-8"))
    ledger = next(i for i in spec["inputs"] if i["name"] == "ledger")
    shown = {part.split("=")[1].strip() for part in ledger["visibleRule"].split("||")}
    assert {"seal", "gate", "record"} <= shown
    source = (TASK_DIR / "index.js").read_text(encoding="utf-8")
    line = next(x for x in source.splitlines() if x.strip().startswith("['ledger', '--ledger'"))
    for command in ("seal", "gate", "record"):
        assert f"'{command}'" in line, f"index.js does not pass --ledger to {command}"


def github_step(workflow: str, command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    document = load(GITHUB / workflow)
    for job in document["jobs"].values():
        for step in job.get("steps", []):
            if step.get("uses") == "./.mlgate-action" and step.get("with", {}).get("command") == command:
                return job, step
    raise AssertionError(f"{workflow}: no mlgate `{command}` step")


@pytest.mark.parametrize(
    ("workflow", "command"),
    [("mlgate-register-seal.yml", "seal"), ("mlgate-gate.yml", "gate"), ("mlgate-deploy.yml", "record")],
)
def test_github_step_receives_the_ledger_input(workflow: str, command: str) -> None:
    job, step = github_step(workflow, command)
    assert step["with"].get("ledger") == "${{ inputs.ledger }}", f"{workflow}: {command} has no ledger"
    # yaml 1.1 reads the `on:` key as True
    trigger = load(GITHUB / workflow)[True]["workflow_call"]
    assert "ledger" in trigger["inputs"], f"{workflow}: no `ledger` input"
    assert job["permissions"].get("id-token") == "write", f"{workflow}: the job lacks id-token: write"


def test_github_example_passes_one_ledger_to_every_job() -> None:
    """Every job whose workflow writes the ledger (mlgate-attest.yml runs no mlgate command: it has none)."""
    jobs = load(ROOT / "templates" / "github" / "examples" / "release.yml")["jobs"]
    writers = {name: job for name, job in jobs.items()
               if "ledger" in load(GITHUB / job["uses"].split("@")[0].split("/")[-1])[True]["workflow_call"]["inputs"]}
    ledgers = {name: job["with"].get("ledger") for name, job in writers.items()}
    assert set(ledgers) == {"register", "gate", "deploy"}
    assert set(jobs) - set(writers) == {"attest"}
    assert None not in ledgers.values(), ledgers
    assert len(set(ledgers.values())) == 1, ledgers


def test_action_ledger_input_says_it_applies_to_seal_and_gate() -> None:
    description = load(ROOT / "action.yml")["inputs"]["ledger"]["description"]
    assert "seal" in description and "gate" in description


@pytest.mark.parametrize(
    ("template", "command"),
    [("register-seal.yml", "seal"), ("gate.yml", "gate"), ("deploy.yml", "record"),
     ("release.yml", "seal"), ("release.yml", "gate"), ("release.yml", "record")],
)
def test_azure_ledger_steps_get_the_service_connection_for_the_blob_ledger(template: str, command: str) -> None:
    """A blob ledger needs an Azure identity in every step that writes it, not only in the deploy stage."""
    step = azure_step(template, command)
    assert step["inputs"].get("ledger") == "${{ parameters.ledger }}"
    assert step["inputs"].get("azureSubscription") == "${{ parameters.azureSubscription }}"
    assert "azureSubscription" in azure_parameters(template)


def test_azure_example_pipeline_passes_one_connection_to_every_stage() -> None:
    pipeline = load(AZURE / "pipeline.yml")
    connections = {stage["parameters"].get("azureSubscription") for stage in pipeline["stages"]}
    assert connections == {"ml-prod-wif"}


@pytest.mark.parametrize(
    ("workflow", "command"),
    [("mlgate-register-seal.yml", "seal"), ("mlgate-gate.yml", "gate"), ("mlgate-deploy.yml", "record"),
     ("mlgate-rollback.yml", "rollback")],
)
def test_github_ledger_steps_use_the_jobs_oidc_identity(workflow: str, command: str) -> None:
    _, step = github_step(workflow, command)
    assert step["with"]["identity"] == "${{ inputs.azure-client-id != '' && 'github-oidc' || '' }}"
    assert step["with"]["client-id"] == "${{ inputs.azure-client-id }}"
    assert step["with"]["tenant-id"] == "${{ inputs.azure-tenant-id }}"


@pytest.mark.parametrize("command", ["seal", "gate", "record"])
def test_task_refuses_a_ledger_connection_without_workload_identity(tmp_path: Path, command: str) -> None:
    """A client-secret connection is refused for the ledger as for secrets: exit 2, nothing run."""
    from tests.packaging.test_azure_task import _run_shim, _vso

    inputs = {"command": command, "ref": "models:/m/1", "model": "models:/m/1", "policy": "p.yml",
              "ledger": "https://acct.blob.core.windows.net/ledger/l.jsonl", "azureSubscription": "conn-1"}
    variables = {"ENDPOINT_AUTH_SCHEME_conn-1": "ServicePrincipal",
                 "ENDPOINT_AUTH_PARAMETER_conn-1_TENANTID": "t",
                 "ENDPOINT_AUTH_PARAMETER_conn-1_SERVICEPRINCIPALID": "c"}
    proc = _run_shim(tmp_path, inputs, variables)
    [complete] = _vso(proc.stdout, "task.complete")
    assert "result=Failed" in complete and "configuration error" in complete, proc.stdout
    assert "uses the 'ServicePrincipal' scheme" in complete and f"mlgate {command} needs" in complete
    assert "[command]" not in proc.stdout  # mlgate was never started


# -- signing parameters: passed to the seal, gate and verify steps; empty by default (unsigned, as before) ----

SIGNING = [
    ("register-seal.yml", "seal", {"sign": "signingKey"}),
    ("gate.yml", "gate", {"publicKey": "publicKey", "sign": "signingKey"}),
    ("deploy.yml", "verify", {"publicKey": "publicKey"}),
    ("release.yml", "seal", {"sign": "signingKey"}),
    ("release.yml", "gate", {"publicKey": "publicKey"}),
    ("release.yml", "verify", {"publicKey": "publicKey"}),
]


def _task_steps(node: object) -> list[dict[str, object]]:
    if isinstance(node, dict):
        found = [node] if node.get("task") == "Mlgate@1" else []
        return found + [s for value in node.values() for s in _task_steps(value)]
    if isinstance(node, list):
        return [s for item in node for s in _task_steps(item)]
    return []


@pytest.mark.parametrize(("template", "command", "inputs"), SIGNING)
def test_azure_signing_parameters_reach_the_step_and_default_to_unsigned(
        template: str, command: str, inputs: dict[str, str]) -> None:
    document = yaml.safe_load((ROOT / "templates" / "azure-pipelines" / template).read_text(encoding="utf-8"))
    parameters = {p["name"]: p for p in document["parameters"]}
    [step] = [s for s in _task_steps(document["stages"]) if s["inputs"]["command"] == command]  # type: ignore[index]
    for task_input, parameter in inputs.items():
        assert step["inputs"][task_input] == f"${{{{ parameters.{parameter} }}}}", (template, task_input)  # type: ignore[index]
        assert parameters[parameter]["default"] == "", f"{template}: {parameter} must default to unsigned"
    assert step["inputs"].get("azureSubscription") == "${{ parameters.azureSubscription }}", (  # type: ignore[union-attr]
        f"{template}: a Key Vault key needs the stage's service connection on the {command} step")


@pytest.mark.parametrize(("workflow", "command", "inputs"), [
    ("mlgate-register-seal.yml", "seal", {"sign": "signing-key"}),
    ("mlgate-gate.yml", "gate", {"public-key": "public-key", "sign": "signing-key"}),
    ("mlgate-deploy.yml", "verify", {"public-key": "public-key"}),
])
def test_github_signing_inputs_reach_the_step_and_default_to_unsigned(
        workflow: str, command: str, inputs: dict[str, str]) -> None:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text(encoding="utf-8"))
    declared = document[True]["workflow_call"]["inputs"]
    [job] = document["jobs"].values()
    [step] = [s for s in job["steps"] if s.get("with", {}).get("command") == command]
    for action_input, workflow_input in inputs.items():
        assert step["with"][action_input] == f"${{{{ inputs.{workflow_input} }}}}", (workflow, action_input)
        assert declared[workflow_input]["default"] == "", f"{workflow}: {workflow_input} must default to unsigned"
    assert step["with"]["identity"] == "${{ inputs.azure-client-id != '' && 'github-oidc' || '' }}", workflow
