"""The Azure DevOps check exactly as the README configures it: Microsoft's documented header set
(macros filled in the way the check fills them) and the README's body, posted byte for byte to
`mlgate serve` under its real WSGI server."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
import requests

from tests.integration.service.conftest import Running, ScriptedEvaluator, StartService
from tests.integration.service.fakes import FakeAzureDevOps

pytestmark = pytest.mark.integration

README = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("### Azure DevOps: the environment's check\n", 1)[1].split("\n### ", 1)[0]
# Microsoft's default headers of the Invoke REST API / Azure Function check (callback mode).
MICROSOFT_HEADERS = {
    "Content-Type": "application/json",
    "PlanUrl": "$(system.CollectionUri)",
    "ProjectId": "$(system.TeamProjectId)",
    "HubName": "$(system.HostType)",
    "PlanId": "$(system.PlanId)",
    "JobId": "$(system.JobId)",
    "TimelineId": "$(system.TimelineId)",
    "TaskInstanceId": "$(system.TaskInstanceId)",
    "AuthToken": "$(system.AccessToken)",
}


def readme_blocks() -> tuple[dict[str, str], bytes]:
    """The header JSON and the body of the README's check, as written there."""
    [headers_text] = re.findall(r"```json\n(\s*\{\n.*?\n\s*\})\n\s*```", SECTION, re.S)
    [body_text] = re.findall(r"```json\n\s*(\{\"model\".*?\})\n\s*```", SECTION, re.S)
    return json.loads(headers_text), body_text.encode("utf-8")


def as_the_check_sends(headers: dict[str, str], fake: FakeAzureDevOps, key: str) -> dict[str, str]:
    """Macros replaced by the run's values, and the Generic connection's password as Basic auth."""
    values = {
        "system.CollectionUri": fake.plan_url, "system.TeamProjectId": str(uuid.uuid4()), "system.HostType": "checks",
        "system.PlanId": str(uuid.uuid4()), "system.JobId": str(uuid.uuid4()),
        "system.TimelineId": str(uuid.uuid4()), "system.TaskInstanceId": str(uuid.uuid4()),
        "system.AccessToken": fake.auth_token,
    }
    sent = {name: re.sub(r"\$\(([\w.]+)\)", lambda m: values[m.group(1)], value) for name, value in headers.items()}
    sent["Authorization"] = "Basic " + base64.b64encode(f"any-user:{key}".encode()).decode()
    return sent


def post(service: Running, headers: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(f"{service.base_url}/azure-devops/check", data=body, headers=headers, timeout=10)


def test_the_readme_headers_are_microsofts_set() -> None:
    headers, _ = readme_blocks()
    assert headers == MICROSOFT_HEADERS
    assert "Time between evaluations** to **0" in SECTION


def test_the_readme_body_is_accepted_verbatim_and_gates_the_candidate(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers, body = readme_blocks()
    assert "$(" not in body.decode(), "a macro the check cannot resolve is sent as literal text"

    response = post(service, as_the_check_sends(headers, fake_ado, service.secrets["azure_devops_key"]), body)

    assert response.status_code == 200, response.text
    event = fake_ado.wait_for("Events_Post Event")[0]
    assert event.json()["result"] == "succeeded"
    assert evaluator.calls[0]["ref"] == "models:/fraud-detector@candidate"
    assert evaluator.calls[0]["stage"] == "production"
    assert evaluator.calls[0]["manifest_sha256"] is None  # the digest sealed on the version is used
    assert fake_ado.violations == []


def test_the_body_the_readme_used_to_give_is_refused_when_its_macro_is_undefined(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    """Why the README no longer has `$(mlgate.manifest.sha256)`: undefined, it arrives as literal text."""
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers, _ = readme_blocks()
    old = b'{"model": "models:/fraud-detector@candidate", "manifest_sha256": "$(mlgate.manifest.sha256)"}'
    response = post(service, as_the_check_sends(headers, fake_ado, service.secrets["azure_devops_key"]), old)
    assert response.status_code == 400
    assert evaluator.calls == []
