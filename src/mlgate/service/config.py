"""Configuration of `mlgate serve`: environment variables, or a YAML/JSON file, or both.

Non-secret settings come from ``MLGATE_SERVE_<KEY>`` variables or from a file (``--config``;
environment variables win). Secret settings (the Azure DevOps shared key, the GitHub App
private key and webhook secret) are never accepted in the file itself: each comes from an
environment variable (``MLGATE_SERVE_AZURE_DEVOPS_KEY``...), or from a file named by
``MLGATE_SERVE_<KEY>_FILE`` / ``<key>_file`` in the config file (a mounted container secret).
Or from Azure Key Vault through mlgate's secrets layer (:mod:`mlgate.secrets`): set
``key_vault`` and ``<key>_secret_name`` and the service fetches them at start-up with its own
identity (managed identity by default; ``key_vault_identity``/``key_vault_client_id`` as for
`mlgate secrets`). On App Service, Container Apps and Functions an app setting that is a Key
Vault reference (``@Microsoft.KeyVault(SecretUri=...)``) also works: the platform resolves it
into the environment variable. Every secret value is registered with :mod:`mlgate.redact` as
soon as it is read, so no log line can carry it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlgate import redact
from mlgate.errors import InvalidInputError, UsageError
from mlgate.refs import ModelRef

ENV_PREFIX = "MLGATE_SERVE_"

SECRET_KEYS = ("azure_devops_key", "github_private_key", "github_webhook_secret")

# key -> (type, default). Types: str, int, float, list (comma separated in env), mapping.
PLAIN_KEYS: dict[str, tuple[type, Any]] = {
    "policy": (str, None),
    "mlflow_tracking_uri": (str, None),
    "stage": (str, "production"),
    "public_url": (str, None),
    "evidence_dir": (str, None),
    "github_app_id": (str, None),
    "github_api_url": (str, "https://api.github.com"),
    "environment_models": (dict, {}),
    "azure_devops_allowed_hosts": (list, ["dev.azure.com", "*.visualstudio.com"]),
    "max_body_bytes": (int, 1024 * 1024),
    "workers": (int, 4),
    "max_pending": (int, 1000),
    "replay_ttl_seconds": (float, 24 * 3600.0),
    "replay_max_entries": (int, 100_000),
    "callback_timeout_seconds": (float, 30.0),
    "key_vault": (str, None),
    "key_vault_identity": (str, "auto"),
    "key_vault_client_id": (str, None),
    **{f"{key}_secret_name": (str, None) for key in SECRET_KEYS},
}

# GitHub documents 65,536 characters as the limit of a deployment review comment's body;
# the OpenAPI description gives no maxLength, so we keep below that.
GITHUB_COMMENT_LIMIT = 65_536


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the service needs; secrets are plain strings already registered for redaction."""

    policy: Path
    stage: str = "production"
    mlflow_tracking_uri: str | None = None
    public_url: str | None = None
    evidence_dir: Path | None = None
    azure_devops_key: str | None = None
    azure_devops_allowed_hosts: tuple[str, ...] = ("dev.azure.com", "*.visualstudio.com")
    github_app_id: str | None = None
    github_private_key: str | None = None
    github_webhook_secret: str | None = None
    github_api_url: str = "https://api.github.com"
    environment_models: Mapping[str, ModelRef] = field(default_factory=dict)
    max_body_bytes: int = 1024 * 1024
    workers: int = 4
    max_pending: int = 1000
    replay_ttl_seconds: float = 24 * 3600.0
    replay_max_entries: int = 100_000
    callback_timeout_seconds: float = 30.0

    @property
    def azure_devops_enabled(self) -> bool:
        return self.azure_devops_key is not None

    @property
    def github_enabled(self) -> bool:
        return self.github_webhook_secret is not None

    def describe(self) -> dict[str, Any]:
        """A loggable view: names what is configured, never a secret value."""
        return {
            "policy": str(self.policy),
            "stage": self.stage,
            "mlflow_tracking_uri": _without_userinfo(self.mlflow_tracking_uri),
            "public_url": _without_userinfo(self.public_url),
            "azure_devops_check": self.azure_devops_enabled,
            "azure_devops_allowed_hosts": list(self.azure_devops_allowed_hosts),
            "github_protection_rule": self.github_enabled,
            "github_api_url": self.github_api_url,
            "environment_models": sorted(self.environment_models),
            "workers": self.workers,
            "max_body_bytes": self.max_body_bytes,
        }


def _without_userinfo(url: str | None) -> str | None:
    """A URL fit for a log line: any ``user:password@`` part is dropped."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def _load_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read the service configuration {str(path)!r}: {exc.strerror}",
            hint="check the --config path (or MLGATE_CONFIG) and the file's permissions",
        ) from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InvalidInputError(
            f"the service configuration {str(path)!r} is not valid YAML/JSON: {exc}",
            hint="fix the syntax at the position shown",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"the service configuration {str(path)!r} must be a mapping of keys to values",
            hint="write `policy: release-policy.yaml` and the other keys at the top level",
        )
    inline = sorted(k for k in data if k in SECRET_KEYS)
    if inline:
        raise InvalidInputError(
            f"the service configuration holds secret value(s) inline: {', '.join(inline)}",
            hint="remove them from the file; give them as MLGATE_SERVE_<KEY> environment variables "
            "or as `<key>_file:` paths to mounted secret files",
        )
    allowed = set(PLAIN_KEYS) | {f"{k}_file" for k in SECRET_KEYS}
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown key(s) in the service configuration {str(path)!r}: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(allowed))}",
        )
    return data


def _coerce(key: str, kind: type, value: Any, source: str) -> Any:
    where = f"{key} (from {source})"
    try:
        if kind is str:
            if not isinstance(value, (str, int)):
                raise TypeError
            return str(value)
        if kind is int:
            number = int(value)
            if number < 1:
                raise ValueError
            return number
        if kind is float:
            number_f = float(value)
            if number_f <= 0:
                raise ValueError
            return number_f
        if kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise TypeError
        if kind is dict:
            if isinstance(value, str):
                # env form: "prod=models:/fraud/3,staging=fraud@candidate"
                pairs = [p.strip() for p in value.split(",") if p.strip()]
                if not all("=" in p for p in pairs):
                    raise ValueError
                return dict(p.split("=", 1) for p in pairs)
            if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                return {str(k): v for k, v in value.items()}
            raise TypeError
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"bad value for {where}: expected {_kind_name(kind)}",
            hint="fix that setting; see `mlgate serve --help` for every key",
        ) from None
    raise AssertionError(kind)  # pragma: no cover


def _kind_name(kind: type) -> str:
    return {
        str: "a string",
        int: "a positive integer",
        float: "a positive number",
        list: "a list (comma-separated in an environment variable)",
        dict: "a mapping (ENV=REF,ENV=REF in an environment variable)",
    }[kind]


def _read_secret(key: str, environ: Mapping[str, str], file_data: Mapping[str, Any], base: Path) -> str | None:
    env_name = ENV_PREFIX + key.upper()
    value = environ.get(env_name)
    source = env_name
    if not value:
        path_text = environ.get(env_name + "_FILE") or file_data.get(f"{key}_file")
        if not path_text:
            return None
        path = Path(str(path_text))
        if not path.is_absolute():
            path = base / path
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot read the secret file for {key} ({str(path)!r}): {exc.strerror}",
                hint=f"mount the secret at that path, or set {env_name}",
            ) from None
        source = f"{key}_file"
        if key != "github_private_key":
            value = value.strip()
    if not value.strip():
        raise UsageError(f"{key} is empty (from {source})", hint=f"give a value, or unset {env_name}")
    redact.register(value)
    return value


def fetch_from_key_vault(
    vault_text: str,
    names: list[str],
    *,
    identity: str,
    client_id: str | None,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """Fetch ``names`` through mlgate's secrets layer (the service's managed identity by default).

    Each value is registered with :mod:`mlgate.redact` the moment it arrives. Any failure stops
    the start-up (exit 3) with the secrets layer's message: which identity, which role is missing.
    """
    from mlgate.secrets.credentials import IdentityOptions, ObservedCredential, choose
    from mlgate.secrets.keyvault import KeyVaultSecrets, parse_vault

    def remember(_name: str, value: str) -> None:
        redact.register(value)

    vault = parse_vault(vault_text)
    choice = choose(IdentityOptions(identity=identity, client_id=client_id), environ)
    credential = ObservedCredential(choice.credential)
    try:
        with KeyVaultSecrets(vault, credential, identity=choice.identity) as client:
            found, failures = client.fetch(names, on_value=remember)
    finally:
        credential.close()
    if failures:
        raise failures[0].error
    return {secret.name: secret.value for secret in found}


def load_config(environ: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> ServiceConfig:
    """Build the configuration from ``environ`` (default: ``os.environ``) and an optional file."""
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    file_data: dict[str, Any] = {}
    base = Path.cwd()
    if path:
        file_path = Path(path)
        file_data = _load_file(file_path)
        base = file_path.resolve().parent

    values: dict[str, Any] = {}
    for key, (kind, default) in PLAIN_KEYS.items():
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value not in (None, ""):
            values[key] = _coerce(key, kind, env_value, ENV_PREFIX + key.upper())
        elif key in file_data and file_data[key] is not None:
            values[key] = _coerce(key, kind, file_data[key], "the configuration file")
        else:
            values[key] = default

    if not values["policy"]:
        raise UsageError(
            "the service needs a release policy",
            hint="set MLGATE_SERVE_POLICY (or `policy:` in the configuration file) to the policy YAML",
        )
    policy = Path(values["policy"])
    if not policy.is_absolute():
        policy = base / policy
    if not policy.is_file():
        raise UsageError(
            f"the release policy {str(policy)!r} does not exist",
            hint="point MLGATE_SERVE_POLICY / `policy:` at the policy YAML the gate should apply",
        )

    secrets = {key: _read_secret(key, env, file_data, base) for key in SECRET_KEYS}
    from_vault = {
        key: values[f"{key}_secret_name"]
        for key in SECRET_KEYS
        if secrets[key] is None and values[f"{key}_secret_name"]
    }
    if from_vault:
        if not values["key_vault"]:
            raise UsageError(
                f"{', '.join(k + '_secret_name' for k in from_vault)} given without a Key Vault",
                hint="set MLGATE_SERVE_KEY_VAULT (or `key_vault:`) to the vault's name or URL",
            )
        fetched = fetch_from_key_vault(
            values["key_vault"], list(from_vault.values()),
            identity=values["key_vault_identity"], client_id=values["key_vault_client_id"], environ=env,
        )
        for key, name in from_vault.items():
            value = fetched[name]
            secrets[key] = value if key == "github_private_key" else value.strip()
    if secrets["azure_devops_key"] is None and secrets["github_webhook_secret"] is None:
        raise UsageError(
            "neither the Azure DevOps check nor the GitHub protection rule is configured",
            hint="set MLGATE_SERVE_AZURE_DEVOPS_KEY and/or MLGATE_SERVE_GITHUB_WEBHOOK_SECRET "
            "(with MLGATE_SERVE_GITHUB_APP_ID and MLGATE_SERVE_GITHUB_PRIVATE_KEY)",
        )
    if secrets["github_webhook_secret"] is not None and (
        not values["github_app_id"] or secrets["github_private_key"] is None
    ):
        raise UsageError(
            "the GitHub protection rule needs the App id and private key as well as the webhook secret",
            hint="set MLGATE_SERVE_GITHUB_APP_ID and MLGATE_SERVE_GITHUB_PRIVATE_KEY (or _FILE)",
        )

    models: dict[str, ModelRef] = {}
    for environment, ref_text in values["environment_models"].items():
        try:
            models[environment] = ModelRef.parse(ref_text)
        except UsageError as exc:
            raise InvalidInputError(f"environment_models[{environment!r}]: {exc.message}", hint=exc.hint) from None

    for key in ("public_url", "github_api_url", "mlflow_tracking_uri"):
        url = values[key]
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise InvalidInputError(f"{key} must be an http(s) URL, got {url!r}")

    return ServiceConfig(
        policy=policy,
        stage=values["stage"],
        mlflow_tracking_uri=values["mlflow_tracking_uri"],
        public_url=values["public_url"].rstrip("/") if values["public_url"] else None,
        evidence_dir=Path(values["evidence_dir"]) if values["evidence_dir"] else None,
        azure_devops_key=secrets["azure_devops_key"],
        azure_devops_allowed_hosts=tuple(h.lower() for h in values["azure_devops_allowed_hosts"]),
        github_app_id=values["github_app_id"],
        github_private_key=secrets["github_private_key"],
        github_webhook_secret=secrets["github_webhook_secret"],
        github_api_url=values["github_api_url"].rstrip("/"),
        environment_models=models,
        max_body_bytes=values["max_body_bytes"],
        workers=values["workers"],
        max_pending=values["max_pending"],
        replay_ttl_seconds=values["replay_ttl_seconds"],
        replay_max_entries=values["replay_max_entries"],
        callback_timeout_seconds=values["callback_timeout_seconds"],
    )
