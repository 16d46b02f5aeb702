"""Offline pieces of `mlgate secrets`: name mapping, vault parsing, credential choice, log redaction."""

from __future__ import annotations

import logging

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
