"""Hostile corpus for `mlgate secrets`: Key Vault and the identity endpoints answering as an attacker would.

The real azure-keyvault-secrets and azure-identity SDKs run against the loopback TLS fakes of
``tests/integration/secrets``; :attr:`FakeAzure.hostile` replaces one answer at a time (wrong
types, HTML, deep JSON, huge numbers, redirects and next links to another origin, throttling,
trickling, ...). Every case plants a canary secret value and a canary password and asserts the
exact exit code, what the error says, and that no canary, traceback or "internal error" reaches
stdout, stderr or any file written; nothing is handed over and the other origin (``evil_url``)
never receives a request.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.secrets.fake_azure import FakeAzure, Hit, Hostile, Raw
from tests.integration.secrets.helpers import (
    environment_env,
    github_oidc_env,
    github_runner,
    managed_env,
    pipelines_env,
)

pytestmark = pytest.mark.integration

Factory = Callable[[FakeAzure, str], Hostile]


# -- fixtures (the fake of tests/integration/secrets, shared through its conftest's definitions) --------------

@pytest.fixture(scope="module")
def _fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAzure, Path]]:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    fake = FakeAzure(folder / "server.pem")
    yield fake, folder / "ca.pem"
    fake.close()


@pytest.fixture
def azure(_fake: tuple[FakeAzure, Path], monkeypatch: pytest.MonkeyPatch) -> FakeAzure:
    from azure.keyvault.secrets._shared import http_challenge_cache

    from tests.integration.secrets.conftest import CLEARED

    fake, bundle = _fake
    fake.reset()
    http_challenge_cache.clear()
    for name in [*CLEARED, *(n for n in os.environ if n.startswith("MLGATE_"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    # Keep the corpus fast: one retry, a short answer clock, a short listing.
    monkeypatch.setattr("mlgate.secrets.keyvault.RETRIES", 1)
    monkeypatch.setattr("mlgate.secrets.keyvault.MAX_LIST_PAGES", 5)
    monkeypatch.setattr("mlgate.secrets.keyvault.READ_TIMEOUT", 1)
    monkeypatch.setattr("mlgate.secrets.azure_http.ANSWER_SECONDS", 1.0)
    return fake


# -- hostile answers ---------------------------------------------------------------------------------------

def _body(payload: object) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _is_vault(hit: Hit, path: str | None) -> bool:
    return hit.server == "vault" and "authorization" in hit.headers and (
        path is None or hit.path.rstrip("/") == path)


def vault(payload: Callable[[FakeAzure, str], object] | object, status: int = 200, *, path: str | None = None,
          headers: dict[str, str] | Callable[[FakeAzure], dict[str, str]] | None = None,
          content_type: str = "application/json",
          trickle: float = 0.0) -> Factory:
    """Key Vault answers ``payload`` (bytes, a JSON value, or a function of the fake and the canary)."""

    def factory(fake: FakeAzure, canary: str) -> Hostile:
        def hostile(hit: Hit) -> Raw | None:
            if not _is_vault(hit, path):
                return None
            value = payload(fake, canary) if callable(payload) else payload
            extra = headers(fake) if callable(headers) else dict(headers or {})
            return Raw(status, _body(value), extra, content_type, trickle)
        return hostile
    return factory


def bundle(value: object, **attributes: object) -> Callable[[FakeAzure, str], object]:
    """A secret bundle for secret ``a`` whose value is ``value`` (``CANARY`` inside it is replaced)."""

    def build(fake: FakeAzure, canary: str) -> object:
        text = json.dumps(value).replace("CANARY", canary)
        return {"value": json.loads(text), "id": f"{fake.vault_url}/secrets/a/1",
                "attributes": {"enabled": True, **attributes}}
    return build


def page(items: object = (), next_link: Callable[[FakeAzure], str | None] = lambda _f: None) -> Callable[
        [FakeAzure, str], object]:
    def build(fake: FakeAzure, _canary: str) -> object:
        return {"value": items if not isinstance(items, tuple) else list(items), "nextLink": next_link(fake)}
    return build


def pages_forever() -> Factory:
    def factory(fake: FakeAzure, _canary: str) -> Hostile:
        def hostile(hit: Hit) -> Raw | None:
            if not _is_vault(hit, "/secrets"):
                return None
            token = uuid.uuid4().hex
            return Raw(200, _body({"value": [], "nextLink": f"{fake.vault_url}/secrets?api-version=7.5&$skiptoken="
                                                             f"{token}"}))
        return hostile
    return factory


def stall(fake: FakeAzure, seconds: float) -> Hostile:
    """The vault accepts the request and says nothing for ``seconds``."""

    def hostile(hit: Hit) -> Raw | None:
        if _is_vault(hit, None):
            time.sleep(seconds)
        return None
    return hostile


def login(match: Callable[[Hit], bool], payload: object, status: int = 200, *,
          headers: Callable[[FakeAzure], dict[str, str]] | None = None,
          content_type: str = "application/json") -> Factory:
    """An identity endpoint (``match``) answers ``payload``."""

    def factory(fake: FakeAzure, canary: str) -> Hostile:
        def hostile(hit: Hit) -> Raw | None:
            if hit.server != "login" or not match(hit):
                return None
            text = _body(payload).replace(b"CANARY", canary.encode())
            return Raw(status, text, headers(fake) if headers else {}, content_type)
        return hostile
    return factory


def msi(hit: Hit) -> bool:
    return hit.path == "/msi/token"


def entra_token(hit: Hit) -> bool:
    return hit.path.endswith("/oauth2/v2.0/token")


def discovery(hit: Hit) -> bool:
    return hit.path.endswith("/openid-configuration")


def oidc(hit: Hit) -> bool:
    return hit.path.endswith("/oidctoken")


def github_id(hit: Hit) -> bool:
    return hit.path.endswith("/idtoken")


def to_evil(path: str) -> Callable[[FakeAzure], dict[str, str]]:
    return lambda fake: {"Location": f"{fake.evil_url}{path}"}


HTML = b"<!DOCTYPE html><html><body><h1>Sign in</h1>CANARY</body></html>"
TOKEN_LATER = "1999999999"


# -- the corpus --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SecretsCase:
    id: str
    code: int
    says: tuple[str, ...]
    hostile: Factory | None = None
    identity: str = "managed"
    secrets: str = "a"
    vault: Callable[[FakeAzure, str], str] | None = None  # (fake, canary password) -> --vault
    extra: tuple[str, ...] = field(default=())


SHAPE = "field value: expected a string"
CASES = [
    # a secret value that is not text is never handed over
    SecretsCase("value-object", 3, ("secret 'a'", SHAPE, "got an object"), vault(bundle({"x": "CANARY"}))),
    SecretsCase("value-number", 3, ("secret 'a'", SHAPE, "got a number"), vault(bundle(12345))),
    SecretsCase("value-null", 3, ("secret 'a'", SHAPE, "got null"), vault(bundle(None))),
    SecretsCase("value-list", 3, ("secret 'a'", SHAPE, "got a list"), vault(bundle(["CANARY"]))),
    SecretsCase("value-boolean", 3, ("secret 'a'", SHAPE, "got a boolean"), vault(bundle(True))),
    SecretsCase("exp-soon", 3, ("field attributes.exp", "seconds since 1970"), vault(bundle("CANARY", exp="soon"))),
    SecretsCase("exp-negative", 3, ("field attributes.exp", "out of range"), vault(bundle("CANARY", exp=-5))),
    SecretsCase("nbf-float", 3, ("field attributes.nbf",), vault(bundle("CANARY", nbf=1.5e300))),
    SecretsCase("enabled-text", 3, ("field attributes.enabled", "expected a boolean"),
                vault(bundle("CANARY", enabled="yes"))),
    SecretsCase("bundle-not-object", 3, ("field (top level): expected an object",), vault(["CANARY"])),
    # garbage instead of JSON
    SecretsCase("vault-html", 3, ("Key Vault", "HTML or text, not JSON"),
                vault(HTML, content_type="text/html")),
    SecretsCase("vault-truncated", 3, ("not valid JSON",), vault(b'{"value": "CANARY", "attr')),
    SecretsCase("vault-deep", 3, ("nested deeper than 64 levels",), vault(deep(200_000))),
    SecretsCase("vault-5000-digits", 3, ("5000 digits",), vault(b'{"value": "x", "attributes": {"exp": '
                                                                 + b"9" * 5000 + b"}}")),
    SecretsCase("vault-huge", 3, ("(limit)", "bytes"), vault({"value": "x" * (2 << 20)})),
    SecretsCase("vault-silent", 3, ("could not reach Key Vault", "Timeout"), hostile=lambda fake, _c: stall(fake, 3)),
    SecretsCase("vault-trickle", 3, ("took more than", "trickling"),
                vault({"value": "CANARY", "pad": "x" * 200}, trickle=0.02)),
    # another origin never gets a request
    SecretsCase("vault-302-off-origin", 3, ("redirecting to another origin", "not followed"),
                vault(b"", 302, headers=to_evil("/secrets/a"))),
    SecretsCase("vault-307-loop-same-origin", 3, ("redirected the request for secret 'a' more than 5 times",),
                vault(b"", 307, headers=lambda f: {"Location": f"{f.vault_url}/secrets/a"})),
    SecretsCase("vault-list-nextlink-off-origin", 3, ("field nextLink points to another origin", "not followed"),
                vault(page(next_link=lambda f: f"{f.evil_url}/secrets?api-version=7.5"), path="/secrets"),
                secrets="*"),
    SecretsCase("vault-list-nextlink-repeated", 3, ("repeats a next link",),
                vault(page(next_link=lambda f: f"{f.vault_url}/secrets?api-version=7.5&$skiptoken=1"),
                      path="/secrets"), secrets="*"),
    SecretsCase("vault-list-endless", 3, ("runs past 5 pages (limit)",), pages_forever(), secrets="*"),
    SecretsCase("vault-list-bad-id", 3, ("field value[0].id", "not a Key Vault secret identifier"),
                vault(page([{"id": "CANARY", "attributes": {}}]), path="/secrets"), secrets="*"),
    SecretsCase("vault-list-not-a-list", 3, ("field value: expected a list",),
                vault(page({"a": 1}), path="/secrets"), secrets="*"),
    # refusals and throttling
    SecretsCase("vault-401-always", 3, ("did not accept the token",),
                vault({"error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer."}}, 401)),
    SecretsCase("vault-403-html", 3, ("may not get secret 'a'",), vault(HTML, 403, content_type="text/html")),
    SecretsCase("vault-403-deep-error", 3, ("may not get secret 'a'",), vault(deep(100_000), 403)),
    SecretsCase("vault-429-retry-after", 3, ("kept throttling", "HTTP 429"),
                vault({"error": {"code": "Throttled", "message": "CANARY"}}, 429, headers={"Retry-After": "0.1"})),
    SecretsCase("vault-429-retry-after-huge", 3, ("Retry-After 3600 s",),
                vault({"error": {"code": "Throttled"}}, 429, headers={"Retry-After": "3600"})),
    SecretsCase("vault-429-retry-after-garbage", 3, ("HTTP 429",),
                vault({"error": {"code": "Throttled"}}, 429, headers={"Retry-After": "soon"})),
    SecretsCase("vault-500", 3, ("answered HTTP 500",), vault({"error": {"code": "InternalError"}}, 500)),
    SecretsCase("vault-502-html", 3, ("answered HTTP 502",), vault(HTML, 502, content_type="text/html")),
    # the managed-identity endpoint
    SecretsCase("msi-html", 3, ("identity endpoint", "HTML or text, not JSON"),
                login(msi, HTML, content_type="text/html")),
    SecretsCase("msi-expires-soon", 3, ("identity endpoint", "field expires_on"),
                login(msi, {"access_token": "CANARY", "expires_on": "soon"})),
    SecretsCase("msi-expires-negative", 3, ("field expires_on",),
                login(msi, {"access_token": "CANARY", "expires_on": -60})),
    SecretsCase("msi-expires-huge", 3, ("field expires_on",),
                login(msi, {"access_token": "CANARY", "expires_on": "9" * 5000})),
    SecretsCase("msi-no-access-token", 3, ("field access_token", "got null"), login(msi, {"expires_on": TOKEN_LATER})),
    SecretsCase("msi-access-token-object", 3, ("field access_token", "got an object"),
                login(msi, {"access_token": {"t": "CANARY"}, "expires_on": TOKEN_LATER})),
    SecretsCase("msi-no-expiry", 3, ("field expires_on", "missing"), login(msi, {"access_token": "CANARY"})),
    SecretsCase("msi-deep", 3, ("identity endpoint", "nested deeper than 64 levels"), login(msi, deep(200_000))),
    SecretsCase("msi-5000-digits", 3, ("5000 digits",),
                login(msi, b'{"access_token": "x", "expires_on": ' + b"1" * 5000 + b"}")),
    SecretsCase("msi-302-off-origin", 3, ("redirecting to", "another origin", "not followed"),
                login(msi, b"", 302, headers=to_evil("/msi/token"))),
    SecretsCase("msi-huge", 3, ("(limit)",), login(msi, {"access_token": "x" * (2 << 20), "expires_on": TOKEN_LATER})),
    SecretsCase("msi-400-html", 3, ("could not get an Azure token",), login(msi, HTML, 400, content_type="text/html")),
    # Entra ID's token endpoint and discovery (environment identity, client secret = the canary password)
    SecretsCase("entra-token-html", 3, ("identity endpoint", "HTML or text, not JSON"),
                login(entra_token, HTML, content_type="text/html"), identity="environment"),
    SecretsCase("entra-expires-in-soon", 3, ("field expires_in",),
                login(entra_token, {"access_token": "CANARY", "expires_in": "soon", "token_type": "Bearer"}),
                identity="environment"),
    SecretsCase("entra-no-access-token", 3, ("field access_token",),
                login(entra_token, {"token_type": "Bearer", "expires_in": 3599}), identity="environment"),
    SecretsCase("entra-discovery-off-origin", 3, ("another origin", "no token was sent"),
                lambda fake, canary: login(discovery, {
                    "issuer": f"{fake.login_url}/{fake.tenant}/v2.0",
                    "token_endpoint": f"{fake.evil_url}/{fake.tenant}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{fake.evil_url}/authorize"})(fake, canary),
                identity="environment"),
    # Azure DevOps' OIDC token and GitHub's ID token
    SecretsCase("pipelines-oidc-token-number", 3, ("field oidcToken", "expected a string"),
                login(oidc, {"oidcToken": 42}), identity="azure-pipelines"),
    SecretsCase("pipelines-oidc-html", 3, ("HTML or text, not JSON",),
                login(oidc, HTML, content_type="text/html"), identity="azure-pipelines"),
    SecretsCase("github-id-token-html", 3, ("GitHub ID token endpoint", "HTML or text, not JSON"),
                login(github_id, HTML, content_type="text/html"), identity="github-oidc"),
    SecretsCase("github-id-token-object", 3, ("field value", "expected a string"),
                login(github_id, {"value": {"t": "CANARY"}}), identity="github-oidc"),
    SecretsCase("github-id-token-302-off-origin", 3, ("another origin", "not followed"),
                login(github_id, b"", 302, headers=to_evil("/github/idtoken")), identity="github-oidc"),
    # credentials in --vault are refused and never echoed
    SecretsCase("vault-url-user-password", 3, ("user name or password (not shown)",),
                vault=lambda f, pw: f.vault_url.replace("https://", f"https://user:{pw}@")),
    SecretsCase("vault-url-password-only", 3, ("user name or password (not shown)",),
                vault=lambda f, pw: f.vault_url.replace("https://", f"https://:{pw}@")),
    SecretsCase("vault-url-sas-query", 3, ("query string or fragment (not shown",),
                vault=lambda f, pw: f"{f.vault_url}/?sv=2024-01-01&sig={pw}"),
    SecretsCase("vault-url-fragment", 3, ("query string or fragment",), vault=lambda f, pw: f"{f.vault_url}#{pw}"),
    SecretsCase("vault-url-http-with-password", 3, ("user name or password",),
                vault=lambda f, pw: f"http://admin:{pw}@kv.vault.azure.net"),
    SecretsCase("vault-url-bad-port-with-password", 3, ("does not parse",),
                vault=lambda f, pw: f"https://admin:{pw}@kv.vault.azure.net:99999"),
    SecretsCase("vault-name-with-password", 3, ("invalid Key Vault name",), vault=lambda f, pw: f"admin:{pw}@kv"),
]

IDENTITY_ENV: dict[str, Callable[[FakeAzure, str], dict[str, str]]] = {
    "managed": lambda fake, _pw: managed_env(fake),
    "environment": environment_env,
    "azure-pipelines": lambda fake, _pw: pipelines_env(fake),
    "github-oidc": lambda fake, _pw: github_oidc_env(fake),
}


def _prepare(case: SecretsCase, fake: FakeAzure, tmp_path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    secret, password = f"canary-secret-{uuid.uuid4().hex}", f"canary-pw-{uuid.uuid4().hex}"
    fake.add_secret("a", secret)
    fake.add_secret("b", secret + "-b")
    env = {**IDENTITY_ENV[case.identity](fake, password), **github_runner(tmp_path)}
    fake.hostile = case.hostile(fake, secret) if case.hostile else None
    vault_arg = case.vault(fake, password) if case.vault else fake.vault_url
    argv = ["secrets", "--vault", vault_arg, "--secrets", case.secrets, "--identity", case.identity, *case.extra]
    canaries = [secret, password, fake.identity_header, fake.github_request_token, fake.system_access_token]
    return argv, env, canaries


def _check(case: SecretsCase, fake: FakeAzure, tmp_path: Path, code: int, output: str, canaries: list[str]) -> None:
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}:\n{output}"
    # Values fetched before a failure are masked first: the mask command is the one place they may appear.
    shown = "\n".join(line for line in output.splitlines() if not line.startswith("::add-mask::"))
    check_output(shown, canaries=[*canaries, *fake.access_tokens], says=case.says)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            check_output(text, canaries=canaries)
            if path.name.startswith("runner-github_"):
                assert "canary" not in text and "<<" not in text, f"{case.id}: something was handed over"
    assert fake.count("evil") == 0, f"{case.id}: a request went to another origin: {fake.hits}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_secrets(case: SecretsCase, azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    argv, env, canaries = _prepare(case, azure, tmp_path)
    code, output = run_in_process(argv, capsys, monkeypatch, env=env)
    _check(case, azure, tmp_path, code, output, canaries)


VERBOSE = ("value-object", "vault-list-nextlink-off-origin", "msi-302-off-origin", "vault-url-user-password",
           "vault-url-sas-query", "entra-discovery-off-origin")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in VERBOSE], ids=lambda c: str(c.id))
def test_hostile_secrets_at_debug_level(case: SecretsCase, azure: FakeAzure, tmp_path: Path) -> None:
    """The same answers with ``-vv`` in a real process: azure-core's request logs show no canary either.

    At -vv azure-identity logs the exception it re-raises with its traceback (its debug design);
    everything else holds: the exit code, the message, no canary, no "internal error".
    """
    import mlgate

    argv, env, canaries = _prepare(case, azure, tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(mlgate.__file__).resolve().parents[1]),
                                         os.environ.get("PYTHONPATH", "")])
    env["HOME"] = str(tmp_path)
    code, output = run_process([*argv, "-vv"], env=env)
    assert code == case.code, output
    assert "DEBUG " in output or case.vault is not None, "-vv printed no debug log"
    logged = output.replace("Traceback (most recent call last)", "(a logged traceback)")
    check_output(logged, canaries=[*canaries, *azure.access_tokens], says=case.says)
    assert azure.count("evil") == 0


def test_corpus_size() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
