from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgate import redact
from mlgate.errors import InvalidInputError, UsageError
from mlgate.refs import ModelRef
from mlgate.service.config import load_config


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")
    return path


def test_environment_only(policy: Path) -> None:
    config = load_config(
        {
            "MLGATE_SERVE_POLICY": str(policy),
            "MLGATE_SERVE_AZURE_DEVOPS_KEY": "key-canary-1",
            "MLGATE_SERVE_WORKERS": "3",
            "MLGATE_SERVE_ENVIRONMENT_MODELS": "prod=models:/fraud@champion, staging=fraud/2",
        }
    )
    assert config.policy == policy
    assert config.azure_devops_key == "key-canary-1"
    assert config.workers == 3
    assert config.environment_models == {
        "prod": ModelRef("fraud", alias="champion"),
        "staging": ModelRef("fraud", version="2"),
    }
    assert not config.github_enabled
    assert redact.redact("x key-canary-1 y") == "x *** y"
    assert "key-canary-1" not in str(config.describe())


def test_file_with_secret_files_and_env_override(tmp_path: Path, policy: Path) -> None:
    (tmp_path / "webhook").write_text("webhook-canary\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nline-canary\n-----END PRIVATE KEY-----\n")
    config_file = tmp_path / "serve.yaml"
    config_file.write_text(
        "policy: policy.yaml\n"
        "github_app_id: 123\n"
        "github_private_key_file: key.pem\n"
        "github_webhook_secret_file: webhook\n"
        "workers: 2\n"
        "environment_models:\n  production: models:/churn/7\n"
    )
    config = load_config({"MLGATE_SERVE_WORKERS": "6"}, config_file)
    assert config.policy == policy
    assert config.github_app_id == "123"
    assert config.github_webhook_secret == "webhook-canary"
    assert config.github_private_key is not None and "line-canary" in config.github_private_key
    assert config.workers == 6
    assert config.environment_models["production"] == ModelRef("churn", version="7")
    assert redact.redact("line-canary") == "***"  # each line of a multi-line secret


def test_inline_secrets_in_the_file_are_refused(tmp_path: Path, policy: Path) -> None:
    config_file = tmp_path / "serve.yaml"
    config_file.write_text(f"policy: {policy}\nazure_devops_key: inline-canary\n")
    with pytest.raises(InvalidInputError) as caught:
        load_config({}, config_file)
    assert "azure_devops_key" in caught.value.message
    assert "inline-canary" not in caught.value.diagnostics()


@pytest.mark.parametrize(
    ("environ", "text"),
    [
        ({}, "needs a release policy"),
        ({"MLGATE_SERVE_POLICY": "missing.yaml", "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k"}, "does not exist"),
        (
            {"MLGATE_SERVE_POLICY": "{policy}"},
            "neither the Azure DevOps check nor the GitHub protection rule",
        ),
        (
            {"MLGATE_SERVE_POLICY": "{policy}", "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": "s"},
            "App id and private key",
        ),
        (
            {
                "MLGATE_SERVE_POLICY": "{policy}",
                "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k",
                "MLGATE_SERVE_WORKERS": "zero",
            },
            "field workers: expected an integer",
        ),
        (
            {
                "MLGATE_SERVE_POLICY": "{policy}",
                "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k",
                "MLGATE_SERVE_ENVIRONMENT_MODELS": "prod=not a ref",
            },
            "environment_models['prod']",
        ),
        (
            {
                "MLGATE_SERVE_POLICY": "{policy}",
                "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k",
                "MLGATE_SERVE_AZURE_DEVOPS_KEY_FILE": "x",
            },
            None,
        ),
        (
            {"MLGATE_SERVE_POLICY": "{policy}", "MLGATE_SERVE_AZURE_DEVOPS_KEY_FILE": "/nonexistent/key"},
            "the secret file for azure_devops_key /nonexistent/key: no such file",
        ),
    ],
)
def test_configuration_errors_name_the_setting(policy: Path, environ: dict[str, str], text: str | None) -> None:
    env = {k: v.replace("{policy}", str(policy)) for k, v in environ.items()}
    if text is None:
        assert load_config(env).azure_devops_key == "k"  # the variable wins over the file
        return
    with pytest.raises(UsageError) as caught:
        load_config(env)
    assert text in caught.value.message


def test_unknown_keys_and_bad_syntax_in_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("polcy: x\n")
    with pytest.raises(InvalidInputError, match="unknown key"):
        load_config({}, bad)
    bad.write_text("policy: [unclosed\n")
    with pytest.raises(InvalidInputError, match="not valid YAML/JSON"):
        load_config({}, bad)


def test_described_urls_carry_no_credentials(policy: Path) -> None:
    config = load_config(
        {
            "MLGATE_SERVE_POLICY": str(policy),
            "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k",
            "MLGATE_SERVE_MLFLOW_TRACKING_URI": "https://user:pw-canary@mlflow.example.org:5000/path",
        }
    )
    described = str(config.describe())
    assert "pw-canary" not in described and "user" not in described
    assert "https://mlflow.example.org:5000/path" in described


@pytest.mark.parametrize(
    ("setting", "value", "text"),
    [
        ("WORKERS", "0", "field workers: expected a positive integer of at most 256, got 0"),
        ("WORKERS", "9" * 50, "field workers: expected an integer"),
        ("MAX_BODY_BYTES", str(1 << 40), "field max_body_bytes: expected a positive integer of at most"),
        ("REPLAY_TTL_SECONDS", "inf", "field replay_ttl_seconds: expected a finite number"),
        ("CALLBACK_TIMEOUT_SECONDS", "-1", "field callback_timeout_seconds: expected a positive number"),
        ("GITHUB_API_URL", "https://u:pw@api.github.com", "github_api_url must be a plain URL"),
        ("AZURE_DEVOPS_ORGANIZATIONS", "https://dev.azure.com/a?x=1", "azure_devops_organizations"),
    ],
)
def test_out_of_range_values_are_exit_2_naming_the_key(policy: Path, setting: str, value: str, text: str) -> None:
    env = {"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_AZURE_DEVOPS_KEY": "k", f"MLGATE_SERVE_{setting}": value}
    with pytest.raises(InvalidInputError) as caught:
        load_config(env)
    assert text in caught.value.message
    assert caught.value.exit_code == 2
    assert "pw" not in caught.value.diagnostics()


def test_file_values_are_typed(tmp_path: Path, policy: Path) -> None:
    config_file = tmp_path / "serve.json"
    config_file.write_text(json.dumps({"policy": str(policy), "workers": "3", "azure_devops_allowed_hosts": ["a"],
                                       "azure_devops_organizations": ["https://dev.azure.com/Fabrikam/"]}))
    config = load_config({"MLGATE_SERVE_AZURE_DEVOPS_KEY": "k"}, config_file)
    assert config.workers == 3 and config.azure_devops_allowed_hosts == ("a",)
    assert config.azure_devops_organizations == ("https://dev.azure.com/fabrikam",)
    config_file.write_text(json.dumps({"policy": str(policy), "environment_models": {"prod": 3}}))
    with pytest.raises(InvalidInputError, match=r"field environment_models\.prod: expected a string"):
        load_config({"MLGATE_SERVE_AZURE_DEVOPS_KEY": "k"}, config_file)
