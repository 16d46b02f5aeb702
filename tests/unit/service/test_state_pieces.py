"""Offline pieces of the state back-ends: job sealing, the in-process back-end, the state settings, key rotation."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from mlgate.errors import InvalidInputError, UsageError
from mlgate.service.azure_devops_check import authenticate
from mlgate.service.config import load_config
from mlgate.service.github_protection_rule import sign, signature_valid_any
from mlgate.service.http_types import Request
from mlgate.service.jobs import Sealer, SealError
from mlgate.service.state.in_process import InProcessState
from mlgate.service.state.interface import Acceptance, Attempt, Job, Result


def test_a_sealed_job_opens_only_with_its_secret_and_its_key() -> None:
    token = "job-token-canary-91b2"
    sealed = Sealer(["old-secret"]).seal("azure-devops:p:t", {"auth_token": token, "n": 1})
    assert token not in sealed
    assert Sealer(["new-secret", "old-secret"]).open("azure-devops:p:t", sealed).text("auth_token") == token
    with pytest.raises(SealError, match="does not hold"):
        Sealer(["new-secret"]).open("azure-devops:p:t", sealed)
    with pytest.raises(SealError, match="integrity"):
        Sealer(["old-secret"]).open("azure-devops:p:OTHER", sealed)  # moved onto another job
    tampered = json.loads(sealed)
    box = bytearray(base64.b64decode(tampered["c"]))
    box[0] ^= 1
    tampered["c"] = base64.b64encode(bytes(box)).decode()
    with pytest.raises(SealError, match="integrity"):
        Sealer(["old-secret"]).open("azure-devops:p:t", json.dumps(tampered))
    with pytest.raises(SealError):
        Sealer(["old-secret"]).open("azure-devops:p:t", "not json")
    assert "old-secret" not in repr(Sealer(["old-secret"])._keys)


def test_the_in_process_back_end_accepts_once_claims_once_and_forgets_an_unsent_job() -> None:
    state = InProcessState(workers=1, max_pending=2, replay_ttl=60, replay_max=100)
    release = threading.Event()
    claims: list[bool] = []
    results = {"github:a": Result.COMPLETED, "github:b": Result.RETRY}

    def run(job: Job, attempt: Attempt) -> Result:
        release.wait(5)
        claims.append(attempt.claim())
        claims.append(attempt.claim())  # a second claim of the same attempt's job is refused
        return results[job.key]

    state.start(run)
    assert state.accept(Job("github:a", "github", "{}")) is Acceptance.ACCEPTED
    assert state.accept(Job("github:a", "github", "{}")) is Acceptance.DUPLICATE
    assert state.accept(Job("github:b", "github", "{}")) is Acceptance.ACCEPTED
    assert state.accept(Job("github:c", "github", "{}")) is Acceptance.BUSY  # one running + one queued
    release.set()
    assert state.wait_idle(5)
    assert claims == [True, False, True, False]
    assert state.accept(Job("github:a", "github", "{}")) is Acceptance.DUPLICATE  # completed: still remembered
    assert state.accept(Job("github:b", "github", "{}")) is Acceptance.ACCEPTED  # not sent: a redelivery runs
    assert state.wait_idle(5)
    state.close(wait=True)


def _environ(policy: Path, **extra: str) -> dict[str, str]:
    return {"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k-canary", **extra}


def test_state_settings_are_checked_with_the_fix(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    assert load_config(_environ(policy)).state == "in-process"
    with pytest.raises(InvalidInputError, match="state must be one of in-process, azure-storage"):
        load_config(_environ(policy, MLGATE_SERVE_STATE="redis"))
    with pytest.raises(UsageError, match="needs the storage account"):
        load_config(_environ(policy, MLGATE_SERVE_STATE="azure-storage"))
    with pytest.raises(InvalidInputError, match="not a storage account name"):
        load_config(_environ(policy, MLGATE_SERVE_STATE="azure-storage", MLGATE_SERVE_STATE_STORAGE_ACCOUNT="Bad_Name"))
    with pytest.raises(InvalidInputError, match="not a queue name"):
        load_config(_environ(policy, MLGATE_SERVE_STATE="azure-storage", MLGATE_SERVE_STATE_STORAGE_ACCOUNT="acct1",
                             MLGATE_SERVE_STATE_QUEUE="Bad--Queue"))
    account = {"MLGATE_SERVE_STATE": "azure-storage", "MLGATE_SERVE_STATE_STORAGE_ACCOUNT": "acct1"}
    config = load_config(_environ(policy, **account))
    assert config.state_queue_endpoint == "https://acct1.queue.core.windows.net"
    assert config.state_table_endpoint == "https://acct1.table.core.windows.net"
    assert "k-canary" not in json.dumps(config.describe())


def test_a_connection_string_is_a_secret(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    (tmp_path / "serve.yaml").write_text("state: azure-storage\nstate_connection_string: inline\n")
    with pytest.raises(InvalidInputError, match="secret value"):
        load_config(_environ(policy), config_file=tmp_path / "serve.yaml")
    from mlgate.redact import redact

    key = "c2VjcmV0LWFjY291bnQta2V5LWNhbmFyeQ=="
    connection = f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={key};EndpointSuffix=core.windows.net"
    config = load_config(_environ(policy, MLGATE_SERVE_STATE="azure-storage",
                                  MLGATE_SERVE_STATE_CONNECTION_STRING=connection))
    assert config.state_connection_string == connection
    assert key not in redact(f"failed with {key}") and key not in json.dumps(config.describe())


def test_two_keys_are_accepted_during_a_rotation(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\n")
    with pytest.raises(UsageError, match="azure_devops_key_previous is set without azure_devops_key"):
        load_config({"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_AZURE_DEVOPS_KEY_PREVIOUS": "old",
                     "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": "s", "MLGATE_SERVE_GITHUB_APP_ID": "1",
                     "MLGATE_SERVE_GITHUB_PRIVATE_KEY": "pem"})
    config = load_config(_environ(policy, MLGATE_SERVE_AZURE_DEVOPS_KEY_PREVIOUS="old-key"))
    assert config.describe()["key_rotation"] == ["azure_devops_key_previous"]

    def call(key: str) -> Request:
        return Request("POST", "/azure-devops/check", {"x-mlgate-key": key}, b"")

    assert authenticate(call("k-canary"), "k-canary", "old-key")
    assert authenticate(call("old-key"), "k-canary", "old-key")
    assert not authenticate(call("other"), "k-canary", "old-key")
    assert not authenticate(call("old-key"), "k-canary", None)
    body = b'{"action": "requested"}'
    assert signature_valid_any(("new", "old"), body, sign("old", body))
    assert not signature_valid_any(("new", None), body, sign("old", body))


class _HeldQueue:
    """A queue client whose send waits until released (an accept in flight)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sending = threading.Event()

    def send_message(self, content: str, **options: object) -> object:
        self.sending.set()
        self.release.wait(10)
        return type("Sent", (), {"id": "m1", "pop_receipt": "r1"})()


class _Table:
    def create_entity(self, entity: dict[str, object]) -> dict[str, str]:
        return {"etag": "e1"}


def test_a_worker_lets_the_accepts_in_flight_go_first_for_at_most_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.service.state import azure_storage
    from mlgate.service.state.azure_storage import AzureStorageState, StorageSettings

    settings = StorageSettings(queue_name="q", table_name="t", replay_ttl=60, visibility_timeout=30, max_attempts=5,
                               workers=1, poll_seconds=1)
    queue = _HeldQueue()
    state = AzureStorageState(settings, clients=(queue, _Table()))
    accepted: list[Acceptance] = []
    accept = threading.Thread(target=lambda: accepted.append(state.accept(Job("github:a", "github", "{}"))))
    accept.start()
    assert queue.sending.wait(5)
    worker_went = threading.Event()
    worker = threading.Thread(target=lambda: (state._yield_to_accepts(), worker_went.set()))
    worker.start()
    assert not worker_went.wait(0.3)  # the accept is in flight: the worker's storage call waits
    queue.release.set()
    assert worker_went.wait(5)  # ... and goes as soon as it is done
    accept.join(5)
    assert accepted == [Acceptance.ACCEPTED]

    monkeypatch.setattr(azure_storage, "YIELD_SECONDS", 0.2)
    stuck = _HeldQueue()
    state = AzureStorageState(settings, clients=(stuck, _Table()))
    threading.Thread(target=lambda: state.accept(Job("github:b", "github", "{}")), daemon=True).start()
    assert stuck.sending.wait(5)
    worker_went.clear()
    worker = threading.Thread(target=lambda: (state._yield_to_accepts(), worker_went.set()))
    worker.start()
    assert worker_went.wait(5)  # an accept that hangs does not stop the workers for longer than YIELD_SECONDS
    stuck.release.set()
