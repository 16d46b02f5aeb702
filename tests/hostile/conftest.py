"""Fixtures of the hostile proxy suites: the fault proxy (tests/fakes/faultproxy.py) in front of each service.

* MLflow: the session's real ``mlflow server`` (the session fixtures of tests/conftest.py,
  imported here so one server serves the whole hostile directory), with a fresh proxy per test.
* Key Vault and its identity endpoint: the loopback TLS fake of tests/integration/secrets, one per
  session, each behind its own TLS-terminating proxy (certificates from ``trustme``).
* Azure DevOps and GitHub: the spec-driven fakes of tests/fakes/ci.py, one per test, behind a proxy.

Retries keep their code path (bounded count, ``Retry-After`` honoured) but not the exponential
back-off sleeps, so the suite stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.fakes.ci import FakeAzureDevOps, FakeGitHub
from tests.fakes.faultproxy import FaultProxy
from tests.integration.secrets.fake_azure import FakeAzure

AZURE_CLEARED = (
    "GITHUB_ACTIONS", "TF_BUILD", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY",
    "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SYSTEM_ACCESSTOKEN",
    "SYSTEM_OIDCREQUESTURI", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
    "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURESUBSCRIPTION_TENANT_ID", "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "AGENT_TEMPDIRECTORY", "CURL_CA_BUNDLE", "AZURE_AUTHORITY_HOST",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLGATE_LEDGER",
    "MLGATE_PLATFORM", "MLGATE_DEADLINE", "GITHUB_TOKEN",
)


@pytest.fixture(autouse=True)
def _no_backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3's and azure-core's exponential back-off without the sleeping (Retry-After still waits)."""
    from azure.core.pipeline.policies import RetryPolicy
    from urllib3.util.retry import Retry

    monkeypatch.setattr(Retry, "get_backoff_time", lambda self: 0.0)
    monkeypatch.setattr(RetryPolicy, "get_backoff_time", lambda self, settings: 0.0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_CLEARED:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mlflow_proxy(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fresh proxy in front of the session's MLflow server; MLFLOW_TRACKING_URI points at it."""
    with FaultProxy(mlflow_server) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        yield proxy


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(CA bundle, server certificate chain + key) for 127.0.0.1, from trustme."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("proxy-tls")
    bundle, server = folder / "ca.pem", folder / "server.pem"
    ca.cert_pem.write_to_path(str(bundle))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(server))
    return bundle, server


@pytest.fixture(scope="session")
def fake_azure_session(tls_files: tuple[Path, Path]) -> Iterator[FakeAzure]:
    fake = FakeAzure(tls_files[1])
    yield fake
    fake.close()


@pytest.fixture
def azure(fake_azure_session: FakeAzure, tls_files: tuple[Path, Path],
          monkeypatch: pytest.MonkeyPatch) -> FakeAzure:
    """The Key Vault fake, emptied, with this process trusting the test CA."""
    from azure.keyvault.secrets._shared import http_challenge_cache

    fake_azure_session.reset()
    http_challenge_cache.clear()  # process-wide; each test starts like a fresh CLI process
    for name in list(os.environ):
        if name.startswith("MLGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    return fake_azure_session


@pytest.fixture
def vault_proxy(azure: FakeAzure, tls_files: tuple[Path, Path]) -> Iterator[FaultProxy]:
    """A TLS proxy in front of the fake vault."""
    with FaultProxy(azure.vault_url, tls=tls_files[1], upstream_ca=tls_files[0]) as proxy:
        yield proxy


@pytest.fixture
def login_proxy(azure: FakeAzure, tls_files: tuple[Path, Path]) -> Iterator[FaultProxy]:
    """A TLS proxy in front of the fake identity endpoints (managed identity, Entra ID)."""
    with FaultProxy(azure.login_url, tls=tls_files[1], upstream_ca=tls_files[0]) as proxy:
        yield proxy


@pytest.fixture
def ado() -> Iterator[FakeAzureDevOps]:
    fake = FakeAzureDevOps()
    with fake.server:
        yield fake


@pytest.fixture
def ado_proxy(ado: FakeAzureDevOps) -> Iterator[FaultProxy]:
    with FaultProxy(ado.server.url) as proxy:
        yield proxy


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    with fake.server:
        yield fake


@pytest.fixture
def github_proxy(github: FakeGitHub) -> Iterator[FaultProxy]:
    with FaultProxy(github.server.url) as proxy:
        yield proxy


@dataclass(frozen=True)
class Recordable:
    """A fresh sealed model version with passing evidence, ready for `mlgate record`."""

    ref: str
    name: str
    version: str
    ledger: str
    evidence: str
    tmp: Path

    def argv(self, platform: str, *extra: str) -> list[str]:
        return ["record", self.ref, "--platform", platform, "--ledger", self.ledger, "--evidence", self.evidence,
                *extra]


@pytest.fixture(scope="module")
def registered_once(mlflow_server: str) -> tuple[str, str]:
    """(name, version) of one sealed version per module, for the cases that must record nothing."""
    from tests.integration.governed.helpers import register

    model = register(mlflow_server, 1)
    return model.name, model.versions[0]


def _recordable(name: str, version: str, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recordable:
    from tests.integration.governed.helpers import write_evidence

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    evidence = write_evidence(tmp_path / "evidence" / "evidence.json", name, version)
    return Recordable(f"models:/{name}/{version}", name, version, f"file:{tmp_path / 'ledger.jsonl'}",
                      str(evidence), tmp_path)


@pytest.fixture
def recordable(registered_once: tuple[str, str], mlflow_server: str, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Recordable:
    """The module's shared version with evidence and a fresh ledger; MLflow direct (not proxied); cwd a temp
    dir outside any git work tree. Cases using it must record nothing (they compare tags before/after)."""
    return _recordable(*registered_once, mlflow_server, tmp_path, monkeypatch)


@pytest.fixture
def fresh_recordable(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recordable:
    """Like ``recordable`` but a version of its own, for the cases that do record."""
    from tests.integration.governed.helpers import register

    model = register(mlflow_server, 1)
    return _recordable(model.name, model.versions[0], mlflow_server, tmp_path, monkeypatch)


def ci_files(tmp: Path) -> dict[str, str]:
    """The files a CI runner gives a step (outputs, summary, agent temp directory)."""
    for name in ("gh-output", "gh-summary"):
        (tmp / name).write_text("")
    return {"GITHUB_OUTPUT": str(tmp / "gh-output"), "GITHUB_STEP_SUMMARY": str(tmp / "gh-summary"),
            "AGENT_TEMPDIRECTORY": str(tmp)}
