"""Which Azure identity reads and writes Azure Storage (shared by the blob ledger and the blob artifact store)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def identity_credential(env: Mapping[str, str], *, authority: str | None = None) -> Any:
    """The azure-identity credential for Azure Storage.

    With ``MLGATE_IDENTITY`` set (``github-oidc``, ``azure-pipelines``, ``managed``, ``environment``
    or ``auto``, plus ``MLGATE_CLIENT_ID``/``MLGATE_TENANT_ID``/``MLGATE_SERVICE_CONNECTION_ID``), the
    same credential `mlgate secrets` uses: GitHub-hosted runners reach the blob through their OIDC
    federation. Otherwise azure-identity's DefaultAzureCredential (managed identity on a self-hosted
    agent, environment variables, a developer's login; never an interactive browser).
    ``authority``: the sign-in host of a sovereign cloud, unless ``AZURE_AUTHORITY_HOST`` names one.
    """
    identity = (env.get("MLGATE_IDENTITY") or "").strip()
    if authority and not (env.get("AZURE_AUTHORITY_HOST") or "").strip():
        env = {**env, "AZURE_AUTHORITY_HOST": authority}
    if not identity:
        from azure.identity import DefaultAzureCredential

        host = (env.get("AZURE_AUTHORITY_HOST") or "").strip()
        if host:
            return DefaultAzureCredential(authority=host, exclude_interactive_browser_credential=True)
        return DefaultAzureCredential(exclude_interactive_browser_credential=True)
    from mlgate import redact
    from mlgate.secrets.credentials import IdentityOptions, choose

    options = IdentityOptions(
        identity=identity,
        client_id=env.get("MLGATE_CLIENT_ID") or None,
        tenant_id=env.get("MLGATE_TENANT_ID") or None,
        service_connection_id=env.get("MLGATE_SERVICE_CONNECTION_ID") or None,
    )

    def forget(token: str) -> None:  # every ID token fetched for the exchange is redacted from output
        redact.register(token)

    return choose(options, env, on_id_token=forget).credential


def identity_name(env: Mapping[str, str]) -> str:
    """How :func:`identity_credential` authenticates, as printed (never a secret)."""
    identity = (env.get("MLGATE_IDENTITY") or "").strip()
    return f"identity {identity} (MLGATE_IDENTITY)" if identity else "DefaultAzureCredential"


def redact_connection_string(connection: str) -> None:
    """Register the key and SAS parts of a storage connection string as secrets (never printed)."""
    from mlgate import redact

    for part in connection.split(";"):
        if part.lower().startswith(("accountkey=", "sharedaccesssignature=")):
            redact.register(part.split("=", 1)[1])
