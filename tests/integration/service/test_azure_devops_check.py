"""The Azure DevOps "Invoke REST API" check in callback mode, against a spec-backed fake Azure DevOps."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
import requests

from mlgate.errors import NetworkError
from tests.integration.service.conftest import (
    Running,
    ScriptedEvaluator,
    StartService,
    raising,
    refused_outcome,
)
from tests.integration.service.fakes import FakeAzureDevOps

pytestmark = pytest.mark.integration


def check_headers(fake: FakeAzureDevOps, key: str | None, **overrides: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "PlanUrl": fake.plan_url,
        "ProjectId": str(uuid.uuid4()),
        "HubName": "checks",
        "PlanId": str(uuid.uuid4()),
        "JobId": str(uuid.uuid4()),
        "TimelineId": str(uuid.uuid4()),
        "TaskInstanceId": str(uuid.uuid4()),
        "AuthToken": fake.auth_token,
    }
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"azure-devops:{key}".encode()).decode()
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v != ""}


def call(service: Running, headers: dict[str, str], body: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{service.base_url}/azure-devops/check", data=data, headers=headers, timeout=10)


BODY = {"model": "models:/fraud-detector/3", "manifest_sha256": "c" * 64}


def assert_no_secret_in_logs(service: Running, fake: FakeAzureDevOps) -> None:
    text = service.log.getvalue()
    assert text, "the service wrote no log"
    for value in (*service.secrets.values(), fake.auth_token):
        assert value not in text


def test_passing_model_completes_the_check_succeeded_with_the_evidence_in_its_log(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    response = call(service, headers, BODY)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    event = fake_ado.wait_for("Events_Post Event")[0]
    assert event.json() == {
        "name": "TaskCompleted",
        "taskId": headers["TaskInstanceId"],
        "jobId": headers["JobId"],
        "result": "succeeded",
    }
    assert event.params["planId"] == headers["PlanId"]
    assert event.params["scopeIdentifier"] == headers["ProjectId"]
    assert event.params["hubName"] == "checks"
    # the log was created, attached to the check's timeline record, and holds the evidence summary
    created = fake_ado.of("Logs_Create")
    assert len(created) == 1
    record_update = fake_ado.of("Records_Update")[0]
    assert record_update.params["timelineId"] == headers["TimelineId"]
    assert record_update.json()["value"] == [{"id": headers["TaskInstanceId"], "log": {"id": 3}}]
    appended = fake_ado.of("Logs_Append Log Content")[0]
    assert appended.params["logId"] == "3"  # the id Microsoft's recorded CreateLog answer gives
    log = fake_ado.log_text()
    assert "mlgate gate passed models:/fraud-detector/3: PASSED" in log
    assert "all 7 rules passed" in log
    assert "lineage.git_commit | passed" in log
    assert f"full evidence: https://mlgate.example.org/evidence/{'a' * 64}.md" in log
    order = [r.operation for r in fake_ado.requests]
    assert order == ["Logs_Create", "Records_Update", "Logs_Append Log Content", "Events_Post Event"]
    assert fake_ado.violations == []
    # what the gate was asked
    assert evaluator.calls[0]["ref"] == "models:/fraud-detector/3"
    assert evaluator.calls[0]["manifest_sha256"] == "c" * 64
    assert evaluator.calls[0]["stage"] == "production"
    assert evaluator.calls[0]["ci"].platform == "azure-devops"
    assert_no_secret_in_logs(service, fake_ado)


def test_refused_model_completes_the_check_failed_naming_the_failing_rules(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    service = start_service(ScriptedEvaluator(refused_outcome))
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    assert call(service, headers, BODY).status_code == 200

    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    log = fake_ado.log_text()
    assert "REFUSED" in log
    assert "metrics.auc: expected >= 0.80, got 0.61" in log
    assert "tags_required.rollback_plan: missing" in log
    assert fake_ado.violations == []


def test_mlflow_down_completes_the_check_failed_with_the_reason(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    down = NetworkError(
        "MLflow at http://127.0.0.1:9 did not answer (ConnectionError)", hint="check MLFLOW_TRACKING_URI"
    )
    service = start_service(ScriptedEvaluator(raising(down)))
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    assert call(service, headers, BODY).status_code == 200

    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    log = fake_ado.log_text()
    assert "COULD NOT EVALUATE" in log
    assert "MLflow at http://127.0.0.1:9 did not answer" in log
    assert "check MLFLOW_TRACKING_URI" in log


def test_a_crashing_gate_fails_the_check(start_service: StartService, fake_ado: FakeAzureDevOps) -> None:
    def crash(ref: Any) -> Any:
        raise RuntimeError("boom")

    service = start_service(ScriptedEvaluator(crash))
    assert call(service, check_headers(fake_ado, service.secrets["azure_devops_key"]), BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    assert "internal error in the gate (RuntimeError)" in fake_ado.log_text()


def test_evaluation_slower_than_three_seconds_is_still_acknowledged_in_time(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator(delay=3.5)
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    began = time.monotonic()
    response = call(service, headers, BODY)
    acknowledged = time.monotonic() - began

    assert response.status_code == 200
    assert acknowledged < 3.0  # the check's acknowledgement deadline
    assert not evaluator.finished.is_set(), "the answer waited for the evaluation"
    assert fake_ado.of("Events_Post Event") == []
    fake_ado.wait_for("Events_Post Event", timeout=30)
    assert fake_ado.results() == ["succeeded"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"azure-devops:wrong-key").decode(),
        "Basic not-base64!",
        "Bearer something",
    ],
)
def test_bad_or_missing_key_is_401_and_nothing_is_evaluated(
    start_service: StartService, fake_ado: FakeAzureDevOps, authorization: str | None
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, None)
    if authorization:
        headers["Authorization"] = authorization

    response = call(service, headers, BODY)

    assert response.status_code == 401
    service.app.state.wait_idle(5)
    assert evaluator.calls == []
    assert fake_ado.requests == []


def test_the_key_header_is_accepted_too(start_service: StartService, fake_ado: FakeAzureDevOps) -> None:
    service = start_service(ScriptedEvaluator())
    headers = check_headers(fake_ado, None, **{"X-Mlgate-Key": service.secrets["azure_devops_key"]})
    assert call(service, headers, BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["succeeded"]


def test_a_repeated_call_for_the_same_check_is_evaluated_once(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    first = call(service, headers, BODY)
    second = call(service, headers, BODY)

    assert first.json()["status"] == "accepted"
    assert second.json()["status"] == "duplicate"
    fake_ado.wait_for("Events_Post Event")
    service.app.state.wait_idle(10)
    assert len(evaluator.calls) == 1
    assert len(fake_ado.of("Events_Post Event")) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"TaskInstanceId": ""}, "missing header(s): TaskInstanceId"),
        ({"PlanId": "not-a-guid"}, "PlanId is not a GUID"),
        ({"PlanUrl": "https://attacker.example.com/org/"}, "PlanUrl is not an allowed"),
    ],
)
def test_bad_plan_headers_are_400_and_nothing_is_evaluated(
    start_service: StartService, fake_ado: FakeAzureDevOps, override: dict[str, str], message: str
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    response = call(service, check_headers(fake_ado, service.secrets["azure_devops_key"], **override), BODY)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert evaluator.calls == []
    assert fake_ado.requests == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body: not valid JSON"),
        ({"manifest_sha256": "c" * 64}, "the body: field model: expected a string, got null"),
        ({"model": "models:/m/1", "manifest_sha256": "xyz"}, "manifest_sha256"),
    ],
)
def test_bad_bodies_are_400(start_service: StartService, fake_ado: FakeAzureDevOps, body: Any, message: str) -> None:
    service = start_service(ScriptedEvaluator())
    response = call(service, check_headers(fake_ado, service.secrets["azure_devops_key"]), body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_malformed_model_ref_fails_the_check_saying_why(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])
    assert call(service, headers, {"model": "no such thing"}).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    assert "not a model reference: 'no such thing'" in fake_ado.log_text()
    assert evaluator.calls == []


def test_when_the_log_cannot_be_written_a_passing_gate_still_fails_the_check(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    fake_ado.fail["Logs_Create"] = 403
    service = start_service(ScriptedEvaluator())
    assert call(service, check_headers(fake_ado, service.secrets["azure_devops_key"]), BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    events = [line for line in service.log_lines() if line["event"] == "azure_devops_log_failed"]
    assert events and "403" in events[0]["error"]
    assert_no_secret_in_logs(service, fake_ado)


def test_body_over_the_cap_is_413(start_service: StartService, fake_ado: FakeAzureDevOps) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, max_body_bytes="1024")
    body = {**BODY, "padding": "x" * 4096}
    response = call(service, check_headers(fake_ado, service.secrets["azure_devops_key"]), body)
    assert response.status_code == 413
    assert evaluator.calls == []


def test_a_repeated_call_after_a_failed_completion_is_processed(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])
    fake_ado.fail["Events_Post Event"] = 400

    assert call(service, headers, BODY).json()["status"] == "accepted"
    fake_ado.wait_for("Events_Post Event")
    service.app.state.wait_idle(10)
    del fake_ado.fail["Events_Post Event"]

    assert call(service, headers, BODY).json()["status"] == "accepted"
    fake_ado.wait_for("Events_Post Event", count=2)
    service.app.state.wait_idle(10)
    assert len(evaluator.calls) == 2
    assert call(service, headers, BODY).json()["status"] == "duplicate"


@pytest.mark.parametrize(
    "plan_url",
    [
        # urlsplit reads host "localhost" (allowed); requests connects to 127.0.0.1:PORT
        "http://127.0.0.1:{port}\\@localhost/org",
        "http://127.0.0.1:{port}\\localhost/org",
        "http://localhost@127.0.0.1:{port}/org",
        "http://localhost:{port}/org\\..\\..",
        "http://%6cocalhost:{port}/org",
        "HTTP://localhost:{port}/org",
        "http://localhost:{port}:80/org",
    ],
)
def test_a_plan_url_parsers_disagree_on_never_receives_the_token(
    start_service: StartService, fake_ado: FakeAzureDevOps, plan_url: str
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, azure_devops_allowed_hosts="localhost")
    port = fake_ado.url.rsplit(":", 1)[1]
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"], PlanUrl=plan_url.format(port=port))
    response = call(service, headers, BODY)
    service.app.state.wait_idle(10)
    assert response.status_code == 400
    assert "PlanUrl is not an allowed" in response.json()["error"]
    assert evaluator.calls == []
    assert fake_ado.requests == []


def test_plan_calls_use_the_plan_url_rebuilt_from_its_parts(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"], PlanUrl=fake_ado.plan_url + "/")
    assert call(service, headers, BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert all(not r.path.startswith("//") for r in fake_ado.requests)


def test_the_policy_is_loaded_once_at_start_up(
    start_service: StartService, fake_ado: FakeAzureDevOps, policy_file: Any
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    policy_file.write_text("not: [a policy\n")  # edited after the start: not read again per request
    key = service.secrets["azure_devops_key"]
    for _ in range(2):
        assert call(service, check_headers(fake_ado, key), BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event", count=2)
    assert fake_ado.results() == ["succeeded", "succeeded"]
    first, second = (c["policy"] for c in evaluator.calls)
    assert first is second is service.app.policy


def test_a_same_origin_redirect_is_not_followed_with_the_job_token(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    from tests.fakes.server import Reply as FakeReply

    template = "/{organization}/{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/logs"
    fake_ado.add("POST", template, lambda r: FakeReply(307, b"", headers={"Location": "/other/_apis/x"}),
                 name="Logs_Create")
    service = start_service(ScriptedEvaluator())
    assert call(service, check_headers(fake_ado, service.secrets["azure_devops_key"]), BODY).status_code == 200
    fake_ado.wait_for("Events_Post Event")
    assert fake_ado.results() == ["failed"]
    assert not [r for r in fake_ado.requests if r.path.startswith("/other/")]
