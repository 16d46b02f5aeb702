"""The blob ledger reached with each template's identity: the Azure DevOps task's service connection
(workload identity federation) and the GitHub action's `github-oidc`, against Azurite over TLS with
OAuth on, tokens from the loopback Entra / OIDC endpoints, the real CLI behind the real task shim
and the action's run step.

Before the fix the register and gate templates gave seal and gate no identity for the ledger, and
the task never passed one but to `secrets`: `could not ... not allowed to read the ledger` (exit 3).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgate.ledger import open_ledger
from tests.integration.ledger.conftest import DEV_ACCOUNT, _azurite_blob, _free_port, _stop, wait_listening
from tests.integration.lineage.conftest import Built, build_model
from tests.integration.secrets.conftest import azure, ca_bundle, fake_azure_server  # noqa: F401 (fixtures)
from tests.integration.secrets.fake_azure import FakeAzure
from tests.packaging.test_azure_task import _run_shim, _vso
from tests.packaging.test_github_action import _run_action

pytestmark = pytest.mark.integration


@dataclass
class SecureAzurite:
    port: int

    def ledger(self, blob: str) -> str:
        return f"azure-blob://https://127.0.0.1:{self.port}/{DEV_ACCOUNT}/ledger/{blob}"


def _split_pem(combined: Path, folder: Path) -> tuple[Path, Path]:
    """Azurite takes the certificate chain and the key as two files."""
    import re

    text = combined.read_text()
    found = [(m.group(1), m.group(0)) for m in re.finditer(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", text, re.S)]
    assert len(found) >= 2
    key, cert = folder / "key.pem", folder / "cert.pem"
    key.write_text("\n".join(block for kind, block in found if "PRIVATE KEY" in kind) + "\n")
    cert.write_text("\n".join(block for kind, block in found if kind == "CERTIFICATE") + "\n")
    return cert, key


@pytest.fixture(scope="session")
def secure_azurite(ca_bundle: tuple[Path, Path]) -> Iterator[SecureAzurite]:  # noqa: F811
    workdir = Path(tempfile.mkdtemp(prefix="azurite-tls-"))
    cert, key = _split_pem(ca_bundle[1], workdir)
    port = _free_port()
    proc = subprocess.Popen(
        [_azurite_blob(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--silent", "--loose", "--disableTelemetry", "--oauth", "basic",
         "--cert", str(cert), "--key", str(key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=workdir,
    )
    try:
        wait_listening(proc, port)
        yield SecureAzurite(port)
    finally:
        _stop(proc)


@pytest.fixture
def sealed_model(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Built:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return build_model(mlflow_server, tmp_path, f"ledger-id-{os.urandom(4).hex()}")


def _connection(azure: FakeAzure) -> dict[str, str]:  # noqa: F811
    """What the agent puts in a task's environment for a workload-identity connection and the job."""
    app = azure.add_app(federated={"azure-pipelines"})
    sc = azure.service_connection_id
    return {
        f"ENDPOINT_AUTH_SCHEME_{sc}": "WorkloadIdentityFederation",
        f"ENDPOINT_AUTH_PARAMETER_{sc}_TENANTID": azure.tenant,
        f"ENDPOINT_AUTH_PARAMETER_{sc}_SERVICEPRINCIPALID": app.client_id,
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": azure.system_access_token,
        "SYSTEM_OIDCREQUESTURI": azure.oidc_request_uri,
        "AZURE_AUTHORITY_HOST": azure.login_url,
    }


def _storage_tokens(azure: FakeAzure) -> list[str]:  # noqa: F811
    return [h.form.get("scope", [""])[0] for h in azure.hits if h.path.endswith("/oauth2/v2.0/token")]


def test_task_seals_into_a_blob_ledger_with_the_service_connection(
    azure: FakeAzure, secure_azurite: SecureAzurite, sealed_model: Built, tmp_path: Path,  # noqa: F811
) -> None:
    ledger = secure_azurite.ledger(f"task-{os.urandom(3).hex()}.jsonl")
    inputs = {"command": "seal", "model": f"models:/{sealed_model.name}/{sealed_model.version}", "ledger": ledger}
    variables = _connection(azure)

    # as the shipped templates ran it: no connection on the seal step -> the ledger refuses, exit 3
    proc = _run_shim(tmp_path, inputs, {k: v for k, v in variables.items() if not k.startswith("ENDPOINT_AUTH_S")})
    [complete] = _vso(proc.stdout, "task.complete")
    assert "result=Failed" in complete and "could not evaluate (exit 3)" in complete, proc.stdout + proc.stderr
    assert "ledger" in proc.stdout + proc.stderr

    proc = _run_shim(tmp_path, {**inputs, "azureSubscription": azure.service_connection_id}, variables)
    assert _vso(proc.stdout, "task.complete result=Succeeded"), proc.stdout + proc.stderr
    assert "https://storage.azure.com/.default" in _storage_tokens(azure)
    # registered as a secret (the agent masks it in task-lib's own ##vso lines); mlgate never prints it
    assert f"##vso[task.setsecret]{azure.system_access_token}" in proc.stdout
    printed = [line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("##vso[")]
    assert not [line for line in printed if azure.system_access_token in line]
    # the entry is there, read back with the emulator's key (a second, independent client)
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = _key_connection(secure_azurite)
    try:
        [entry] = [dict(e.data) for e in open_ledger(ledger).entries()]
    finally:
        del os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    assert entry["event"] == "sealed" and entry["model"] == f"models:/{sealed_model.name}/{sealed_model.version}"


def test_action_seals_and_verifies_a_blob_ledger_with_github_oidc(
    azure: FakeAzure, secure_azurite: SecureAzurite, sealed_model: Built, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = azure.add_app(federated={"github"})
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", azure.github_token_url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", azure.github_request_token)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", azure.login_url)
    ledger = secure_azurite.ledger(f"action-{os.urandom(3).hex()}.jsonl")
    ref = f"models:/{sealed_model.name}/{sealed_model.version}"
    identity = {"identity": "github-oidc", "client-id": app.client_id, "tenant-id": azure.tenant}

    code, outputs, log = _run_action({"command": "seal", "model": ref, "ledger": ledger}, tmp_path)
    assert (code, outputs["result"]) == (3, "could-not-evaluate"), log  # no identity: what the templates did
    assert "not allowed to" in log and "ledger" in log

    code, outputs, log = _run_action({"command": "seal", "model": ref, "ledger": ledger, **identity}, tmp_path)
    assert code == 0, log
    code, outputs, log = _run_action(
        {"command": "audit verify", "ledger": ledger, "no-anchors": "true", **identity}, tmp_path)
    assert code == 0, log
    assert "1 entr" in log
    assert any(h.path.endswith("/idtoken") for h in azure.hits)
    assert azure.github_request_token not in log


def _key_connection(azurite: SecureAzurite) -> str:
    from tests.integration.ledger.conftest import DEV_KEY

    return (f"DefaultEndpointsProtocol=https;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=https://127.0.0.1:{azurite.port}/{DEV_ACCOUNT};")
