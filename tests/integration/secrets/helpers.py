"""Environment builders for each identity and CI, against the fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.secrets.fake_azure import FakeAzure


def managed_env(azure: FakeAzure) -> dict[str, str]:
    return {"IDENTITY_ENDPOINT": azure.identity_endpoint, "IDENTITY_HEADER": azure.identity_header}


def github_oidc_env(azure: FakeAzure) -> dict[str, str]:
    app = azure.add_app(federated={"github"})
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": azure.github_token_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": azure.github_request_token,
        "AZURE_TENANT_ID": azure.tenant,
        "AZURE_CLIENT_ID": app.client_id,
        "AZURE_AUTHORITY_HOST": azure.login_url,
    }


def pipelines_env(azure: FakeAzure) -> dict[str, str]:
    app = azure.add_app(federated={"azure-pipelines"})
    return {
        "SYSTEM_OIDCREQUESTURI": azure.oidc_request_uri,
        "SYSTEM_ACCESSTOKEN": azure.system_access_token,
        "AZURESUBSCRIPTION_TENANT_ID": azure.tenant,
        "AZURESUBSCRIPTION_CLIENT_ID": app.client_id,
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": azure.service_connection_id,
        "AZURE_AUTHORITY_HOST": azure.login_url,
    }


def environment_env(azure: FakeAzure, secret: str) -> dict[str, str]:
    app = azure.add_app(client_secret=secret)
    return {"AZURE_TENANT_ID": azure.tenant, "AZURE_CLIENT_ID": app.client_id, "AZURE_CLIENT_SECRET": secret,
            "AZURE_AUTHORITY_HOST": azure.login_url}


def github_runner(tmp_path: Path) -> dict[str, str]:
    env = {"GITHUB_ACTIONS": "true"}
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"):
        path = tmp_path / f"runner-{var.lower()}"
        path.write_text("")
        env[var] = str(path)
    return env


def azure_agent(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "agent-temp"
    temp.mkdir(exist_ok=True)
    return {"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(temp)}


def apply(monkeypatch: pytest.MonkeyPatch, *envs: dict[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for env in envs:
        merged.update(env)
    for key, value in merged.items():
        monkeypatch.setenv(key, value)
    return merged


def parse_file_command(text: str) -> dict[str, str]:
    """NAME<<DELIM heredocs, parsed the way the runner does."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name, _, delim = lines[i].partition("<<")
        i += 1
        value: list[str] = []
        while lines[i] != delim:
            value.append(lines[i])
            i += 1
        result[name] = "\n".join(value)
        i += 1
    return result
