"""The service with the real gate engine against a real `mlflow server` (both protocols).

Passing model -> check succeeded / rule approved with the evidence; refused model -> failed /
rejected naming the failing rules; MLflow down -> failed / rejected with the reason, never approved.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mlgate.cli import main
from tests.integration.lineage.conftest import POLICY, Built, build_model
from tests.integration.service.conftest import Running, StartService
from tests.integration.service.fakes import FakeAzureDevOps, FakeGitHub
from tests.integration.service.test_azure_devops_check import call, check_headers
from tests.integration.service.test_github_protection_rule import deliver, rule_payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def service_models(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Two sealed models: one that passes the policy, one refused for a low AUC."""
    work = tmp_path_factory.mktemp("service-models")
    built = {
        "passing": build_model(mlflow_server, work, "svc-passing"),
        "refused": build_model(
            mlflow_server, work, "svc-refused", metrics={"auc": 0.55, "demographic_parity_difference": 0.04}
        ),
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    try:
        for model in built.values():
            assert main(["seal", "--model", model.ref, "--platform", "local"]) == 0
    finally:
        mp.undo()
    return built


@pytest.fixture
def gate_service(
    start_service: StartService, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Running]:
    policy = tmp_path / "release-policy.yaml"
    policy.write_text(POLICY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    yield start_service(None, policy=str(policy))  # None: the default evaluator, mlgate.gate.evaluate


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_azure_devops_check_with_the_real_gate(
    gate_service: Running, fake_ado: FakeAzureDevOps, service_models: dict[str, Built]
) -> None:
    key = gate_service.secrets["azure_devops_key"]
    passing = check_headers(fake_ado, key)
    refused = check_headers(fake_ado, key)
    assert call(gate_service, passing, {"model": service_models["passing"].ref}).status_code == 200
    assert call(gate_service, refused, {"model": service_models["refused"].ref}).status_code == 200

    events = fake_ado.wait_for("Events_Post Event", count=2, timeout=120)
    results = {e.json()["taskId"]: e.json()["result"] for e in events}
    assert results == {passing["TaskInstanceId"]: "succeeded", refused["TaskInstanceId"]: "failed"}
    logs = {}
    for record in fake_ado.of("Records_Update"):
        (entry,) = record.json()["value"]
        logs[entry["id"]] = entry["log"]["id"]
    assert set(logs) == {passing["TaskInstanceId"], refused["TaskInstanceId"]}
    text = fake_ado.log_text()
    assert f"mlgate gate: PASSED {service_models['passing'].ref}" in text
    assert f"mlgate gate: REFUSED {service_models['refused'].ref}" in text
    assert "metrics.auc" in text
    assert "### Lineage chain" in text  # the evidence tables themselves
    assert fake_ado.violations == []


def test_github_rule_with_the_real_gate(
    gate_service: Running, fake_github: FakeGitHub, service_models: dict[str, Built]
) -> None:
    for scenario in ("passing", "refused"):
        payload = rule_payload(
            fake_github, environment=f"prod-{scenario}", deployment_payload={"model": service_models[scenario].ref}
        )
        assert deliver(gate_service, payload).status_code == 200

    reviews = fake_github.wait_for("actions/review-custom-gates-for-run", count=2, timeout=120)
    by_env = {r.json()["environment_name"]: r.json() for r in reviews}
    assert by_env["prod-passing"]["state"] == "approved"
    assert f"mlgate gate: PASSED {service_models['passing'].ref}" in by_env["prod-passing"]["comment"]
    assert by_env["prod-refused"]["state"] == "rejected"
    assert "metrics.auc" in by_env["prod-refused"]["comment"]
    # the linked full evidence is served
    link = next(w for w in by_env["prod-passing"]["comment"].split() if "/evidence/" in w)
    digest = link.split("/evidence/")[1][:64]
    evidence = requests.get(f"{gate_service.base_url}/evidence/{digest}.json", timeout=5).json()
    assert evidence["decision"]["passed"] is True
    assert evidence["evidence_sha256"] == digest
    assert fake_github.violations == []


def test_mlflow_down_fails_and_rejects_with_the_reason(
    gate_service: Running,
    fake_ado: FakeAzureDevOps,
    fake_github: FakeGitHub,
    service_models: dict[str, Built],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    ref = service_models["passing"].ref
    assert (
        call(
            gate_service, check_headers(fake_ado, gate_service.secrets["azure_devops_key"]), {"model": ref}
        ).status_code
        == 200
    )
    assert deliver(gate_service, rule_payload(fake_github, deployment_payload={"model": ref})).status_code == 200

    fake_ado.wait_for("Events_Post Event", timeout=180)
    review = fake_github.wait_for("actions/review-custom-gates-for-run", timeout=180)[0].json()
    assert fake_ado.results() == ["failed"]
    assert "COULD NOT EVALUATE" in fake_ado.log_text()
    assert "MLflow" in fake_ado.log_text()
    assert review["state"] == "rejected"
    assert "could not evaluate" in review["comment"]
    assert "MLflow" in review["comment"]
