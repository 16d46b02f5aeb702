"""The azure-storage state back-end against Azurite's queue and table: replays, dead workers, poison jobs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from mlgate.service.app import create_app
from mlgate.service.config import load_config
from mlgate.service.jobs import Sealer
from mlgate.service.state.azure_storage import AzureStorageState, StorageSettings
from mlgate.service.state.interface import Acceptance, Job, StateError
from tests.integration.service.conftest import AzuriteState, ScriptedEvaluator, StartService
from tests.integration.service.fakes import FakeAzureDevOps, FakeGitHub
from tests.integration.service.test_azure_devops_check import BODY, call, check_headers
from tests.integration.service.test_github_protection_rule import deliver, rule_payload

pytestmark = pytest.mark.integration
MODEL = {"model": "models:/fraud/3"}


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _settings(names: dict[str, str], **overrides: Any) -> StorageSettings:
    values: dict[str, Any] = {
        "queue_name": names["state_queue"], "table_name": names["state_table"], "replay_ttl": 3600.0,
        "visibility_timeout": 30, "max_attempts": 5, "workers": 1, "poll_seconds": 0.2,
        "connection_string": names["state_connection_string"], **overrides,
    }
    return StorageSettings(**values)


def test_a_replay_is_refused_by_another_replica_and_after_a_restart(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState
) -> None:
    names = azurite_state.names()
    first = start_service(ScriptedEvaluator(), **names, poll_seconds="0.2")
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    delivery = str(uuid.uuid4())
    answer = deliver(first, payload, delivery=delivery)
    assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
    _wait(lambda: len(fake_github.reviews()) == 1)
    assert first.app.health()["state"] == "azure-storage"
    first.app.close()  # the first replica stops; its memory goes with it

    second = start_service(ScriptedEvaluator(), **names, poll_seconds="0.2")
    again = deliver(second, payload, delivery=delivery)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    fresh = deliver(second, payload, delivery=str(uuid.uuid4()))
    assert fresh.json() == {"status": "accepted"}
    _wait(lambda: len(fake_github.reviews()) == 2)
    time.sleep(0.5)
    assert len(fake_github.reviews()) == 2
    assert fake_github.violations == []


def test_an_azure_devops_check_through_the_queue_and_its_replay_after_the_expiry(
    start_service: StartService, fake_ado: FakeAzureDevOps, azurite_state: AzuriteState
) -> None:
    service = start_service(ScriptedEvaluator(), **azurite_state.names(), poll_seconds="0.2", replay_ttl_seconds="1")
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])
    assert call(service, headers, BODY).json()["status"] == "accepted"
    assert call(service, headers, BODY).json() == {"status": "duplicate"}
    _wait(lambda: fake_ado.results() == ["succeeded"])
    time.sleep(1.2)  # past replay_ttl_seconds: the same check instance is a new call again
    assert call(service, headers, BODY).json()["status"] == "accepted"
    _wait(lambda: fake_ado.results() == ["succeeded", "succeeded"])
    assert fake_ado.violations == []
    assert fake_ado.auth_token not in service.log.getvalue()


def test_a_hung_workers_job_is_finished_by_another_replica_and_not_completed_twice(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState
) -> None:
    names = azurite_state.names()
    release = threading.Event()
    hung = ScriptedEvaluator()
    hung.behaviour = lambda ref: (release.wait(30), ScriptedEvaluator.behaviour(ref))[1]  # type: ignore[misc]
    first = start_service(hung, **names, workers="1", visibility_timeout_seconds="1", poll_seconds="0.2")
    assert deliver(first, rule_payload(fake_github, deployment_payload=MODEL)).json() == {"status": "accepted"}
    _wait(hung.started.is_set)  # the first replica took the job and hangs in the gate

    helper = ScriptedEvaluator()
    second = start_service(helper, **names, visibility_timeout_seconds="30", poll_seconds="0.2")
    _wait(lambda: len(fake_github.reviews()) == 1)  # the job came back visible: the second replica finished it
    assert helper.calls and fake_github.reviews()[0]["state"] == "approved"
    release.set()  # the first replica wakes up and tries to complete the same job
    assert first.app.state.wait_idle(10)
    time.sleep(0.3)
    assert len(fake_github.reviews()) == 1, "a second completion was sent"
    events = [line["event"] for line in second.log_lines()]
    assert "completion_claim_lost" in events or "completion_already_sent" in events


def _sealed_job(secret: str, payload: dict[str, Any], delivery: str | None = None) -> Job:
    delivery = delivery or str(uuid.uuid4())
    key = f"github:{delivery}"
    rule = {
        "delivery": delivery, "environment": payload["environment"],
        "callback_url": payload["deployment_callback_url"], "installation_id": payload["installation"]["id"],
        "ref": "models:/fraud/3", "ref_text": "models:/fraud/3", "ref_problem": None, "manifest_sha256": None,
        "repository": "octo-org/models", "sha": None, "requester": "octocat",
    }
    return Job(key, "github", Sealer([secret]).seal(key, rule))


def test_a_poison_job_completes_the_check_as_failed_with_the_reason(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState, canaries: dict[str, str]
) -> None:
    """A job whose replicas died twice (dequeue count past max_attempts) is rejected, never evaluated again."""
    names = azurite_state.names()
    crashed = AzureStorageState(_settings(names))  # a replica that accepts, then dies before running anything
    crashed.ensure()
    job = _sealed_job(canaries["webhook_secret"], rule_payload(fake_github, deployment_payload=MODEL))
    assert crashed.accept(job) is Acceptance.ACCEPTED
    queue = QueueClient.from_connection_string(names["state_connection_string"], names["state_queue"])
    for _ in range(2):  # two workers took it and died: the message came back each time
        _wait(lambda: queue.receive_message(visibility_timeout=1) is not None)
    crashed.close(wait=False)
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **names, max_attempts="2", poll_seconds="0.2")
    _wait(lambda: len(fake_github.reviews()) == 1, timeout=30)
    review = fake_github.reviews()[0]
    assert review["state"] == "rejected"
    assert "did not finish in 2 attempts" in review["comment"]
    assert evaluator.calls == []
    assert "job_poisoned" in [line["event"] for line in service.log_lines()]
    assert fake_github.violations == []


def _message(job: Job) -> str:
    return json.dumps({"key": job.key, "kind": job.kind, "sealed": job.sealed})


def _events(service: Any) -> list[str]:
    return [line["event"] for line in service.log_lines()]


def test_a_completed_job_delivered_again_is_not_sent_again(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState, canaries: dict[str, str]
) -> None:
    names = azurite_state.names()
    service = start_service(ScriptedEvaluator(), **names, poll_seconds="0.2")
    job = _sealed_job(canaries["webhook_secret"], rule_payload(fake_github, deployment_payload=MODEL))
    assert service.app.state.accept(job) is Acceptance.ACCEPTED
    _wait(lambda: len(fake_github.reviews()) == 1)
    queue = QueueClient.from_connection_string(names["state_connection_string"], names["state_queue"])
    # the same job queued once more (a copy the key's entry does not name) is dropped unrun
    queue.send_message(_message(job))
    _wait(lambda: "duplicate_message_dropped" in _events(service))
    assert len(fake_github.reviews()) == 1
    _wait(lambda: queue.get_queue_properties().approximate_message_count == 0)


def test_a_duplicate_message_of_a_queued_job_is_dropped_without_a_callback(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState, canaries: dict[str, str]
) -> None:
    """A second message of a job not yet run (the entry names the first one) never runs, whichever comes first."""
    names = azurite_state.names()
    accepting = AzureStorageState(_settings(names))  # accepts only: no workers
    accepting.ensure()
    job = _sealed_job(canaries["webhook_secret"], rule_payload(fake_github, deployment_payload=MODEL))
    queue = QueueClient.from_connection_string(names["state_connection_string"], names["state_queue"])
    queue.send_message(_message(job))  # queued before the accepted one
    assert accepting.accept(job) is Acceptance.ACCEPTED
    queue.send_message(_message(job))  # and one after it
    assert accepting.accept(job) is Acceptance.DUPLICATE  # a replay is refused (and its message deleted)
    accepting.close(wait=False)
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **names, poll_seconds="0.2")
    _wait(lambda: len(fake_github.reviews()) == 1 and _events(service).count("duplicate_message_dropped") == 2)
    _wait(lambda: queue.get_queue_properties().approximate_message_count == 0)
    assert service.app.state.wait_idle(10)
    assert len(fake_github.reviews()) == 1 and len(evaluator.calls) == 1
    assert fake_github.violations == []


def test_an_accept_cut_off_after_its_send_is_accepted_again_at_once_and_called_back_once(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState, canaries: dict[str, str]
) -> None:
    """The replica died between its two calls: the job is queued, no entry names it. The redelivery is
    accepted at once (no grace period), runs once; the orphaned message is dropped; a replay is refused."""
    names = azurite_state.names()
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    delivery = str(uuid.uuid4())
    queue = QueueClient.from_connection_string(names["state_connection_string"], names["state_queue"])
    queue.create_queue()
    queue.send_message(_message(_sealed_job(canaries["webhook_secret"], payload, delivery)))  # the cut-off accept
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **names, poll_seconds="0.2")
    answer = deliver(service, payload, delivery=delivery)
    assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
    _wait(lambda: len(fake_github.reviews()) == 1 and "duplicate_message_dropped" in _events(service))
    replay = deliver(service, payload, delivery=delivery)
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
    _wait(lambda: queue.get_queue_properties().approximate_message_count == 0)
    assert service.app.state.wait_idle(10)
    assert len(fake_github.reviews()) == 1 and len(evaluator.calls) == 1
    assert fake_github.reviews()[0]["state"] == "approved"
    assert fake_github.violations == []


def test_an_orphaned_message_no_entry_ever_names_is_dropped_unrun(
    start_service: StartService, fake_github: FakeGitHub, azurite_state: AzuriteState, canaries: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlgate.service.state import azure_storage

    monkeypatch.setattr(azure_storage, "ORPHAN_SECONDS", 2)  # put back for 1 s, 1 s, then dropped
    names = azurite_state.names()
    queue = QueueClient.from_connection_string(names["state_connection_string"], names["state_queue"])
    queue.create_queue()
    job = _sealed_job(canaries["webhook_secret"], rule_payload(fake_github, deployment_payload=MODEL))
    queue.send_message(_message(job))
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **names, poll_seconds="0.2")
    _wait(lambda: "orphan_message_dropped" in _events(service))
    _wait(lambda: queue.get_queue_properties().approximate_message_count == 0)
    assert fake_github.reviews() == [] and evaluator.calls == []
    dropped = [line for line in service.log_lines() if line["event"] == "orphan_message_dropped"]
    assert dropped[0]["waited"] == 2


def test_an_unreachable_store_stops_the_start_up_with_the_fix(
    policy_file: Any, canaries: dict[str, str], azurite_state: AzuriteState
) -> None:
    names = azurite_state.names()
    dead = names["state_connection_string"].replace(str(azurite_state.queue_port), "9")
    environ = {
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_AZURE_DEVOPS_KEY": canaries["azure_devops_key"],
        "MLGATE_SERVE_STATE": "azure-storage",
        "MLGATE_SERVE_STATE_CONNECTION_STRING": dead,
    }
    with pytest.raises(StateError) as caught:
        create_app(load_config(environ))
    text = caught.value.diagnostics()
    assert "Azure Storage" in text and "create the queue" in text
    assert "AccountKey" not in text and canaries["azure_devops_key"] not in text


def test_claims_are_conditional_writes(azurite_state: AzuriteState, canaries: dict[str, str]) -> None:
    names = azurite_state.names()
    backend = AzureStorageState(_settings(names))
    backend.ensure()
    job = Job(f"github:{uuid.uuid4()}", "github", "{}")
    assert backend.accept(job) is Acceptance.ACCEPTED
    assert backend.accept(job) is Acceptance.DUPLICATE
    from mlgate.service.state.azure_storage import _keys

    read = backend._table.get_entity(*_keys(job.key))
    assert backend.claim(job, 1, read) is not None  # the first claim wins ...
    assert backend.claim(job, 1, read) is None  # ... the second, with the same ETag, is refused
    token = canaries["auth_token"]
    sealer = Sealer([canaries["azure_devops_key"]])
    sealed = Job("azure-devops:p:t", "azure-devops", sealer.seal("azure-devops:p:t", {"auth_token": token}))
    assert backend.accept(sealed) is Acceptance.ACCEPTED
    stored = [message.content for message in backend._queue.peek_messages(max_messages=32)]
    assert len(stored) == 2 and not any(token in content for content in stored)  # the AuthToken is sealed
    backend.close(wait=False)
