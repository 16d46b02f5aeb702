"""Offline pieces of `mlgate secrets`: name mapping, vault parsing, credential choice, log redaction."""

from __future__ import annotations

import logging
import re

import pytest
import responses

from mlgate import redact
from mlgate.redact import RedactingFilter
from mlgate.secrets import credentials
from mlgate.secrets.credentials import CredentialError, GitHubIdToken, IdentityOptions, choose, missing_for
from mlgate.secrets.keyvault import is_loopback_host, parse_vault
from mlgate.secrets.names import SecretNameError, default_variable, parse_selection, resolve


@pytest.mark.parametrize(("name", "variable"), [("db-password", "DB_PASSWORD"), ("ApiKey", "APIKEY"),
                                                 ("a-b-c", "A_B_C")])
def test_default_variable(name: str, variable: str) -> None:
    assert default_variable(name) == variable


def test_selection_names_and_overrides() -> None:
    sel = parse_selection(" db-password , api-key:API ")
    assert not sel.all
    assert [(s.name, s.variable) for s in resolve(sel)] == [("db-password", "DB_PASSWORD"), ("api-key", "API")]


def test_selection_star_with_override() -> None:
    sel = parse_selection("*,db-password:PGPASSWORD")
    assert sel.all
    specs = resolve(sel, ["db-password", "other"])
    assert [(s.name, s.variable) for s in specs] == [("db-password", "PGPASSWORD"), ("other", "OTHER")]
    with pytest.raises(SecretNameError, match="no such enabled"):
        resolve(sel, ["other"])


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"), ("a,,b", "entry 2 of --secrets is empty"), ("a_b", "entry 1"), ("a,A", "listed twice"),
    ("a:", "invalid variable name"), ("a:9x", "invalid variable name"), ("*,a", "needs an override"),
    ("x" * 128, "invalid Key Vault secret name"),
])
def test_selection_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(SecretNameError, match=message):
        parse_selection(text)


def test_resolve_rejects_collisions_and_bad_variables() -> None:
    with pytest.raises(SecretNameError, match="both be handed over as A_B"):
        resolve(parse_selection("a-b,c:A_B"))
    with pytest.raises(SecretNameError, match="not a valid variable name"):
        resolve(parse_selection("*"), ["1password"])


def test_secret_name_errors_exit_3() -> None:
    assert SecretNameError("x").exit_code == 3


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST.", True), ("128.0.0.1", False), ("myvault.vault.azure.net", False), ("localhost.evil.example", False),
    ("10.0.0.1", False),
])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_parse_vault() -> None:
    v = parse_vault("My-Vault1")
    assert (v.url, v.loopback, v.name) == ("https://my-vault1.vault.azure.net", False, "my-vault1")
    v = parse_vault("https://kv.vault.usgovcloudapi.net/")
    assert (v.url, v.loopback) == ("https://kv.vault.usgovcloudapi.net", False)
    v = parse_vault("https://127.0.0.1:8443")
    assert (v.url, v.loopback) == ("https://127.0.0.1:8443", True)
    v = parse_vault("https://[::1]:8443")
    assert v.loopback


def test_non_loopback_vault_keeps_challenge_verification() -> None:
    from mlgate.secrets.credentials import ObservedCredential
    from mlgate.secrets.keyvault import KeyVaultSecrets

    for url, verify in (("https://kv.vault.azure.net", True), ("https://127.0.0.1:8443", False)):
        kv = KeyVaultSecrets(parse_vault(url), ObservedCredential(object()), identity="x")
        policy = kv._client._client._config.authentication_policy
        assert policy._verify_challenge_resource is verify
        kv.close()


@pytest.mark.parametrize("value", ["ab", "x" * 25, "http://kv.vault.azure.net", "https://kv.vault.azure.net/x",
                                   "https://kv.vault.azure.net?a=b", "-bad"])
def test_parse_vault_errors(value: str) -> None:
    from mlgate.errors import UsageError

    with pytest.raises(UsageError):
        parse_vault(value)


def test_missing_for_each_identity() -> None:
    opts = IdentityOptions()
    assert any("id-token: write" in m for m in missing_for("github-oidc", opts, {}))
    assert missing_for("github-oidc", IdentityOptions(tenant_id="t", client_id="c"),
                       {"ACTIONS_ID_TOKEN_REQUEST_URL": "u", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}) == []
    need = missing_for("azure-pipelines", opts, {})
    assert len(need) == 5 and any("System.AccessToken" in m for m in need)
    assert missing_for("azure-pipelines", opts, {
        "AZURESUBSCRIPTION_TENANT_ID": "t", "AZURESUBSCRIPTION_CLIENT_ID": "c",
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "s", "SYSTEM_ACCESSTOKEN": "x", "SYSTEM_OIDCREQUESTURI": "u"}) == []
    assert len(missing_for("environment", opts, {})) == 3
    assert missing_for("managed", opts, {}) == []


def test_auto_order_prefers_federation() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://t/x?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "rt",
           "AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "c",
           "AZURE_CLIENT_SECRET": "s", "IDENTITY_ENDPOINT": "https://x", "IDENTITY_HEADER": "h"}
    assert choose(IdentityOptions(), env).kind == "github-oidc"
    del env["ACTIONS_ID_TOKEN_REQUEST_URL"]
    assert choose(IdentityOptions(), env).kind == "environment"
    del env["AZURE_CLIENT_SECRET"]
    choice = choose(IdentityOptions(), env)
    assert choice.kind == "managed"
    assert any("IDENTITY_ENDPOINT" in w for w in choice.why)


def test_auto_without_anything_fails_with_every_option() -> None:
    with pytest.raises(CredentialError) as info:
        choose(IdentityOptions(), {})
    text = info.value.diagnostics()
    for kind in ("github-oidc", "azure-pipelines", "environment", "managed"):
        assert f"--identity {kind}" in text
    assert info.value.exit_code == 3


def test_explicit_managed_needs_no_environment() -> None:
    choice = choose(IdentityOptions(identity="managed", client_id="cid"), {})
    assert choice.identity == "user-assigned managed identity (client id cid)"
    assert any("IMDS" in w for w in choice.why)


def test_env_secrets_registered_for_redaction() -> None:
    env = {"AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "c",
           "AZURE_CLIENT_SECRET": "very-secret-sp-value"}
    choose(IdentityOptions(identity="environment"), env)
    assert redact.redact("x very-secret-sp-value y") == "x *** y"


def test_loopback_authority_disables_instance_discovery_only_there() -> None:
    env = {"AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "c",
           "AZURE_CLIENT_SECRET": "s", "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9"}
    assert any("instance discovery is off" in w for w in choose(IdentityOptions(), env).why)
    env["AZURE_AUTHORITY_HOST"] = "https://login.microsoftonline.us"
    assert not any("instance discovery" in w for w in choose(IdentityOptions(), env).why)


@responses.activate
def test_github_id_token_fresh_each_call_with_audience() -> None:
    url = "https://runner.example/_apis/idtoken?api-version=2.0"
    responses.get(url.split("?")[0], json={"value": "tok-1"})
    responses.get(url.split("?")[0], json={"value": "tok-2"})
    seen: list[str] = []
    callback = GitHubIdToken(url, "request-token", on_token=seen.append)
    assert callback() == "tok-1"
    assert callback() == "tok-2"
    assert seen == ["tok-1", "tok-2"]
    for call in responses.calls:
        assert "audience=api%3A%2F%2FAzureADTokenExchange" in call.request.url
        assert "api-version=2.0" in call.request.url
        assert call.request.headers["Authorization"] == "bearer request-token"
    assert "request-token" not in repr(callback)


@responses.activate
@pytest.mark.parametrize(("status", "body", "message"), [
    (403, {"message": "no"}, "HTTP 403"), (200, {"nope": 1}, "without a token"), (200, {"value": ""}, "without"),
])
def test_github_id_token_errors(status: int, body: dict[str, object], message: str) -> None:
    url = "https://runner.example/idtoken?api-version=2.0"
    responses.get(url.split("?")[0], json=body, status=status)
    with pytest.raises(CredentialError, match=message):
        GitHubIdToken(url, "rt", on_token=lambda _t: None)()


def test_token_claims_tolerates_opaque_tokens() -> None:
    assert credentials.token_claims("opaque") == {}
    assert credentials.token_claims("a.!!!.c") == {}


def test_log_records_are_redacted() -> None:
    redact.register("hunter2-secret")
    record = logging.LogRecord("azure", logging.DEBUG, __file__, 1, "token=%s", ("hunter2-secret",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "token=***"


def test_server_text_cannot_become_a_logging_command() -> None:
    from mlgate.secrets.keyvault import _short

    text = _short("bad\r\n##vso[task.setvariable variable=X]1 ##[error]x")
    assert "##vso[" not in text and "##[" not in text and "\n" not in text
    assert _short("x" * 400).endswith("...") and len(_short("x" * 400)) == 300


class _Response:
    """The parts of an azure-core HTTP response that HttpResponseError reads."""

    def __init__(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
        import json

        self.status_code = status
        self.reason = "reason"
        self.headers = headers or {}
        self.request = None
        self._body = json.dumps(body)
        self.content_type = "application/json"

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def body(self) -> bytes:
        return self._body.encode()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"error": {"code": "BadParameter", "message": "The request URI contains an invalid name: a_b"}},
     "rejected the name"),
    (500, {"error": {"code": "InternalServerError", "message": "boom"}}, "answered HTTP 500"),
    (403, {"error": {"code": "Forbidden", "message": "x", "innererror": {"code": "ForbiddenByConnection"}}},
     "firewall"),
    (401, {"error": {"code": "Unauthorized", "message": "AKV10032: Invalid issuer."}}, "did not accept the token"),
])
def test_translate_documented_error_bodies(status: int, body: dict[str, object], expected: str) -> None:
    from azure.core.exceptions import HttpResponseError

    from mlgate.secrets.credentials import ObservedCredential
    from mlgate.secrets.keyvault import KeyVaultError, KeyVaultSecrets

    kv = KeyVaultSecrets(parse_vault("https://kv.vault.azure.net"), ObservedCredential(object()), identity="me")
    try:
        error = kv.translate(HttpResponseError(response=_Response(status, body)), name="a", operation="get")
    finally:
        kv.close()
    assert isinstance(error, KeyVaultError)
    assert expected in error.message
    assert error.exit_code == 3


# -- identity kinds as one table ------------------------------------------------------------------------------

def test_identity_kinds_are_one_table_in_auto_order() -> None:
    assert list(credentials.KINDS) == ["github-oidc", "azure-pipelines", "environment", "managed"]
    assert set(credentials.KINDS) == set(credentials.IDENTITIES) - {"auto"}
    for name, kind in credentials.KINDS.items():
        assert kind.name == name
        assert missing_for(name, IdentityOptions(), {}) == kind.needs(IdentityOptions(), {})


@pytest.mark.parametrize(("identity", "env", "said"), [
    ("environment", {"AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "c",
                     "AZURE_CLIENT_SECRET": "s"}, True),
    ("github-oidc", {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://t/x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "rt",
                     "AZURE_TENANT_ID": "72f988bf-0000-4000-8000-00000000aaaa", "AZURE_CLIENT_ID": "c"}, False),
    ("managed", {}, False),
])
def test_instance_discovery_message_only_where_msal_is_used(identity: str, env: dict[str, str], said: bool) -> None:
    env = {**env, "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9"}
    why = choose(IdentityOptions(identity=identity), env).why
    assert any("MSAL instance discovery is off" in w for w in why) is said
    assert any("AZURE_AUTHORITY_HOST" in w for w in why)


def test_each_kind_may_talk_only_to_its_own_endpoints() -> None:
    from mlgate.http import origin

    env = {"IDENTITY_ENDPOINT": "http://127.0.0.1:41000/msi/token", "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/x",
           "AZURE_AUTHORITY_HOST": "login.microsoftonline.us"}
    managed = {origin(u) for u in credentials.KINDS["managed"].endpoints(env, instance_discovery=True) if u}
    assert managed == {origin("http://127.0.0.1:41000"), origin(credentials.IMDS),
                       origin("https://login.microsoftonline.us")}
    pipelines = {origin(u) for u in credentials.KINDS["azure-pipelines"].endpoints(env, instance_discovery=True)}
    assert origin("https://dev.azure.com") in pipelines and origin(credentials.IMDS) not in pipelines
    msal = credentials.KINDS["environment"]
    assert credentials.PUBLIC_AUTHORITY in msal.endpoints(env, instance_discovery=True)
    assert credentials.PUBLIC_AUTHORITY not in msal.endpoints(env, instance_discovery=False)


@pytest.mark.parametrize(("url", "body", "message"), [
    ("https://h/msi/token", {"access_token": "t", "expires_on": "1999999999"}, None),
    ("https://h/t/oauth2/v2.0/token", {"access_token": "t", "expires_in": 3599, "token_type": "Bearer"}, None),
    ("https://h/msi/token", {"access_token": "t", "expires_on": "soon"}, "field expires_on: expected an integer"),
    ("https://h/msi/token", {"access_token": "t", "expires_on": -1}, "field expires_on: a number of seconds out"),
    ("https://h/msi/token", {"access_token": "", "expires_on": 1}, "field access_token: is empty"),
    ("https://h/msi/token", {"access_token": "t"}, "field expires_on: missing"),
    ("https://h/msi/token", "<html>", "field (top level): expected an object"),
    ("https://h/o/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken", {"oidcToken": None},
     "field oidcToken: expected a string"),
    ("https://h/t/v2.0/.well-known/openid-configuration", {"token_endpoint": 1}, "field token_endpoint"),
])
def test_identity_answers_are_checked_field_by_field(url: str, body: object, message: str | None) -> None:
    if message is None:
        credentials.check_identity_answer(url, body)
        return
    with pytest.raises(CredentialError, match=re.escape(message)) as info:
        credentials.check_identity_answer(url, body)
    assert "identity endpoint https://h/" in info.value.message and info.value.exit_code == 3


def test_token_claims_keep_only_text() -> None:
    import base64
    import json

    payload = base64.urlsafe_b64encode(json.dumps({"oid": "o", "appid": "a", "exp": 5, "x": {}}).encode()).decode()
    assert credentials.token_claims(f"h.{payload.rstrip('=')}.s") == {"oid": "o", "appid": "a"}
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()
    assert credentials.token_claims(f"h.{deep}.s") == {}


# -- the secrets-source interface and Key Vault's guard --------------------------------------------------------

def test_key_vault_is_a_secrets_source() -> None:
    from mlgate.secrets import interface, keyvault

    assert issubclass(keyvault.KeyVaultSecrets, interface.SecretsSource)
    assert keyvault.Secret is interface.Secret and keyvault.Failure is interface.Failure
    assert issubclass(keyvault.KeyVaultError, interface.SecretsError)
    assert keyvault.is_loopback_host is __import__("mlgate.urls").urls.is_loopback_host


@pytest.mark.parametrize("value", [
    "https://user:PW-canary@kv.vault.azure.net", "https://:PW-canary@kv.vault.azure.net",
    "https://kv.vault.azure.net/?sig=PW-canary", "https://kv.vault.azure.net#PW-canary",
    "http://user:PW-canary@kv.vault.azure.net", "https://user:PW-canary@kv.vault.azure.net:99999",
    "user:PW-canary@kv", "https://kv.vault.azure.net/secrets?sig=PW-canary", "https://user:PW-canary@[::1",
])
def test_vault_urls_with_credentials_are_refused_without_echo(value: str) -> None:
    from mlgate.errors import UsageError

    with pytest.raises(UsageError) as info:
        parse_vault(value)
    assert "PW-canary" not in info.value.diagnostics()


def test_vault_guard_checks_pages_and_bundles() -> None:
    from mlgate.secrets.keyvault import KeyVaultError, vault_guard

    vault = parse_vault("https://kv.vault.azure.net")
    guard = vault_guard(vault)
    assert guard.allows("https://kv.vault.azure.net:443/secrets/a") and not guard.allows("https://evil.example/x")
    guard.check("https://kv.vault.azure.net/secrets", {"value": [{"id": "https://kv.vault.azure.net/secrets/a"}],
                                                        "nextLink": "https://kv.vault.azure.net/secrets?$skiptoken=1"})
    with pytest.raises(KeyVaultError, match="field nextLink points to another origin") as info:
        guard.check("https://kv.vault.azure.net/secrets", {"value": [], "nextLink": "https://evil.example/s?sig=x"})
    assert info.value.fatal and "sig=x" not in info.value.message
    with pytest.raises(KeyVaultError, match="secret 'db-pw': field value: expected a string, got an object"):
        guard.check("https://kv.vault.azure.net/secrets/db-pw/", {"value": {"v": "x"}})
    with pytest.raises(KeyVaultError, match=r"field attributes\.exp: expected a time"):
        guard.check("https://kv.vault.azure.net/secrets/a/v1", {"value": "x", "attributes": {"exp": "soon"}})


@responses.activate
def test_guarded_transport_sends_nothing_to_another_origin() -> None:
    from azure.core.rest import HttpRequest

    from mlgate.secrets.azure_http import Guard, GuardedTransport

    responses.get("https://evil.example/token", json={"access_token": "t"})
    guard = Guard.of("the identity endpoint", ["https://login.example"], CredentialError, lambda _u, _v: None)
    with pytest.raises(CredentialError, match=r"refused to send a request to https://evil\.example/token"):
        GuardedTransport(guard).send(HttpRequest("GET", "https://evil.example/token?sig=secret"))
    assert len(responses.calls) == 0


@responses.activate
@pytest.mark.parametrize(("body", "status", "message"), [
    (b"<html>login</html>", 200, "HTML or text, not JSON"),
    (b"[" * 100 + b"]" * 100, 200, "nested deeper than 64 levels"),
    (b"x" * 300, 200, "larger than 200 bytes"),
])
def test_guarded_transport_bounds_answers(body: bytes, status: int, message: str) -> None:
    from azure.core.rest import HttpRequest

    from mlgate.secrets.azure_http import Guard, GuardedTransport

    responses.get("https://login.example/token", body=body, status=status, auto_calculate_content_length=False)
    guard = Guard.of("the identity endpoint", ["https://login.example"], CredentialError, lambda _u, _v: None,
                     limit=200)
    with pytest.raises(CredentialError, match=message):
        GuardedTransport(guard).send(HttpRequest("GET", "https://login.example/token"))


@responses.activate
def test_guarded_transport_drops_an_unreadable_error_body() -> None:
    from azure.core.rest import HttpRequest

    from mlgate.secrets.azure_http import Guard, GuardedTransport

    responses.get("https://login.example/token", body=b"<html>502</html>", status=502)
    guard = Guard.of("x", ["https://login.example"], CredentialError, lambda _u, _v: None,
                     substitute=lambda status: b'{"status": %d}' % status)
    response = GuardedTransport(guard).send(HttpRequest("GET", "https://login.example/token"))
    assert response.status_code == 502 and response.json() == {"status": 502}


def test_retry_after_that_is_not_a_number_is_ignored() -> None:
    from mlgate.secrets.keyvault import BoundedRetryPolicy

    class Answer:
        def __init__(self) -> None:
            self.headers = {"Retry-After": "soon"}

    class Pipeline:
        http_response = Answer()

    assert BoundedRetryPolicy().get_retry_after(Pipeline()) is None


def test_guarded_transport_reads_compressed_answers() -> None:
    """A real loopback server (``responses`` would hide it): a gzip answer is decoded before it is checked."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from azure.core.rest import HttpRequest

    from mlgate.secrets.azure_http import Guard, GuardedTransport

    body = gzip.compress(b'{"access_token": "t"}')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/token"
    seen: list[object] = []
    guard = Guard.of("x", [url], CredentialError, lambda _u, value: seen.append(value))
    try:
        response = GuardedTransport(guard).send(HttpRequest("GET", url))
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [{"access_token": "t"}] and response.json() == {"access_token": "t"}


def test_guard_names_its_origins_printably() -> None:
    from mlgate.secrets.azure_http import Guard

    guard = Guard.of("x", ["https://[::1]:8443/a", "https://kv.vault.azure.net/"], CredentialError, lambda _u, _v: None)
    assert guard.names() == "https://[::1]:8443, https://kv.vault.azure.net:443"
