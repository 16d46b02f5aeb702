"""Fetch Key Vault secrets with ``azure-keyvault-secrets``: bounded parallelism, listing, errors that say what to fix.

* The first secret is fetched alone: it answers Key Vault's 401 challenge and gets the token
  once; the rest follow in parallel, at most ``concurrency`` (20, like Azure DevOps' own
  Key Vault task) at a time, over one connection pool of that size.
* ``*`` lists the vault page by page (``nextLink``) and keeps only enabled secrets that are
  inside their ``nbf``/``exp`` window.
* 429 and 5xx are retried by azure-core, honouring ``Retry-After`` up to
  :data:`MAX_RETRY_AFTER` seconds and at most :data:`RETRIES` times; every request has a timeout.
* Challenge-resource verification (the token's resource must belong to the vault's domain)
  stays on, except for loopback vault hosts where it is switched off automatically
  (emulators and tests, which have no ``*.vault.azure.net`` name).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy

from mlgate.errors import Error, EvaluationError, NetworkError
from mlgate.secrets.credentials import CredentialError, ObservedCredential, _is_loopback

DEFAULT_CONCURRENCY = 20
MAX_CONCURRENCY = 64
RETRIES = 4
MAX_RETRY_AFTER = 60.0
VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
CALLER = re.compile(r"(appid=[^;\s']+;oid=[^;\s']+)")
ROLE = "Key Vault Secrets User"


class KeyVaultError(EvaluationError):
    """Key Vault refused or failed a request (exit 3). ``fatal``: retrying other secrets is pointless."""

    def __init__(self, message: str, *, hint: str | None = None, fatal: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.fatal = fatal


@dataclass(frozen=True)
class Vault:
    url: str
    host: str
    loopback: bool

    @property
    def name(self) -> str:
        return self.host.split(".", 1)[0] if not self.loopback else self.host


@dataclass(frozen=True)
class Secret:
    name: str
    value: str = field(repr=False)
    version: str | None = None


@dataclass(frozen=True)
class Failure:
    name: str
    error: Error


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``."""
    return _is_loopback(host)


def parse_vault(value: str, *, dns_suffix: str = "vault.azure.net") -> Vault:
    """``NAME`` (public cloud) or an ``https://`` vault URL."""
    from mlgate.errors import UsageError

    value = value.strip()
    if "://" not in value:
        if not VAULT_NAME.match(value):
            raise UsageError(f"invalid Key Vault name {value!r}",
                             hint="vault names are 3-24 letters, digits and dashes starting with a letter; "
                             "or pass the vault URL (https://NAME.vault.azure.net)")
        host = f"{value.lower()}.{dns_suffix}"
        return Vault(url=f"https://{host}", host=host, loopback=False)
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"invalid Key Vault URL {value!r}", hint="use https://NAME.vault.azure.net")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(f"the Key Vault URL {value!r} has a path, query or user part",
                         hint="pass only the vault's base URL, e.g. https://NAME.vault.azure.net")
    netloc = parts.netloc.lower()
    return Vault(url=f"https://{netloc}", host=parts.hostname.lower(), loopback=is_loopback_host(parts.hostname))


class BoundedRetryPolicy(RetryPolicy[Any, Any]):
    """azure-core's retry, but a ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` ends the retries."""

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        if not super().is_retry(settings, response):
            return False
        after = self.get_retry_after(response)
        return after is None or after <= MAX_RETRY_AFTER


def _error_body(exc: HttpResponseError) -> tuple[str, str, str]:
    """(code, innererror code, message) from Key Vault's ``{"error": {...}}`` body."""
    code = inner = message = ""
    try:
        body = json.loads(exc.response.text()) if exc.response is not None else {}
        error = body.get("error") or {}
        code = str(error.get("code") or "")
        message = str(error.get("message") or "")
        inner = str((error.get("innererror") or {}).get("code") or "")
    except (ValueError, AttributeError, TypeError):
        pass
    return code, inner, message.strip()


def _short(message: str, limit: int = 300) -> str:
    """Server-provided text on one line, shortened, and unable to act as a CI logging command."""
    message = " ".join(message.split()).replace("##vso[", "##vso [").replace("##[", "## [")
    return message if len(message) <= limit else message[: limit - 3] + "..."


class KeyVaultSecrets:
    """A SecretClient for one vault, with the credential and identity description used in errors."""

    def __init__(self, vault: Vault, credential: ObservedCredential, *, identity: str,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        import requests
        from azure.core.pipeline.transport import RequestsTransport
        from azure.keyvault.secrets import SecretClient
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.vault = vault
        self.identity = identity
        self.concurrency = max(1, min(concurrency, MAX_CONCURRENCY))
        self._credential = credential
        session = requests.Session()
        # azure-core retries; urllib3 must not. One pool as wide as the fetch.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.concurrency,
                              max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        session.mount("https://", adapter)
        transport = RequestsTransport(session=session, session_owner=True)
        self._client = SecretClient(
            vault.url,
            credential,
            verify_challenge_resource=not vault.loopback,
            transport=transport,
            retry_policy=BoundedRetryPolicy(retry_total=RETRIES, retry_status=RETRIES, retry_backoff_factor=0.5,
                                            retry_backoff_max=20,
                                            timeout=300),
            connection_timeout=10,
            read_timeout=30,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> KeyVaultSecrets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors -------------------------------------------------------------------------------------------
    def _who(self, message: str = "") -> str:
        caller = CALLER.search(message)
        named = caller.group(1) if caller else self._credential.who()
        return f"{self.identity}" + (f" ({named})" if named else "")

    def translate(self, exc: Exception, *, name: str | None, operation: str) -> Error:
        """Turn an azure-core exception into an error that names the secret, the identity and the fix."""
        vault = self.vault.url
        subject = f"secret {name!r}" if name else "the secret list"
        if isinstance(exc, Error):
            return exc
        if isinstance(exc, ValueError) and "challenge" in str(exc).lower():
            return KeyVaultError(
                f"{vault} answered with an authentication challenge for another domain; no token was sent "
                f"({_short(str(exc).split(' Pass ')[0], 200)})",
                hint="pass the vault's real URL (https://NAME.vault.azure.net or your cloud's vault domain); "
                "mlgate skips this check only for loopback emulators",
                fatal=True,
            )
        if isinstance(exc, ClientAuthenticationError) and not self._from_vault(exc):
            return CredentialError(
                f"could not get an Azure token as {self.identity}: {_short(exc.message or type(exc).__name__)}",
                hint="check the identity's setup (federated credential subject, tenant and client id, or the "
                "agent's managed identity) and re-run with -v to see which credential was used",
            )
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            return self._http_error(exc, subject=subject, name=name, operation=operation)
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            return NetworkError(
                f"could not reach Key Vault {vault} ({type(exc).__name__}: {_short(str(exc.message), 160)})",
                hint="check DNS, proxy and network rules between this agent and the vault; for a private "
                "certificate authority set REQUESTS_CA_BUNDLE",
            )
        if isinstance(exc, AzureError):
            return NetworkError(f"Key Vault request for {subject} failed: {type(exc).__name__}",
                                hint="re-run with -vv for details")
        raise exc

    def _from_vault(self, exc: HttpResponseError) -> bool:
        request = getattr(exc.response, "request", None)
        url = getattr(request, "url", "") or ""
        return bool(url) and urlsplit(url).netloc.lower() == urlsplit(self.vault.url).netloc

    def _http_error(self, exc: HttpResponseError, *, subject: str, name: str | None, operation: str) -> Error:
        status = exc.status_code
        code, inner, message = _error_body(exc)
        vault = self.vault.url
        detail = f" ({code}{'/' + inner if inner else ''})" if code else ""
        if status == 403 and (inner == "SecretDisabled" or "disabled secret" in message.lower()):
            return KeyVaultError(f"{subject} in {vault} is disabled{detail}",
                                 hint=f"enable it in the vault, or remove {name} from --secrets")
        if status == 403 and (inner in ("ForbiddenByFirewall", "ForbiddenByConnection")
                              or "client address is not authorized" in message.lower()):
            return KeyVaultError(
                f"the firewall of {vault} refused this agent: {_short(message, 200)}",
                hint="add the agent's outbound address to the vault's network rules, run the job on an agent "
                "inside the vault's virtual network (private endpoint), or allow trusted services",
                fatal=True,
            )
        if status == 403:
            permission = "List" if operation == "list" else "Get"
            return KeyVaultError(
                f"{self._who(message)} may not {operation} {subject} in {vault}{detail}",
                hint=f"grant {self.identity} the '{ROLE}' role on the vault (Azure RBAC), or the {permission}"
                f"{' and Get' if permission == 'List' else ''} secret permission in its access policy; "
                "new role assignments take a few minutes to apply",
            )
        if status == 404:
            return KeyVaultError(f"{subject} was not found in {vault}{detail}",
                                 hint="check the name (dashes, not underscores) and the vault; a deleted "
                                 "secret must be recovered first")
        if status == 400 and code == "BadParameter":
            return KeyVaultError(f"Key Vault rejected the name of {subject}{detail}: {_short(message, 160)}",
                                 hint="secret names are 1-127 letters, digits and dashes")
        if status == 429:
            headers = getattr(exc.response, "headers", None) or {}
            after = headers.get("Retry-After")
            return KeyVaultError(
                f"Key Vault {vault} kept throttling requests for {subject} (HTTP 429"
                f"{', Retry-After ' + after + ' s' if after else ''}) after {RETRIES} retries",
                hint="re-run later, lower --concurrency, or spread other jobs reading this vault",
            )
        if status == 401:
            return KeyVaultError(
                f"Key Vault {vault} did not accept the token of {self._who(message)}{detail}",
                hint="the identity's tenant must be the vault's tenant; check --tenant-id",
                fatal=True,
            )
        return KeyVaultError(f"Key Vault {vault} answered HTTP {status} for {subject}{detail}"
                             + (f": {_short(message, 160)}" if message else ""),
                             hint="re-run later; if it persists, check the vault's health in the Azure portal")

    # -- listing ---------------------------------------------------------------------------------------------
    def list_usable(self, *, now: dt.datetime | None = None) -> tuple[list[str], list[str]]:
        """Names of enabled secrets within their validity window, and a note per skipped one."""
        now = now or dt.datetime.now(dt.timezone.utc)
        usable: list[str] = []
        skipped: list[str] = []
        try:
            for props in self._client.list_properties_of_secrets():
                name = props.name or ""
                if not name:
                    continue
                if props.enabled is False:
                    skipped.append(f"{name} (disabled)")
                elif props.expires_on is not None and props.expires_on <= now:
                    skipped.append(f"{name} (expired {props.expires_on.isoformat()})")
                elif props.not_before is not None and props.not_before > now:
                    skipped.append(f"{name} (not valid before {props.not_before.isoformat()})")
                else:
                    usable.append(name)
        except Exception as exc:
            raise self.translate(exc, name=None, operation="list") from None
        return usable, skipped

    # -- fetching --------------------------------------------------------------------------------------------
    def _get(self, name: str, on_value: Callable[[str, str], None], now: dt.datetime) -> Secret | Failure:
        try:
            bundle = self._client.get_secret(name)
        except Exception as exc:
            return Failure(name, self.translate(exc, name=name, operation="get"))
        value = bundle.value
        if value is None:
            return Failure(name, KeyVaultError(f"secret {name!r} in {self.vault.url} has no value",
                                               hint="set a value for it in the vault"))
        on_value(name, value)  # mask first, before anything else can be printed
        props = bundle.properties
        if props.expires_on is not None and props.expires_on <= now:
            return Failure(name, KeyVaultError(
                f"secret {name!r} in {self.vault.url} expired at {props.expires_on.isoformat()}",
                hint="store a new version with a later expiry date, or remove it from --secrets"))
        if props.not_before is not None and props.not_before > now:
            return Failure(name, KeyVaultError(
                f"secret {name!r} in {self.vault.url} is not valid before {props.not_before.isoformat()}",
                hint="wait for its activation date, or remove it from --secrets"))
        return Secret(name=name, value=value, version=props.version)

    def fetch(self, names: Iterable[str], *, on_value: Callable[[str, str], None],
              now: dt.datetime | None = None) -> tuple[list[Secret], list[Failure]]:
        """Fetch ``names``: the first alone, then the rest in parallel; results in the order given.

        ``on_value(name, value)`` is called from the worker the moment a value arrives (to mask it).
        Stops early after an error that would fail every other request too (credential, firewall).
        """
        order = list(dict.fromkeys(names))
        when = now or dt.datetime.now(dt.timezone.utc)
        results: dict[str, Secret | Failure] = {}
        if not order:
            return [], []
        lock = threading.Lock()

        def safe_on_value(name: str, value: str) -> None:
            with lock:
                on_value(name, value)

        first = self._get(order[0], safe_on_value, when)
        results[order[0]] = first
        if not self._fatal(first) and len(order) > 1:
            workers = min(self.concurrency, len(order) - 1)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlgate-kv") as pool:
                rest = order[1:]
                for name, result in zip(rest, pool.map(lambda n: self._get(n, safe_on_value, when), rest),
                                        strict=True):
                    results[name] = result
        secrets = [r for r in results.values() if isinstance(r, Secret)]
        failures = [r for r in results.values() if isinstance(r, Failure)]
        return secrets, failures

    @staticmethod
    def _fatal(result: Secret | Failure) -> bool:
        if not isinstance(result, Failure):
            return False
        return isinstance(result.error, (CredentialError, NetworkError)) or bool(getattr(result.error, "fatal", False))
