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

``state`` chooses where the replay memory and the pending evaluations live: ``in-process``
(one process) or ``azure-storage`` (a queue and a table shared by replicas; reached with the
identity ``state_identity`` or the secret ``state_connection_string``); see
:mod:`mlgate.service.state`. During a rotation ``azure_devops_key_previous`` and
``github_webhook_secret_previous`` are accepted beside the current values.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlgate import redact
from mlgate.errors import InvalidInputError, UsageError
from mlgate.files import read_text
from mlgate.jsonvalue import MAX_DEPTH, Fields, depth, parse_json
from mlgate.refs import ModelRef
from mlgate.urls import safe_url

ENV_PREFIX = "MLGATE_SERVE_"
CONFIG_LIMIT = 1 << 20  # a service configuration is a few hundred bytes
SECRET_FILE_LIMIT = 64 << 10  # a PEM key is about 2 KiB

SECRET_KEYS = (
    "azure_devops_key",
    "azure_devops_key_previous",  # accepted too while the key is rotated
    "github_private_key",
    "github_webhook_secret",
    "github_webhook_secret_previous",
    "state_connection_string",  # an Azure Storage connection string (holds the account key or a SAS)
)
STATES = ("in-process", "azure-storage")

TEXT, COUNT, SECONDS, LIST, MAPPING = "text", "count", "seconds", "list", "mapping"
_EXPECTED = {
    TEXT: "a string",
    COUNT: "a positive integer",
    SECONDS: "a positive number of seconds",
    LIST: "a list of strings (comma-separated in an environment variable)",
    MAPPING: "a mapping of strings (ENV=REF,ENV=REF in an environment variable)",
}


@dataclass(frozen=True)
class Setting:
    """One plain (non-secret) key: its kind, its default and, for numbers, its largest value."""

    kind: str
    default: object = None
    most: float = 0.0


SETTINGS: dict[str, Setting] = {
    "policy": Setting(TEXT),
    "mlflow_tracking_uri": Setting(TEXT),
    "stage": Setting(TEXT, "production"),
    "public_url": Setting(TEXT),
    "evidence_dir": Setting(TEXT),
    "github_app_id": Setting(TEXT),
    "github_api_url": Setting(TEXT, "https://api.github.com"),
    "environment_models": Setting(MAPPING, {}),
    "azure_devops_allowed_hosts": Setting(LIST, ["dev.azure.com", "*.visualstudio.com"]),
    "azure_devops_organizations": Setting(LIST, []),
    "max_body_bytes": Setting(COUNT, 1024 * 1024, 64 << 20),
    "workers": Setting(COUNT, 4, 256),
    "max_pending": Setting(COUNT, 1000, 1_000_000),
    "replay_ttl_seconds": Setting(SECONDS, 24 * 3600.0, 30 * 24 * 3600.0),
    "replay_max_entries": Setting(COUNT, 100_000, 10_000_000),
    "callback_timeout_seconds": Setting(SECONDS, 30.0, 600.0),
    "state": Setting(TEXT, "in-process"),
    "state_storage_account": Setting(TEXT),
    "state_queue_endpoint": Setting(TEXT),
    "state_table_endpoint": Setting(TEXT),
    "state_queue": Setting(TEXT, "mlgate-checks"),
    "state_table": Setting(TEXT, "mlgatechecks"),
    "state_identity": Setting(TEXT, "auto"),
    "state_client_id": Setting(TEXT),
    "visibility_timeout_seconds": Setting(SECONDS, 300.0, 7 * 24 * 3600.0),
    "max_attempts": Setting(COUNT, 5, 100),
    "poll_seconds": Setting(SECONDS, 2.0, 60.0),
    "key_vault": Setting(TEXT),
    "key_vault_identity": Setting(TEXT, "auto"),
    "key_vault_client_id": Setting(TEXT),
    **{f"{key}_secret_name": Setting(TEXT) for key in SECRET_KEYS},
}

@dataclass(frozen=True)
class Values:
    """The plain settings once read (each already checked against its :class:`Setting`), typed on the way out."""

    data: Mapping[str, object]

    def text(self, key: str) -> str | None:
        value = self.data[key]
        if value is None or isinstance(value, str):
            return value
        raise TypeError(key)  # pragma: no cover (the reads above give a string or None)

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise TypeError(key)  # pragma: no cover (a default exists)
        return value

    def count(self, key: str) -> int:
        value = self.data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(key)  # pragma: no cover

    def seconds(self, key: str) -> float:
        value = self.data[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(key)  # pragma: no cover

    def texts(self, key: str) -> list[str]:
        value = self.data[key]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [str(item) for item in value]
        raise TypeError(key)  # pragma: no cover

    def mapping(self, key: str) -> dict[str, str]:
        value = self.data[key]
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        raise TypeError(key)  # pragma: no cover


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
    azure_devops_organizations: tuple[str, ...] = ()  # organisation URLs, lower case; empty: any on those hosts
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
    azure_devops_key_previous: str | None = None
    github_webhook_secret_previous: str | None = None
    state: str = "in-process"
    state_connection_string: str | None = None
    state_queue_endpoint: str | None = None
    state_table_endpoint: str | None = None
    state_queue: str = "mlgate-checks"
    state_table: str = "mlgatechecks"
    state_identity: str = "auto"
    state_client_id: str | None = None
    visibility_timeout_seconds: float = 300.0
    max_attempts: int = 5
    poll_seconds: float = 2.0

    @property
    def azure_devops_enabled(self) -> bool:
        return self.azure_devops_key is not None

    @property
    def github_enabled(self) -> bool:
        return self.github_webhook_secret is not None

    def describe(self) -> dict[str, object]:
        """A loggable view: names what is configured, never a secret value."""
        return {
            "policy": str(self.policy),
            "stage": self.stage,
            "mlflow_tracking_uri": _without_userinfo(self.mlflow_tracking_uri),
            "public_url": _without_userinfo(self.public_url),
            "azure_devops_check": self.azure_devops_enabled,
            "azure_devops_allowed_hosts": list(self.azure_devops_allowed_hosts),
            "azure_devops_organizations": list(self.azure_devops_organizations),
            "github_protection_rule": self.github_enabled,
            "github_api_url": self.github_api_url,
            "environment_models": sorted(self.environment_models),
            "workers": self.workers,
            "max_body_bytes": self.max_body_bytes,
            "state": self.state,
            **({"state_queue": self.state_queue, "state_table": self.state_table,
                "state_queue_endpoint": self.state_queue_endpoint or "(connection string)",
                "state_table_endpoint": self.state_table_endpoint or "(connection string)"}
               if self.state == "azure-storage" else {}),
            "key_rotation": [key for key in ("azure_devops_key_previous", "github_webhook_secret_previous")
                             if getattr(self, key) is not None],
        }


def _without_userinfo(url: str | None) -> str | None:
    """A URL fit for a log line: no ``user:password@`` part, no query string."""
    return safe_url(url) if url else url


# -- the configuration file ------------------------------------------------------------------


def _parse_yaml(text: str, where: str) -> object:
    """YAML without aliases (a service configuration needs none; they are how a bomb is built)."""
    import yaml

    try:
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(text)):
            raise InvalidInputError(f"{where}: YAML aliases (*name) are not allowed here",
                                    hint="write each value out in full")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{where} is not valid YAML/JSON: {exc}", hint="fix the syntax at the position shown") \
            from None
    except (RecursionError, ValueError) as exc:  # nesting past Python's stack, an integer of 5000 digits
        raise InvalidInputError(f"{where}: refused ({type(exc).__name__}: nesting or a number beyond the limits)",
                                hint="write plain keys and values") from None


def _load_file(path: Path) -> Fields:
    where = f"the service configuration {str(path)!r}"
    text = read_text(path, CONFIG_LIMIT, what="the service configuration")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _parse_yaml(text, where)
        if depth(data) > MAX_DEPTH:
            raise InvalidInputError(f"{where}: nested deeper than {MAX_DEPTH} levels (limit)")
    else:
        data = parse_json(text, what=where, error=InvalidInputError,
                          hint="fix the syntax at the position shown")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{where} must be a mapping of keys to values",
            hint="write `policy: release-policy.yaml` and the other keys at the top level",
        )
    inline = sorted(str(k) for k in data if k in SECRET_KEYS)
    if inline:
        raise InvalidInputError(
            f"the service configuration holds secret value(s) inline: {', '.join(inline)}",
            hint="remove them from the file; give them as MLGATE_SERVE_<KEY> environment variables "
            "or as `<key>_file:` paths to mounted secret files",
        )
    allowed = set(SETTINGS) | {f"{k}_file" for k in SECRET_KEYS}
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown key(s) in {where}: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(allowed))}",
        )
    return Fields(data, where, error=InvalidInputError)


# -- one setting -----------------------------------------------------------------------------


def _read_setting(key: str, setting: Setting, source: Fields) -> object:
    """The value of ``key`` in ``source`` (the file, or one environment variable's text), typed."""
    raw = source.raw(key)
    kind = setting.kind
    if kind == TEXT:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)  # github_app_id: 123 in YAML
        return source.text(key)
    if kind == COUNT:
        number = source.integer(key)
        if not 1 <= number <= setting.most:
            source.fail(key, f"expected {_EXPECTED[kind]} of at most {int(setting.most)}, got {number}")
        return number
    if kind == SECONDS:
        seconds = _seconds(source, key, raw)
        if not 0 < seconds <= setting.most:
            source.fail(key, f"expected {_EXPECTED[kind]} of at most {setting.most:g}, got {seconds:g}")
        return seconds
    if kind == LIST:
        if isinstance(raw, str):
            return [item.strip() for item in raw.split(",") if item.strip()]
        return source.texts(key)
    return _mapping(source, key, raw)


def _seconds(source: Fields, key: str, raw: object) -> float:
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            source.fail(key, f"expected {_EXPECTED[SECONDS]}, got {raw[:40]!r}")
        if not math.isfinite(value):
            source.fail(key, f"expected a finite number, got {raw[:40]!r}")
        return value
    return source.number(key)


def _mapping(source: Fields, key: str, raw: object) -> dict[str, str]:
    if isinstance(raw, str):  # env form: "prod=models:/fraud/3,staging=fraud@candidate"
        pairs = [pair.strip() for pair in raw.split(",") if pair.strip()]
        if not all("=" in pair for pair in pairs):
            source.fail(key, f"expected {_EXPECTED[MAPPING]}")
        return dict(pair.split("=", 1) for pair in pairs)
    values = source.obj(key)
    return {str(name): values.text(str(name)) for name in values.data}


def _plain_values(env: Mapping[str, str], file_data: Fields | None) -> Values:
    """Every plain setting: the environment variable wins over the file, the file over the default."""
    values: dict[str, object] = {}
    for key, setting in SETTINGS.items():
        name = ENV_PREFIX + key.upper()
        env_value = env.get(name)
        try:
            if env_value:
                source = Fields({key: env_value}, f"environment variable {name}", error=InvalidInputError)
                values[key] = _read_setting(key, setting, source)
            elif file_data is not None and file_data.has(key):
                values[key] = _read_setting(key, setting, file_data)
            else:
                values[key] = setting.default
        except InvalidInputError as exc:  # Fields' own hint speaks of a server's answer
            raise InvalidInputError(exc.message, hint=f"fix {key}; `mlgate serve --help` lists every key") from None
    return Values(values)


def _read_secret(key: str, environ: Mapping[str, str], file_data: Fields | None, base: Path) -> str | None:
    env_name = ENV_PREFIX + key.upper()
    value = environ.get(env_name)
    source = env_name
    if not value:
        path_text = environ.get(env_name + "_FILE") or (file_data.opt_text(f"{key}_file") if file_data else None)
        if not path_text:
            return None
        path = Path(path_text)
        if not path.is_absolute():
            path = base / path
        value = read_text(path, SECRET_FILE_LIMIT, what=f"the secret file for {key}")
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


def _policy_path(text: str | None, base: Path) -> Path:
    if not text:
        raise UsageError(
            "the service needs a release policy",
            hint="set MLGATE_SERVE_POLICY (or `policy:` in the configuration file) to the policy YAML",
        )
    policy = Path(text)
    if not policy.is_absolute():
        policy = base / policy
    if policy.exists() and not policy.is_file():
        raise InvalidInputError(
            f"the release policy {str(policy)!r} is not a regular file",
            hint="point MLGATE_SERVE_POLICY / `policy:` at the policy YAML itself (not a FIFO or a directory)",
        )
    if not policy.is_file():
        raise UsageError(
            f"the release policy {str(policy)!r} does not exist",
            hint="point MLGATE_SERVE_POLICY / `policy:` at the policy YAML the gate should apply",
        )
    return policy


def _secrets(values: Values, env: Mapping[str, str], file_data: Fields | None, base: Path) -> dict[str, str | None]:
    """The three secrets: a variable, a mounted file, or Key Vault (``<key>_secret_name``)."""
    secrets = {key: _read_secret(key, env, file_data, base) for key in SECRET_KEYS}
    from_vault = {
        key: name
        for key in SECRET_KEYS
        if secrets[key] is None and (name := values.text(f"{key}_secret_name"))
    }
    if from_vault:
        vault = values.text("key_vault")
        if not vault:
            raise UsageError(
                f"{', '.join(k + '_secret_name' for k in from_vault)} given without a Key Vault",
                hint="set MLGATE_SERVE_KEY_VAULT (or `key_vault:`) to the vault's name or URL",
            )
        fetched = fetch_from_key_vault(
            vault, list(from_vault.values()),
            identity=values.required("key_vault_identity"), client_id=values.text("key_vault_client_id"), environ=env,
        )
        for key, name in from_vault.items():
            value = fetched[name]
            secrets[key] = value if key == "github_private_key" else value.strip()
    _check_enabled(secrets, values)
    return secrets


def _check_enabled(secrets: Mapping[str, str | None], values: Values) -> None:
    for previous in ("azure_devops_key", "github_webhook_secret"):
        if secrets[previous + "_previous"] is not None and secrets[previous] is None:
            raise UsageError(
                f"{previous}_previous is set without {previous}",
                hint=f"during a rotation set MLGATE_SERVE_{previous.upper()} to the new value and "
                f"MLGATE_SERVE_{previous.upper()}_PREVIOUS to the old one",
            )
    if secrets["azure_devops_key"] is None and secrets["github_webhook_secret"] is None:
        raise UsageError(
            "neither the Azure DevOps check nor the GitHub protection rule is configured",
            hint="set MLGATE_SERVE_AZURE_DEVOPS_KEY and/or MLGATE_SERVE_GITHUB_WEBHOOK_SECRET "
            "(with MLGATE_SERVE_GITHUB_APP_ID and MLGATE_SERVE_GITHUB_PRIVATE_KEY)",
        )
    if secrets["github_webhook_secret"] is not None and (
        not values.text("github_app_id") or secrets["github_private_key"] is None
    ):
        raise UsageError(
            "the GitHub protection rule needs the App id and private key as well as the webhook secret",
            hint="set MLGATE_SERVE_GITHUB_APP_ID and MLGATE_SERVE_GITHUB_PRIVATE_KEY (or _FILE)",
        )


_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


@dataclass(frozen=True)
class StateWhere:
    """Where the azure-storage state lives: endpoints (None with a connection string)."""

    queue_endpoint: str | None = None
    table_endpoint: str | None = None


def _state_where(values: Values, connection_string: str | None) -> StateWhere:
    """Check the state settings; the queue and table endpoints of the azure-storage back-end."""
    state = values.required("state")
    if state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}, got {state[:40]!r}",
                                hint="in-process for one replica; azure-storage for several (see the README)")
    if state == "in-process":
        return StateWhere()
    if not _QUEUE_NAME.match(values.required("state_queue")):
        raise InvalidInputError(f"state_queue {values.required('state_queue')[:70]!r} is not a queue name",
                                hint="3 to 63 lower-case letters, digits and single hyphens")
    if not _TABLE_NAME.match(values.required("state_table")):
        raise InvalidInputError(f"state_table {values.required('state_table')[:70]!r} is not a table name",
                                hint="3 to 63 letters and digits, starting with a letter")
    if connection_string:
        return StateWhere()
    account = values.text("state_storage_account")
    if account and not re.fullmatch(r"[a-z0-9]{3,24}", account):
        raise InvalidInputError(f"state_storage_account {account[:40]!r} is not a storage account name",
                                hint="3 to 24 lower-case letters and digits")
    queue = values.text("state_queue_endpoint") or (f"https://{account}.queue.core.windows.net" if account else None)
    table = values.text("state_table_endpoint") or (f"https://{account}.table.core.windows.net" if account else None)
    if not queue or not table:
        raise UsageError(
            "state azure-storage needs the storage account",
            hint="set MLGATE_SERVE_STATE_STORAGE_ACCOUNT (the service's identity reads and writes it), or "
            "MLGATE_SERVE_STATE_QUEUE_ENDPOINT and _TABLE_ENDPOINT, or MLGATE_SERVE_STATE_CONNECTION_STRING",
        )
    for key, url in (("state_queue_endpoint", queue), ("state_table_endpoint", table)):
        if urlsplit(url).scheme not in ("http", "https") or "@" in url or "?" in url:
            raise InvalidInputError(f"{key} must be a plain http(s) URL, got {safe_url(url)!r}")
    return StateWhere(queue.rstrip("/"), table.rstrip("/"))


def _environment_models(mapping: Mapping[str, str]) -> dict[str, ModelRef]:
    models: dict[str, ModelRef] = {}
    for environment, ref_text in mapping.items():
        try:
            models[environment] = ModelRef.parse(ref_text)
        except UsageError as exc:
            raise InvalidInputError(f"environment_models[{environment!r}]: {exc.message}", hint=exc.hint) from None
    return models


def _check_urls(values: Values) -> None:
    from urllib.parse import urlsplit

    from mlgate.service.safe_url import parse_safe_url

    for key in ("public_url", "github_api_url", "mlflow_tracking_uri"):
        url = values.text(key)
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise InvalidInputError(f"{key} must be an http(s) URL, got {safe_url(url)!r}")
    api = values.required("github_api_url")
    if parse_safe_url(api.rstrip("/")) is None:
        raise InvalidInputError(
            f"github_api_url must be a plain URL (no userinfo, query or percent-encoding), got "
            f"{safe_url(api)!r}",
            hint="https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
        )


def _organizations(urls: list[str]) -> tuple[str, ...]:
    from mlgate.service.safe_url import parse_safe_url

    organizations = []
    for url in urls:
        parts = parse_safe_url(url.rstrip("/"))
        if parts is None:
            raise InvalidInputError(
                f"azure_devops_organizations: {safe_url(url)!r} is not a plain organisation URL",
                hint="write each as https://dev.azure.com/ORGANISATION (or https://ORGANISATION.visualstudio.com)",
            )
        organizations.append(parts.url.lower())
    return tuple(organizations)


def load_config(environ: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> ServiceConfig:
    """Build the configuration from ``environ`` (default: ``os.environ``) and an optional file."""
    env = os.environ if environ is None else environ
    path = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    file_data: Fields | None = None
    base = Path.cwd()
    if path:
        file_path = Path(path)
        file_data = _load_file(file_path)
        base = file_path.resolve().parent
    values = _plain_values(env, file_data)
    policy = _policy_path(values.text("policy"), base)
    secrets = _secrets(values, env, file_data, base)
    _check_urls(values)
    if secrets["state_connection_string"]:
        from mlgate.stores.azure_auth import redact_connection_string

        redact_connection_string(secrets["state_connection_string"])
    where = _state_where(values, secrets["state_connection_string"])
    public_url, evidence_dir = values.text("public_url"), values.text("evidence_dir")
    return ServiceConfig(
        policy=policy,
        stage=values.required("stage"),
        mlflow_tracking_uri=values.text("mlflow_tracking_uri"),
        public_url=public_url.rstrip("/") if public_url else None,
        evidence_dir=Path(evidence_dir) if evidence_dir else None,
        azure_devops_key=secrets["azure_devops_key"],
        azure_devops_allowed_hosts=tuple(h.lower() for h in values.texts("azure_devops_allowed_hosts")),
        azure_devops_organizations=_organizations(values.texts("azure_devops_organizations")),
        github_app_id=values.text("github_app_id"),
        github_private_key=secrets["github_private_key"],
        github_webhook_secret=secrets["github_webhook_secret"],
        github_api_url=values.required("github_api_url").rstrip("/"),
        environment_models=_environment_models(values.mapping("environment_models")),
        max_body_bytes=values.count("max_body_bytes"),
        workers=values.count("workers"),
        max_pending=values.count("max_pending"),
        replay_ttl_seconds=values.seconds("replay_ttl_seconds"),
        replay_max_entries=values.count("replay_max_entries"),
        callback_timeout_seconds=values.seconds("callback_timeout_seconds"),
        azure_devops_key_previous=secrets["azure_devops_key_previous"],
        github_webhook_secret_previous=secrets["github_webhook_secret_previous"],
        state=values.required("state"),
        state_connection_string=secrets["state_connection_string"],
        state_queue_endpoint=where.queue_endpoint,
        state_table_endpoint=where.table_endpoint,
        state_queue=values.required("state_queue"),
        state_table=values.required("state_table"),
        state_identity=values.required("state_identity"),
        state_client_id=values.text("state_client_id"),
        visibility_timeout_seconds=values.seconds("visibility_timeout_seconds"),
        max_attempts=values.count("max_attempts"),
        poll_seconds=values.seconds("poll_seconds"),
    )
