"""Which identity writes the blob ledger: the pipeline's federated identity when MLGATE_IDENTITY says so."""

from __future__ import annotations

import pytest

from mlgate import redact
from mlgate.secrets.credentials import CredentialError
from mlgate.stores.azure_auth import identity_credential as _credential

GITHUB_ENV = {
    "MLGATE_IDENTITY": "github-oidc",
    "MLGATE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    "MLGATE_TENANT_ID": "00000000-0000-0000-0000-000000000002",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://runner.invalid/token?x=1",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "CANARY-RUNTIME-TOKEN-5c1",
}


def test_github_oidc_identity_writes_the_ledger_without_a_stored_secret() -> None:
    from azure.identity import ClientAssertionCredential

    assert isinstance(_credential(GITHUB_ENV), ClientAssertionCredential)
    assert redact.redact("token CANARY-RUNTIME-TOKEN-5c1") == "token ***"


def test_without_an_identity_the_default_chain_is_used() -> None:
    assert type(_credential({})).__name__ == "DefaultAzureCredential"


def test_an_identity_that_cannot_be_built_is_could_not_evaluate() -> None:
    with pytest.raises(CredentialError) as info:
        _credential({"MLGATE_IDENTITY": "github-oidc"})  # no runner token endpoint, no client id
    assert info.value.exit_code == 3
