"""Which azure-identity credential reaches Key Vault, and why (``--identity``, explained with ``-v``).

Four ways, each with no secret on the command line:

``managed``
    ``ManagedIdentityCredential``: the agent's own Azure identity (a VM or scale-set agent through
    IMDS, App Service / Container Apps through ``IDENTITY_ENDPOINT``). System-assigned by default;
    user-assigned with ``--client-id``.
``azure-pipelines``
    ``AzurePipelinesCredential``: an Azure DevOps service connection using workload identity
    federation. Needs the tenant, the app's client id, the service connection id,
    ``SYSTEM_ACCESSTOKEN`` (map it in ``env:``) and ``SYSTEM_OIDCREQUESTURI`` (set by the agent).
``github-oidc``
    ``ClientAssertionCredential`` whose callback asks the runner for a *fresh* GitHub ID token
    (audience ``api://AzureADTokenExchange``) every time Entra ID needs an assertion. A token
    fetched once expires after a few minutes, which breaks long jobs; a callback does not.
    Needs ``permissions: id-token: write``, the tenant and the federated app's client id.
``environment``
    ``EnvironmentCredential``: a service principal from ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and
    ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``; meant for local runs.

``auto`` picks the first one whose requirements the environment meets, in that order:
github-oidc, azure-pipelines, environment, managed (only where a managed-identity endpoint
variable is set; an Azure VM's IMDS has none, so choose ``--identity managed`` there).

Sovereign clouds and test authorities are set with azure-identity's own ``AZURE_AUTHORITY_HOST``.

Each way is one :class:`IdentityKind` in :data:`KINDS` (what it needs, when ``auto`` picks it,
how it is built, which hosts it may talk to). Every credential sends through a
:class:`~mlgate.secrets.azure_http.GuardedTransport`: requests only to its own identity
endpoints, no redirects, answers bounded and checked (``access_token`` a string, ``expires_on``
a number of seconds) before azure-identity reads them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from azure.core.exceptions import ServiceResponseError

from mlgate import redact
from mlgate.errors import EvaluationError
from mlgate.jsonvalue import Fields
from mlgate.urls import is_loopback_host, safe_url

IDENTITIES = ("auto", "managed", "azure-pipelines", "github-oidc", "environment")
GITHUB_AUDIENCE = "api://AzureADTokenExchange"
PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
IMDS = "http://169.254.169.254"
LAST_TIME = 253402300799  # 9999-12-31T23:59:59Z
TIMEOUTS: dict[str, int] = {"connection_timeout": 10, "read_timeout": 30}
# Values the CI already treats as secret: never print them even by accident.
SECRET_VARIABLES = ("SYSTEM_ACCESSTOKEN", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "IDENTITY_HEADER", "MSI_SECRET")


class CredentialError(EvaluationError):
    """No usable credential, or the identity provider refused or answered out of shape (exit 3)."""


@dataclass(frozen=True)
class IdentityOptions:
    identity: str = "auto"
    client_id: str | None = None
    tenant_id: str | None = None
    service_connection_id: str | None = None


@dataclass(frozen=True)
class Choice:
    """The chosen credential, a description naming the identity, and why it was chosen."""

    kind: str
    credential: Any
    identity: str
    why: list[str] = field(default_factory=list)


def _var(env: Mapping[str, str], name: str) -> str:
    """The variable's value, ``""`` when unset."""
    return env.get(name) or ""


def _set(env: Mapping[str, str], *names: str) -> bool:
    """Every one of ``names`` is set to something."""
    return all(_var(env, name) for name in names)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = _var(env, name).strip()
        if value:
            return value
    return None


def _tenant(opts: IdentityOptions, env: Mapping[str, str], *extra: str) -> str | None:
    return opts.tenant_id or _first(env, "AZURE_TENANT_ID", *extra)


def _client(opts: IdentityOptions, env: Mapping[str, str], *extra: str) -> str | None:
    return opts.client_id or _first(env, "AZURE_CLIENT_ID", *extra)


def _authority_url(env: Mapping[str, str]) -> str:
    authority = _var(env, "AZURE_AUTHORITY_HOST").strip() or PUBLIC_AUTHORITY
    return authority if "://" in authority else f"https://{authority}"


def _managed_endpoint(env: Mapping[str, str]) -> str | None:
    if _set(env, "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        return "the App Service / Container Apps identity endpoint (IDENTITY_ENDPOINT)"
    if _set(env, "IDENTITY_ENDPOINT", "IMDS_ENDPOINT"):
        return "the Azure Arc identity endpoint (IDENTITY_ENDPOINT, IMDS_ENDPOINT)"
    if _set(env, "MSI_ENDPOINT"):
        return "the Azure ML / Cloud Shell identity endpoint (MSI_ENDPOINT)"
    return None


# -- the shape of identity answers -----------------------------------------------------------------------

def _check_seconds(answer: Fields, key: str) -> None:
    value = answer.raw(key)
    if value is None:
        return
    seconds = answer.integer(key)  # a number, or digits in a string (the managed-identity endpoints' form)
    if not 0 <= seconds <= LAST_TIME:
        raise CredentialError(f"{answer.where}: field {key}: a number of seconds out of range",
                              hint="the identity endpoint answered out of shape; check the endpoint variables")


def check_identity_answer(url: str, value: Any) -> None:
    """A 2xx answer of an identity endpoint: a token answer, an OIDC token or a discovery document."""
    path = urlsplit(url).path.rstrip("/")
    answer = Fields(value, f"the answer of the identity endpoint {safe_url(url)}", error=CredentialError)
    if path.endswith("/oidctoken"):  # Azure DevOps: the service connection's federated token
        answer.text("oidcToken")
    elif path.endswith("/openid-configuration"):
        answer.text("token_endpoint")
    elif path.endswith("/discovery/instance"):  # MSAL instance discovery
        answer.opt_text("tenant_discovery_endpoint")
    else:  # managed identity, IMDS, Arc, Entra ID's token endpoint
        if not answer.text("access_token"):
            answer.fail("access_token", "is empty")
        if not (answer.has("expires_on") or answer.has("expires_in")):
            answer.fail("expires_on", "missing (and no expires_in either)")
        for key in ("expires_on", "expires_in", "ext_expires_in", "refresh_in"):
            _check_seconds(answer, key)
        answer.opt_text("token_type")


def _oauth_error(status: int) -> bytes:
    """An OAuth-shaped error body in place of an unreadable one, so azure-identity and MSAL report it cleanly."""
    return json.dumps({"error": "invalid_response", "error_description": f"HTTP {status} with a body that is "
                       "not JSON (HTML or text) or beyond mlgate's bounds", "message": f"HTTP {status} with a "
                       "body that is not JSON"}).encode()


# -- one entry per identity kind -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """What building a credential needs: the options, the environment, the reasons collected so far."""

    opts: IdentityOptions
    env: Mapping[str, str]
    why: list[str]
    on_id_token: Callable[[str], None]
    msal: dict[str, bool]

    def transport(self, kind: IdentityKind) -> Any:
        from mlgate.secrets.azure_http import Guard, GuardedTransport

        guard = Guard.of("the identity endpoint", kind.endpoints(self.env, instance_discovery=not self.msal),
                         CredentialError, check_identity_answer, substitute=_oauth_error)
        return GuardedTransport(guard, **TIMEOUTS)


class IdentityKind(ABC):
    """One way to reach Entra ID: what it needs, when ``auto`` picks it, how it is built, where it may go."""

    name: ClassVar[str]
    uses_msal: ClassVar[bool] = False  # MSAL-based: instance discovery applies

    def needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        """What is missing for this kind in ``env`` (empty: usable)."""
        return []

    def auto_reason(self, opts: IdentityOptions, env: Mapping[str, str]) -> str | None:
        """Why ``auto`` picks this kind here, or ``None`` when it does not."""
        if self.needs(opts, env):
            return None
        return f"auto: chose {self.name}, the first option whose requirements this environment meets"

    def auto_needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        """What ``auto`` would need to pick this kind (said when nothing is available)."""
        return self.needs(opts, env)

    def endpoints(self, env: Mapping[str, str], *, instance_discovery: bool) -> list[str]:
        """The URLs (origins) this kind's credential may send requests to."""
        urls = [_authority_url(env)]
        if self.uses_msal and instance_discovery:
            urls.append(PUBLIC_AUTHORITY)  # MSAL asks the public cloud about an unknown authority
        return urls

    @abstractmethod
    def build(self, setup: Setup) -> Choice:
        """The credential, the identity it names, and why (appended to ``setup.why``)."""


class GitHubOidc(IdentityKind):
    name = "github-oidc"

    def needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        need = []
        if not _set(env, "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
            need.append("ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN (give the job `permissions: id-token: write`)")
        if not _tenant(opts, env):
            need.append("the tenant id (--tenant-id or AZURE_TENANT_ID)")
        if not _client(opts, env):
            need.append("the federated app's client id (--client-id or AZURE_CLIENT_ID)")
        return need

    def build(self, setup: Setup) -> Choice:
        from azure import identity

        env = setup.env
        tenant, client = _tenant(setup.opts, env), _client(setup.opts, env)
        assert tenant and client
        who = f"federated app {client} (tenant {tenant}) trusting this GitHub workflow"
        setup.why.append("ClientAssertionCredential: each Entra token request is signed with a fresh GitHub ID "
                         f"token (audience {GITHUB_AUDIENCE}) fetched from ACTIONS_ID_TOKEN_REQUEST_URL, so "
                         f"long jobs never present an expired one; identity: {who}")
        callback = GitHubIdToken(env["ACTIONS_ID_TOKEN_REQUEST_URL"], env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
                                 on_token=setup.on_id_token)
        credential = identity.ClientAssertionCredential(tenant, client, callback, transport=setup.transport(self),
                                                        **TIMEOUTS)
        return Choice(self.name, credential, who, setup.why)


class AzurePipelines(IdentityKind):
    name = "azure-pipelines"

    def needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        need = []
        if not _tenant(opts, env, "AZURESUBSCRIPTION_TENANT_ID"):
            need.append("the tenant id (--tenant-id, AZURE_TENANT_ID or AZURESUBSCRIPTION_TENANT_ID)")
        if not _client(opts, env, "AZURESUBSCRIPTION_CLIENT_ID"):
            need.append("the service connection's client id (--client-id, AZURE_CLIENT_ID or "
                        "AZURESUBSCRIPTION_CLIENT_ID)")
        if not (opts.service_connection_id or _first(env, "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")):
            need.append("the service connection id (--service-connection-id or "
                        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)")
        if not _set(env, "SYSTEM_ACCESSTOKEN"):
            need.append("SYSTEM_ACCESSTOKEN (map it: `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`)")
        if not _set(env, "SYSTEM_OIDCREQUESTURI"):
            need.append("SYSTEM_OIDCREQUESTURI (set by the Azure Pipelines agent)")
        return need

    def endpoints(self, env: Mapping[str, str], *, instance_discovery: bool) -> list[str]:
        return [*super().endpoints(env, instance_discovery=instance_discovery), _var(env, "SYSTEM_OIDCREQUESTURI")]

    def build(self, setup: Setup) -> Choice:
        from azure import identity

        opts, env = setup.opts, setup.env
        tenant = _tenant(opts, env, "AZURESUBSCRIPTION_TENANT_ID")
        client = _client(opts, env, "AZURESUBSCRIPTION_CLIENT_ID")
        connection = opts.service_connection_id or _first(env, "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
        assert tenant and client and connection
        who = f"app {client} of Azure DevOps service connection {connection} (tenant {tenant})"
        setup.why.append("AzurePipelinesCredential: the agent's OIDC token for the service connection "
                         "(SYSTEM_OIDCREQUESTURI, authorised by SYSTEM_ACCESSTOKEN) is exchanged for an Entra "
                         f"token of {who}; workload identity federation, no client secret")
        credential = identity.AzurePipelinesCredential(
            tenant_id=tenant, client_id=client, service_connection_id=connection,
            system_access_token=env["SYSTEM_ACCESSTOKEN"], transport=setup.transport(self), **TIMEOUTS,
        )
        return Choice(self.name, credential, who, setup.why)


class Environment(IdentityKind):
    name = "environment"
    uses_msal = True

    def needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        need = [name for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID") if not _set(env, name)]
        if not (_set(env, "AZURE_CLIENT_SECRET") or _set(env, "AZURE_CLIENT_CERTIFICATE_PATH")):
            need.append("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
        return need

    def build(self, setup: Setup) -> Choice:
        """The variables EnvironmentCredential reads, built explicitly from ``setup.env``."""
        from azure import identity

        env = setup.env
        tenant, client = env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"]
        who = f"service principal {client} (tenant {tenant})"
        if setup.msal:
            setup.why.append("loopback authority: MSAL instance discovery is off")
        transport = setup.transport(self)
        secret = _var(env, "AZURE_CLIENT_SECRET")
        if secret:
            setup.why.append(f"environment: {who} with the client secret in AZURE_CLIENT_SECRET; meant for local "
                             "runs (prefer managed or federated identity in pipelines)")
            credential: Any = identity.ClientSecretCredential(tenant, client, secret, transport=transport,
                                                                **TIMEOUTS, **setup.msal)
        else:
            setup.why.append(f"environment: {who} with the certificate in AZURE_CLIENT_CERTIFICATE_PATH; meant for "
                             "local runs (prefer managed or federated identity in pipelines)")
            credential = identity.CertificateCredential(
                tenant, client, env["AZURE_CLIENT_CERTIFICATE_PATH"],
                password=_var(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD") or None, transport=transport,
                **TIMEOUTS, **setup.msal,
            )
        return Choice(self.name, credential, who, setup.why)


class Managed(IdentityKind):
    name = "managed"

    def auto_reason(self, opts: IdentityOptions, env: Mapping[str, str]) -> str | None:
        endpoint = _managed_endpoint(env)
        return f"auto: chose managed identity through {endpoint}" if endpoint else None

    def auto_needs(self, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
        return ["a managed-identity endpoint variable; on an Azure VM or scale-set agent (IMDS) choose "
                "--identity managed explicitly"]

    def endpoints(self, env: Mapping[str, str], *, instance_discovery: bool) -> list[str]:
        local = [_var(env, name) for name in ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT", "MSI_ENDPOINT")]
        imds = _var(env, "AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS
        return [*super().endpoints(env, instance_discovery=instance_discovery), *local, imds]

    def build(self, setup: Setup) -> Choice:
        """IMDS needs nothing in the environment; it fails at the first token if unreachable."""
        from azure import identity

        endpoint = _managed_endpoint(setup.env) or "the VM instance metadata service (IMDS)"
        client_id = setup.opts.client_id
        who = f"user-assigned managed identity (client id {client_id})" if client_id else \
            "system-assigned managed identity of this agent"
        setup.why.append(f"ManagedIdentityCredential: the {who}, through {endpoint}; no secret is stored anywhere")
        credential = identity.ManagedIdentityCredential(client_id=client_id, transport=setup.transport(self),
                                                        connection_timeout=TIMEOUTS["connection_timeout"],
                                                        read_timeout=TIMEOUTS["read_timeout"])
        return Choice(self.name, credential, who, setup.why)


#: every identity kind, in the order ``auto`` tries them
KINDS: dict[str, IdentityKind] = {
    kind.name: kind for kind in (GitHubOidc(), AzurePipelines(), Environment(), Managed())
}


def missing_for(kind: str, opts: IdentityOptions, env: Mapping[str, str]) -> list[str]:
    """What is missing for ``kind`` in this environment (empty: usable)."""
    return KINDS[kind].needs(opts, env)


def no_credential_error(opts: IdentityOptions, env: Mapping[str, str], *, chosen: str | None = None) -> CredentialError:
    kinds = [KINDS[chosen]] if chosen else list(KINDS.values())
    lines = []
    for kind in kinds:
        need = kind.needs(opts, env) if chosen else kind.auto_needs(opts, env)
        lines.append(f"  --identity {kind.name}: needs " + "; ".join(need))
    what = f"--identity {chosen} cannot be used here" if chosen else "no Azure credential is available"
    return CredentialError(
        f"{what}:\n" + "\n".join(lines),
        hint="provide what the identity you mean to use needs (identifiers only: no secret is ever a flag)",
    )


# -- GitHub OIDC ---------------------------------------------------------------------------------------

def _with_audience(url: str, audience: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "audience"]
    query.append(("audience", audience))
    return urlunsplit(parts._replace(query=urlencode(query)))


class GitHubIdToken:
    """Assertion callback: a fresh GitHub Actions ID token for Entra ID on every call."""

    def __init__(self, request_url: str, request_token: str, *, on_token: Callable[[str], None],
                 audience: str = GITHUB_AUDIENCE) -> None:
        self._url = _with_audience(request_url, audience)
        self._request_token = request_token
        self._on_token = on_token
        self._session: Any = None
        self._lock = threading.Lock()
        self.calls = 0

    def __repr__(self) -> str:  # never show the request token
        return "GitHubIdToken(audience=...)"

    def __call__(self) -> str:
        import requests

        from mlgate.http import make_session

        with self._lock:
            if self._session is None:
                self._session = make_session(total_retries=3, retry_methods=frozenset({"GET"}))
            self.calls += 1
        try:
            response = self._session.get(
                self._url, stream=True,
                headers={"Authorization": f"bearer {self._request_token}", "Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise CredentialError(
                f"could not reach the GitHub ID token endpoint ({type(exc).__name__})",
                hint="the runner's ACTIONS_ID_TOKEN_REQUEST_URL must be reachable from this step",
            ) from None
        if response.status_code != 200:
            response.close()
            raise CredentialError(
                f"the GitHub ID token endpoint answered HTTP {response.status_code}",
                hint="give the job `permissions: id-token: write` and run it on a GitHub-hosted or "
                "self-hosted runner of this repository",
            )
        value = self._token_of(response)
        self._on_token(value)
        return value

    @staticmethod
    def _token_of(response: Any) -> str:
        from mlgate.jsonvalue import parse_json
        from mlgate.secrets.azure_http import read_answer

        what = f"the answer of the GitHub ID token endpoint {safe_url(response.url)}"
        try:
            body = parse_json(read_answer(response, what=what, error=CredentialError), what=what,
                              error=CredentialError)
        except ServiceResponseError:
            raise CredentialError(f"{what} was cut off", hint="retry the job") from None
        value = Fields(body, what, error=CredentialError).opt_text("value")
        if not value:
            raise CredentialError("the GitHub ID token endpoint answered without a token",
                                  hint="retry the job; if it persists, check the runner")
        return value


# -- observing tokens ------------------------------------------------------------------------------------

def token_claims(token: str) -> dict[str, str]:
    """The unverified string claims of a JWT access token (to *name* the identity in errors), or ``{}``."""
    from mlgate.errors import Error
    from mlgate.jsonvalue import parse_json

    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = parse_json(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)), what="token")
    except (Error, ValueError, binascii.Error):
        return {}
    if not isinstance(payload, dict):
        return {}
    return {key: value for key, value in payload.items() if isinstance(value, str)}


@contextlib.contextmanager
def _unreachable_identity() -> Iterator[None]:
    """An identity endpoint that cannot be reached is named as such, not as the vault."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise CredentialError(
            f"could not reach the identity endpoint to get an Azure token ({type(exc).__name__})",
            hint="check that the agent's managed identity / token endpoint is up and reachable "
            "(IDENTITY_ENDPOINT, IMDS, or the OIDC token URL); nothing was fetched",
        ) from None


class ObservedCredential:
    """Wraps a credential: registers every access token for redaction and remembers who it names."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.claims: dict[str, str] = {}
        self.tokens = 0
        self._lock = threading.Lock()

    def _seen(self, token: str) -> None:
        redact.register(token)
        claims = token_claims(token)
        with self._lock:
            self.tokens += 1
            if claims:
                self.claims = claims

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        with _unreachable_identity():
            result = self._inner.get_token(*scopes, **kwargs)
        self._seen(result.token)
        return result

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        if not hasattr(self._inner, "get_token_info"):
            from azure.core.credentials import AccessTokenInfo

            opts = dict(options or {})
            token = self.get_token(*scopes, claims=opts.get("claims"), tenant_id=opts.get("tenant_id"),
                                   enable_cae=bool(opts.get("enable_cae", False)))
            return AccessTokenInfo(token.token, token.expires_on)
        with _unreachable_identity():
            result = self._inner.get_token_info(*scopes, options=options)
        self._seen(result.token)
        return result

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    def who(self) -> str | None:
        """``appid=...;oid=...`` of the identity the last token was issued to, if the token says."""
        bits = [f"{key}={self.claims[key]}" for key in ("appid", "oid") if self.claims.get(key)]
        return ";".join(bits) or None


# -- choosing ---------------------------------------------------------------------------------------------

def _auto(opts: IdentityOptions, env: Mapping[str, str]) -> tuple[str, str]:
    for kind in KINDS.values():
        reason = kind.auto_reason(opts, env)
        if reason:
            return kind.name, reason
    raise no_credential_error(opts, env)


def _msal_options(env: Mapping[str, str], why: list[str]) -> dict[str, bool]:
    authority = _var(env, "AZURE_AUTHORITY_HOST")
    if not authority:
        return {}
    why.append(f"Entra ID authority from AZURE_AUTHORITY_HOST: {safe_url(authority)}")
    host = urlsplit(_authority_url(env)).hostname or ""
    # Instance discovery asks the public cloud whether an authority is known; a loopback emulator
    # never is. Only loopback authorities skip it, like Key Vault's challenge check.
    return {"disable_instance_discovery": True} if is_loopback_host(host) else {}


def choose(opts: IdentityOptions, environ: Mapping[str, str] | None = None, *,
           on_id_token: Callable[[str], None] = lambda _t: None) -> Choice:
    """Build the credential for ``opts.identity`` (``auto``: detect it); never reads a secret from argv."""
    env = dict(os.environ if environ is None else environ)
    if opts.identity not in IDENTITIES:
        raise CredentialError(f"unknown identity {opts.identity!r}", hint="use one of: " + ", ".join(IDENTITIES))
    why: list[str] = []
    name = opts.identity
    if name == "auto":
        name, reason = _auto(opts, env)
        why.append(reason)
    elif missing_for(name, opts, env):
        raise no_credential_error(opts, env, chosen=name)
    for variable in SECRET_VARIABLES:
        if _set(env, variable):
            redact.register(env[variable])
    kind = KINDS[name]
    msal = _msal_options(env, why)
    try:
        return kind.build(Setup(opts, env, why, on_id_token, msal if kind.uses_msal else {}))
    except ValueError as exc:  # azure-identity validates ids and authority URLs
        raise CredentialError(f"cannot set up the {name} credential: {exc}",
                              hint="check --tenant-id/--client-id and AZURE_AUTHORITY_HOST") from None
