"""Fixtures: one TLS fake of Key Vault + identity endpoints for the session, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.integration.secrets.fake_azure import FakeAzure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1", "fakevault.vault.azure.net", "evil.example")
    folder = tmp_path_factory.mktemp("tls")
    bundle = folder / "ca.pem"
    server = folder / "server.pem"
    ca.cert_pem.write_to_path(str(bundle))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server))
    yield bundle, server


@pytest.fixture(scope="session")
def fake_azure_server(ca_bundle: tuple[Path, Path]) -> Iterator[FakeAzure]:
    fake = FakeAzure(ca_bundle[1])
    yield fake
    fake.close()


CLEARED = (
    "GITHUB_ACTIONS", "TF_BUILD", "GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY",
    "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SYSTEM_ACCESSTOKEN",
    "SYSTEM_OIDCREQUESTURI", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
    "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURESUBSCRIPTION_TENANT_ID", "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "AGENT_TEMPDIRECTORY", "CURL_CA_BUNDLE", "AZURE_AUTHORITY_HOST",
)


@pytest.fixture
def azure(fake_azure_server: FakeAzure, ca_bundle: tuple[Path, Path],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    """The fake, emptied, with this process trusting its CA and no Azure/CI variables leaking in."""
    from azure.keyvault.secrets._shared import http_challenge_cache

    fake_azure_server.reset()
    http_challenge_cache.clear()  # process-wide; each test starts like a fresh CLI process
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("MLGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle[0]))
    yield fake_azure_server
