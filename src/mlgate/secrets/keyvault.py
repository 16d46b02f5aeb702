"""Fetch Key Vault secrets with ``azure-keyvault-secrets``: bounded parallelism, listing, errors that say what to fix.

* The first secret is fetched alone: it answers Key Vault's 401 challenge and gets the token
  once; the rest follow in parallel, at most ``concurrency`` (20, like Azure DevOps' own
  Key Vault task) at a time, over one connection pool of that size.
* ``*`` lists the vault page by page (``nextLink``) and keeps only enabled secrets that are
  inside their ``nbf``/``exp`` window.
* 429 and 5xx are retried by azure-core, honouring ``Retry-After`` up to
  :data:`MAX_RETRY_AFTER` seconds and at most :data:`RETRIES` times; every request has a timeout.
* Every request goes to the vault's origin only (a redirect or ``nextLink`` elsewhere is exit 3
  and no token is sent), every answer is read within :mod:`mlgate.secrets.azure_http`'s limits
  and checked field by field before the SDK sees it (a ``value`` that is not text is exit 3).
* Challenge-resource verification (the token's resource must belong to the vault's domain)
  stays on, except for loopback vault hosts where it is switched off automatically
  (emulators and tests, which have no ``*.vault.azure.net`` name).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
    TooManyRedirectsError,
)
from azure.core.pipeline.policies import RetryPolicy

from mlgate.errors import Error, NetworkError
from mlgate.http import same_origin
from mlgate.jsonvalue import Fields, kind_of, parse_json
from mlgate.secrets.azure_http import MAX_REDIRECTS, Guard, GuardedTransport, SameOriginRedirectPolicy
from mlgate.secrets.credentials import CredentialError, ObservedCredential
from mlgate.secrets.interface import Failure, Secret, SecretsError, SecretsSource
from mlgate.urls import is_loopback_host, safe_url

__all__ = ["Failure", "KeyVaultError", "KeyVaultSecrets", "Secret", "Vault", "is_loopback_host", "parse_vault"]

DEFAULT_CONCURRENCY = 20
MAX_CONCURRENCY = 64
RETRIES = 4
MAX_RETRY_AFTER = 60.0
CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 30  # seconds without a byte of the answer
MAX_LIST_PAGES = 1000  # 25 secrets a page: far beyond any vault a pipeline reads
LAST_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second Python's datetime holds
VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
CALLER = re.compile(r"(appid=[^;\s']+;oid=[^;\s']+)")
ROLE = "Key Vault Secrets User"


class KeyVaultError(SecretsError):
    """Key Vault refused or failed a request, or answered out of shape (exit 3)."""


@dataclass(frozen=True)
class Vault:
    url: str
    host: str
    loopback: bool

    @property
    def name(self) -> str:
        return self.host.split(".", 1)[0] if not self.loopback else self.host


def parse_vault(value: str, *, dns_suffix: str = "vault.azure.net") -> Vault:
    """``NAME`` (public cloud) or an ``https://`` vault URL; messages never echo user-info or a query."""
    from mlgate.errors import UsageError

    value = value.strip()
    if "://" not in value:
        if not VAULT_NAME.match(value):
            shown = repr(value) if re.fullmatch(r"[\w.-]{0,64}", value) else "(not shown: it has characters no " \
                "vault name has, and may hold a credential)"
            raise UsageError(f"invalid Key Vault name {shown}",
                             hint="vault names are 3-24 letters, digits and dashes starting with a letter; "
                             "or pass the vault URL (https://NAME.vault.azure.net)")
        host = f"{value.lower()}.{dns_suffix}"
        return Vault(url=f"https://{host}", host=host, loopback=False)
    try:
        parts = urlsplit(value)
        hostname, _port = parts.hostname, parts.port
    except ValueError:
        raise UsageError("the Key Vault URL does not parse (host or port)",
                         hint="pass the vault's base URL, e.g. https://NAME.vault.azure.net") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UsageError("the Key Vault URL carries a user name or password (not shown); Key Vault takes none",
                         hint="pass only https://NAME.vault.azure.net: mlgate authenticates with --identity, "
                         "and a password in a URL ends up in logs")
    if parts.query or parts.fragment or "?" in value:
        raise UsageError("the Key Vault URL carries a query string or fragment (not shown, it may be a signature)",
                         hint="pass only the vault's base URL, e.g. https://NAME.vault.azure.net")
    if parts.scheme != "https" or not hostname:
        raise UsageError(f"invalid Key Vault URL {safe_url(value)!r}", hint="use https://NAME.vault.azure.net")
    if parts.path not in ("", "/"):
        raise UsageError(f"the Key Vault URL {safe_url(value)!r} has a path",
                         hint="pass only the vault's base URL, e.g. https://NAME.vault.azure.net")
    netloc = parts.netloc.lower()
    return Vault(url=f"https://{netloc}", host=hostname.lower(), loopback=is_loopback_host(hostname))


# -- the shape of Key Vault's answers ------------------------------------------------------------------

SHAPE_HINT = ("the vault answered something other than Key Vault's documented shape; pass the vault's own URL "
              "(a proxy or emulator in between may be at fault); nothing was handed over")


def _field_error(item: Fields, key: str, message: str) -> KeyVaultError:
    path = f"{item.path}.{key}" if item.path else key
    return KeyVaultError(f"{item.where}: field {path}: {message}", hint=SHAPE_HINT)


def _check_time(attrs: Fields, key: str) -> None:
    value = attrs.raw(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise _field_error(attrs, key, f"expected a time in seconds since 1970, got {kind_of(value)}")
    if not 0 <= value <= LAST_TIME:
        raise _field_error(attrs, key, "a time in seconds since 1970 out of range")


def _check_attributes(item: Fields) -> None:
    attrs = item.opt_obj("attributes")
    attrs.flag("enabled", default=True)
    for key in ("exp", "nbf", "created", "updated"):
        _check_time(attrs, key)
    attrs.opt_integer("recoverableDays")
    attrs.opt_text("recoveryLevel")
    item.tags("tags")
    item.opt_text("contentType")


def _check_bundle(vault: Vault, name: str, value: Any) -> None:
    bundle = Fields(value, f"the answer of {vault.url} for secret {name!r}", error=KeyVaultError)
    bundle.text("value")
    bundle.opt_text("id")
    _check_attributes(bundle)


def _check_page(vault: Vault, value: Any) -> None:
    page = Fields(value, f"the answer of {vault.url} for the secret list", error=KeyVaultError)
    for item in page.objs("value"):
        ident = item.text("id")
        segments = [unquote(s) for s in urlsplit(ident).path.split("/") if s]
        if len(segments) < 2 or segments[0] != "secrets" or not SECRET_NAME.match(segments[1]):
            raise _field_error(item, "id", "is not a Key Vault secret identifier (https://VAULT/secrets/NAME)")
        _check_attributes(item)
    link = page.opt_text("nextLink")
    if link and not _same_origin(link, vault.url):
        raise KeyVaultError(
            f"the answer of {vault.url} for the secret list: field nextLink points to another origin "
            f"({safe_url(link)}); it was not followed and no token was sent",
            hint="pass the vault's own URL; a vault's next link always points back at the vault",
            fatal=True,
        )


def _same_origin(url: str, base: str) -> bool:
    try:
        return same_origin(url, base)
    except ValueError:
        return False


def vault_guard(vault: Vault) -> Guard:
    """Requests only to ``vault``; a secret bundle or list page must have Key Vault's documented shape."""

    def check(url: str, value: Any) -> None:
        segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
        if segments == ["secrets"]:
            _check_page(vault, value)
        elif len(segments) in (2, 3) and segments[0] == "secrets":
            _check_bundle(vault, segments[1], value)

    return Guard.of(f"Key Vault {vault.url}", [vault.url], NetworkError, check, redirects=True)


class BoundedRetryPolicy(RetryPolicy[Any, Any]):
    """azure-core's retry, but a ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` ends the retries."""

    def get_retry_after(self, response: Any) -> float | None:
        """The answer's ``Retry-After`` in seconds, or ``None`` when it is absent or not a number or date."""
        try:
            return super().get_retry_after(response)
        except (ValueError, TypeError, OverflowError):
            return None

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        if not super().is_retry(settings, response):
            return False
        after = self.get_retry_after(response)
        return after is None or after <= MAX_RETRY_AFTER


def _error_body(exc: HttpResponseError) -> tuple[str, str, str]:
    """(code, innererror code, message) from Key Vault's ``{"error": {...}}`` body; empty where it has none."""
    if exc.response is None:
        return "", "", ""
    try:
        error = Fields(parse_json(exc.response.text(), what="Key Vault error"), "Key Vault error").opt_obj("error")
        code, message = error.opt_text("code") or "", error.opt_text("message") or ""
        inner = error.opt_obj("innererror").opt_text("code") or ""
    except (Error, ValueError, AttributeError, TypeError):
        return "", "", ""
    return code, inner, message.strip()


# A credential a hostile or misconfigured server echoes back in its error text: "Bearer <token>", or a
# bare JWT (header.payload[.signature], base64url JSON starting with '{"'). Shortening would cut one
# into a prefix the registry of secret values no longer matches, so they go before that.
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s,;\"')]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*)?")


def _short(message: str, limit: int = 300) -> str:
    """Server-provided text on one line, without credentials, shortened, unable to act as a CI logging command."""
    from mlgate.redact import MASK, redact

    message = _JWT.sub(MASK, _BEARER.sub(f"Bearer {MASK}", redact(message)))
    message = " ".join(message.split()).replace("##vso[", "##vso [").replace("##[", "## [")
    return message if len(message) <= limit else message[: limit - 3] + "..."


class KeyVaultSecrets(SecretsSource):
    """A SecretClient for one vault, with the credential and identity description used in errors."""

    def __init__(self, vault: Vault, credential: ObservedCredential, *, identity: str,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        import requests
        from azure.keyvault.secrets import SecretClient
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.vault = vault
        self.url = vault.url
        self.identity = identity
        self.concurrency = max(1, min(concurrency, MAX_CONCURRENCY))
        self._credential = credential
        session = requests.Session()
        # azure-core retries; urllib3 must not. One pool as wide as the fetch.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.concurrency,
                              max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        session.mount("https://", adapter)
        # The timeouts belong to the transport: azure-core applies a client's to a transport it builds itself.
        transport = GuardedTransport(vault_guard(vault), session=session, session_owner=True,
                                     connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)
        self._client = SecretClient(
            vault.url,
            credential,
            verify_challenge_resource=not vault.loopback,
            transport=transport,
            redirect_policy=SameOriginRedirectPolicy(),
            retry_policy=BoundedRetryPolicy(retry_total=RETRIES, retry_status=RETRIES, retry_backoff_factor=0.5,
                                            retry_backoff_max=20,
                                            timeout=300),
        )

    def close(self) -> None:
        self._client.close()

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
        if isinstance(exc, TooManyRedirectsError):
            return NetworkError(f"Key Vault {vault} redirected the request for {subject} more than {MAX_REDIRECTS} "
                                "times (limit)", hint="pass the vault's own URL; Key Vault itself does not redirect")
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
            after = _short(str(headers.get("Retry-After") or ""), 20) or None
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
        """Names of enabled secrets within their validity window, and a note per skipped one.

        Page by page, at most :data:`MAX_LIST_PAGES`; a next link seen before ends the listing (exit 3).
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        usable: list[str] = []
        skipped: list[str] = []
        try:
            pages: Any = self._client.list_properties_of_secrets().by_page()  # a PageIterator
            seen: set[str] = set()
            for count, page in enumerate(pages, start=1):
                for props in page:
                    self._sort(props, now, usable, skipped)
                link = pages.continuation_token
                if link and count >= MAX_LIST_PAGES:
                    raise KeyVaultError(f"the secret list of {self.vault.url} runs past {MAX_LIST_PAGES} pages "
                                        "(limit)", hint="name the secrets in --secrets instead of '*'")
                if link in seen:
                    raise KeyVaultError(f"the secret list of {self.vault.url} repeats a next link after {count} "
                                        "pages (a loop); listing stopped",
                                        hint="re-run; if it persists, name the secrets in --secrets instead of '*'")
                if link:
                    seen.add(link)
        except Exception as exc:
            raise self.translate(exc, name=None, operation="list") from None
        return usable, skipped

    @staticmethod
    def _sort(props: Any, now: dt.datetime, usable: list[str], skipped: list[str]) -> None:
        name = props.name or ""
        if not name:
            return
        if props.enabled is False:
            skipped.append(f"{name} (disabled)")
        elif props.expires_on is not None and props.expires_on <= now:
            skipped.append(f"{name} (expired {props.expires_on.isoformat()})")
        elif props.not_before is not None and props.not_before > now:
            skipped.append(f"{name} (not valid before {props.not_before.isoformat()})")
        else:
            usable.append(name)

    # -- fetching --------------------------------------------------------------------------------------------
    def _get(self, name: str, on_value: Callable[[str, str], None], now: dt.datetime) -> Secret | Failure:
        try:
            bundle = self._client.get_secret(name)
        except Exception as exc:
            return Failure(name, self.translate(exc, name=name, operation="get"))
        value = bundle.value
        if not isinstance(value, str):  # the transport checked the answer; a value is text or nothing
            return Failure(name, KeyVaultError(f"the answer of {self.vault.url} for secret {name!r}: field value: "
                                               f"expected a string, got {kind_of(value)}",
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
        error = result.error
        return isinstance(error, (CredentialError, NetworkError)) or (isinstance(error, SecretsError) and error.fatal)
