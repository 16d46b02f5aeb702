"""Service secrets fetched from Key Vault through mlgate's secrets layer (managed identity), never logged.

Uses the secrets suite's TLS fake of Key Vault and the managed-identity endpoint.
"""

from __future__ import annotations

import io
import logging
import uuid
from pathlib import Path

import pytest

from mlgate import redact
from mlgate.errors import EvaluationError, UsageError
from mlgate.service import logs
from mlgate.service.app import create_app
from mlgate.service.config import load_config
from tests.integration.secrets.conftest import azure, ca_bundle, fake_azure_server  # noqa: F401  (fixtures)
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import apply, managed_env

pytestmark = pytest.mark.integration


def test_secrets_come_from_key_vault_with_the_managed_identity(
    azure: FakeAzure,  # noqa: F811
    policy_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    app_key: tuple[str, bytes],
) -> None:
    apply(monkeypatch, managed_env(azure))  # azure-identity reads the process environment
    canary_key = f"kv-ado-key-{uuid.uuid4().hex}"
    canary_hook = f"kv-webhook-{uuid.uuid4().hex}"
    pem = app_key[0]  # a key that signs: the service checks it at start-up
    azure.add_secret("mlgate-ado-key", canary_key)
    azure.add_secret("mlgate-webhook", canary_hook)
    azure.add_secret("mlgate-app-key", pem)
    environ = {
        **managed_env(azure),
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_KEY_VAULT": azure.vault_url,
        "MLGATE_SERVE_AZURE_DEVOPS_KEY_SECRET_NAME": "mlgate-ado-key",
        "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET_SECRET_NAME": "mlgate-webhook",
        "MLGATE_SERVE_GITHUB_PRIVATE_KEY_SECRET_NAME": "mlgate-app-key",
        "MLGATE_SERVE_GITHUB_APP_ID": "7",
    }

    config = load_config(environ)

    assert config.azure_devops_key == canary_key
    assert config.github_webhook_secret == canary_hook
    assert config.github_private_key == pem
    assert redact.redact(f"{canary_key} {canary_hook} {pem.splitlines()[1]}") == "*** *** ***"
    stream = io.StringIO()
    logs.configure(stream)
    try:
        app = create_app(config, evaluator=lambda *a, **k: None)
        app.close()
    finally:
        for name in (logs.LOGGER_NAME, "waitress"):
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True
    text = stream.getvalue()
    assert '"event": "service_configured"' in text
    for value in (canary_key, canary_hook, *pem.splitlines()[1:-1]):
        assert value not in text


def test_a_variable_wins_over_key_vault_and_key_vault_errors_stop_the_start(
    azure: FakeAzure,  # noqa: F811
    policy_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply(monkeypatch, managed_env(azure))  # azure-identity reads the process environment
    base = {
        **managed_env(azure),
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_KEY_VAULT": azure.vault_url,
        "MLGATE_SERVE_AZURE_DEVOPS_KEY_SECRET_NAME": "absent-secret",
    }
    assert load_config({**base, "MLGATE_SERVE_AZURE_DEVOPS_KEY": "from-env"}).azure_devops_key == "from-env"
    assert azure.count("vault") == 0  # nothing fetched when the variable is there
    with pytest.raises(EvaluationError) as caught:
        load_config(base)
    assert "absent-secret" in caught.value.message
    without_vault = {k: v for k, v in base.items() if k != "MLGATE_SERVE_KEY_VAULT"}
    with pytest.raises(UsageError, match="without a Key Vault"):
        load_config(without_vault)
