"""Fixtures: the check service under waitress on 127.0.0.1; spec-backed fakes of Azure DevOps and GitHub."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from waitress import wasyncore
from waitress.server import create_server

from mlgate.errors import Error
from mlgate.platforms.base import CIContext
from mlgate.policy.loader import Policy
from mlgate.refs import ModelRef
from mlgate.service import logs
from mlgate.service.app import ServiceApp, create_app
from mlgate.service.config import load_config
from mlgate.service.evaluation import GateResult
from tests.integration.service.fakes import FakeAzureDevOps, FakeGitHub

APP_ID = 98765


def passing_outcome(ref: Any) -> GateResult:
    return GateResult(
        passed=True,
        evidence_sha256="a" * 64,
        evidence_json=json.dumps({"schema_version": 1, "model": str(ref), "decision": "passed"}),
        markdown=f"## mlgate: PASSED\n\n| rule | result |\n|---|---|\n| lineage.git_commit | passed |\n\nmodel {ref}",
        summary="all 7 rules passed",
    )


def refused_outcome(ref: Any) -> GateResult:
    return GateResult(
        passed=False,
        evidence_sha256="b" * 64,
        evidence_json=json.dumps({"schema_version": 1, "model": str(ref), "decision": "refused"}),
        markdown="## mlgate: REFUSED\n\n| rule | result |\n|---|---|\n| metrics.auc | failed |",
        failed_rules=("metrics.auc: expected >= 0.80, got 0.61", "tags_required.rollback_plan: missing"),
        summary="2 of 7 rules failed",
    )


@dataclass
class ScriptedEvaluator:
    """Stands in for the gate (an :class:`Evaluator`): scripted result, records every call."""

    behaviour: Callable[[Any], GateResult] = passing_outcome
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, ref: ModelRef, *, policy: Policy, manifest_sha256: str | None, ci: CIContext, stage: str
    ) -> GateResult:
        assert isinstance(ref, ModelRef) and isinstance(policy, Policy), "the evaluator takes typed values"
        with self.lock:
            self.calls.append(
                {"ref": str(ref), "policy": policy, "manifest_sha256": manifest_sha256, "ci": ci, "stage": stage}
            )
        self.started.set()
        if self.delay:
            time.sleep(self.delay)
        try:
            return self.behaviour(ref)
        finally:
            self.finished.set()


def raising(error: Error) -> Callable[[Any], GateResult]:
    def behaviour(ref: Any) -> GateResult:
        raise error

    return behaviour


@dataclass
class Running:
    app: ServiceApp
    base_url: str
    log: io.StringIO
    secrets: dict[str, str]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def app_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture
def canaries() -> dict[str, str]:
    return {
        "azure_devops_key": f"ado-key-canary-{uuid.uuid4().hex}",
        "webhook_secret": f"gh-webhook-canary-{uuid.uuid4().hex}",
        "auth_token": f"ado-job-token-canary-{uuid.uuid4().hex}",
    }


@pytest.fixture
def fake_ado(canaries: dict[str, str]) -> Iterator[FakeAzureDevOps]:
    fake = FakeAzureDevOps(canaries["auth_token"]).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_github(app_key: tuple[str, bytes]) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(APP_ID, app_key[1]).start()
    yield fake
    fake.stop()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ndefault_risk: low\nrisk_classes:\n  low:\n    lineage: [source_run_finished]\n"
                    "stages:\n  production: {}\n")  # the stage the service gates: a real gate asks MLflow
    return path


StartService = Callable[..., Running]


def stop_waitress(server: Any, thread: threading.Thread) -> None:
    """Close waitress's sockets from its own loop thread (closing them from here races its select)."""
    # OSError: the loop already closed its sockets (the trigger's among them): nothing left to close
    with contextlib.suppress(OSError):
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(timeout=10)
    server.task_dispatcher.shutdown()


@pytest.fixture
def start_service(
    tmp_path: Path,
    policy_file: Path,
    canaries: dict[str, str],
    app_key: tuple[str, bytes],
    fake_github: FakeGitHub,
) -> Iterator[StartService]:
    started: list[tuple[Any, threading.Thread, ServiceApp]] = []

    def start(evaluator: Any, **settings: str) -> Running:
        environ = {
            "MLGATE_SERVE_POLICY": str(policy_file),
            "MLGATE_SERVE_AZURE_DEVOPS_KEY": canaries["azure_devops_key"],
            "MLGATE_SERVE_AZURE_DEVOPS_ALLOWED_HOSTS": "127.0.0.1",
            "MLGATE_SERVE_GITHUB_APP_ID": str(APP_ID),
            "MLGATE_SERVE_GITHUB_PRIVATE_KEY": app_key[0],
            "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": canaries["webhook_secret"],
            "MLGATE_SERVE_GITHUB_API_URL": fake_github.url,
            "MLGATE_SERVE_EVIDENCE_DIR": str(tmp_path / "evidence"),
            "MLGATE_SERVE_PUBLIC_URL": "https://mlgate.example.org",
            **{f"MLGATE_SERVE_{k.upper()}": v for k, v in settings.items()},
        }
        stream = io.StringIO()
        logs.configure(stream)
        app = create_app(load_config(environ), evaluator=evaluator)
        server = create_server(app, host="127.0.0.1", port=0, threads=8, asyncore_loop_timeout=0.1)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread, app))
        base = f"http://127.0.0.1:{server.effective_port}"
        deadline = time.monotonic() + 10
        while True:  # wait until it answers
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return Running(app, base, stream, canaries)

    yield start
    for server, thread, app in started:
        app.state.wait_idle(30)
        stop_waitress(server, thread)
        app.close()
    for name in (logs.LOGGER_NAME, "waitress"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


# -- Azurite's queue and table services (the azure-storage state back-end) ------------------


@dataclass(frozen=True)
class AzuriteState:
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        from tests.integration.ledger.conftest import DEV_ACCOUNT, DEV_KEY

        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{DEV_ACCOUNT};"
        )

    def names(self) -> dict[str, str]:
        """A queue and a table of their own for one test (MLGATE_SERVE_* keys)."""
        tag = uuid.uuid4().hex[:12]
        return {"state": "azure-storage", "state_queue": f"checks-{tag}", "state_table": f"checks{tag}",
                "state_connection_string": self.connection_string}


def _azurite_binary() -> str:
    import shutil

    from tests.integration.ledger.conftest import REPO

    local = REPO / "node_modules" / ".bin" / "azurite"
    found = str(local) if local.exists() else shutil.which("azurite")
    if not found:
        pytest.fail("azurite not found: run `npm ci` (make setup) to get node_modules/.bin/azurite")
    return found


@pytest.fixture(scope="session")
def azurite_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteState]:
    """Azurite's queue and table services on free loopback ports (in memory), for the whole session."""
    import subprocess

    from tests.integration.ledger.conftest import _free_port, _stop, wait_listening

    queue_port, table_port, blob_port = _free_port(), _free_port(), _free_port()
    proc = subprocess.Popen(
        [_azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(blob_port), "--queueHost", "127.0.0.1",
         "--queuePort", str(queue_port), "--tableHost", "127.0.0.1", "--tablePort", str(table_port),
         "--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--loose", "--disableTelemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        cwd=tmp_path_factory.mktemp("azurite-state"),
    )
    try:
        wait_listening(proc, queue_port, table_port)
        yield AzuriteState(queue_port, table_port)
    finally:
        _stop(proc)
