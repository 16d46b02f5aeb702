"""Every failure of `mlgate secrets` exits 3, says what to fix, and hands nothing over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlgate.cli import main
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import (
    apply,
    azure_agent,
    github_oidc_env,
    github_runner,
    managed_env,
    parse_file_command,
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["secrets", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gh(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return apply(monkeypatch, managed_env(azure), github_runner(tmp_path))


def nothing_handed(env: dict[str, str]) -> bool:
    return Path(env["GITHUB_OUTPUT"]).read_text() == "" and Path(env["GITHUB_ENV"]).read_text() == ""


def test_rbac_403_names_identity_and_role(azure: FakeAzure, gh: dict[str, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    azure.system_identity.permissions = set()
    azure.add_secret("a", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a")
    assert code == 3
    assert "system-assigned managed identity of this agent" in err
    assert f"oid={azure.system_identity.oid}" in err
    assert "'Key Vault Secrets User' role" in err
    assert "ForbiddenByRbac" in err
    assert nothing_handed(gh)


def test_access_policy_403_on_list_asks_for_list(azure: FakeAzure, gh: dict[str, str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    azure.rbac = False
    azure.system_identity.permissions = {"get"}
    azure.add_secret("a", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "*")
    assert code == 3
    assert "may not list the secret list" in err
    assert "List and Get secret permission" in err
    assert f"appid={azure.system_identity.client_id};oid={azure.system_identity.oid}" in err


def test_firewall_refusal_stops_early(azure: FakeAzure, gh: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    azure.firewall = True
    for i in range(5):
        azure.add_secret(f"s{i}", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "s0,s1,s2,s3,s4")
    assert code == 3
    assert "Client address is not authorized" in err
    assert "network rules" in err
    assert azure.count("vault", "/secrets/") == 2  # challenge + the first GET; the rest were not tried
    assert nothing_handed(gh)


def test_not_found_hands_over_nothing(azure: FakeAzure, gh: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("present", "p-1")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "present,missing-one")
    assert code == 3
    assert "secret 'missing-one' was not found" in err and "SecretNotFound" in err
    assert nothing_handed(gh)
    assert "::add-mask::p-1" in out.splitlines()  # fetched values are still masked


def test_two_failures_listed_together(azure: FakeAzure, gh: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("present", "p-1")
    azure.add_secret("off", "x", enabled=False)
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "present,missing-one,off")
    assert code == 3
    assert "2 of 3 secrets could not be fetched; none handed over" in err
    assert "missing-one: secret 'missing-one' was not found" in err
    assert "off: secret 'off'" in err and "is disabled" in err


def test_disabled_secret(azure: FakeAzure, gh: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("off", "x", enabled=False)
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "off")
    assert code == 3
    assert "is disabled (Forbidden/SecretDisabled)" in err
    assert "enable it in the vault" in err


def test_expired_named_secret(azure: FakeAzure, gh: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("old", "expired-value", expires=int(time.time()) - 60)
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "old")
    assert code == 3
    assert "expired at" in err
    assert "::add-mask::expired-value" in out.splitlines()
    assert nothing_handed(gh)


@pytest.mark.parametrize("spec", ["db_password", "a b", "x" * 128, "ok,", "a,A", "a:1BAD", "*,a"])
def test_invalid_names_fail_before_any_request(azure: FakeAzure, gh: dict[str, str],
                                               capsys: pytest.CaptureFixture[str], spec: str) -> None:
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", spec)
    assert code == 3
    assert "error:" in err and "how to fix:" in err
    assert azure.hits == []


def test_variable_collision(azure: FakeAzure, gh: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a-b,x:A_B")
    assert code == 3
    assert "would both be handed over as A_B" in err
    assert azure.hits == []


def test_reserved_azure_devops_prefix_checked_before_fetch(azure: FakeAzure, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    apply(monkeypatch, managed_env(azure), azure_agent(tmp_path))
    azure.add_secret("secret-key", "sk")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "secret-key")
    assert code == 3
    assert "reserves" in err
    assert not any(h.path.startswith("/secrets/") and "authorization" in h.headers for h in azure.hits)
    # one annotation, never cut: the message and its hint (newlines escaped as the agent expects)
    assert out.splitlines() == ["##vso[task.logissue type=error;]mlgate secrets: pipeline variable name "
                                "'SECRET_KEY' starts with a prefix Azure DevOps reserves%0A  how to fix: do not "
                                "start variable names with endpoint, input, secret, path, securefile"]
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "secret-key:SK")
    assert code == 0, err
    assert "##vso[task.setvariable variable=SK;issecret=true;isOutput=false;]sk" in out.splitlines()


def test_throttled_once_is_retried_after_retry_after(azure: FakeAzure, gh: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("busy", "b-1")
    azure.throttle["busy"] = 1
    azure.retry_after = "1"
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "busy")
    assert code == 0, err
    gets = [h for h in azure.hits if h.path.rstrip("/") == "/secrets/busy" and "authorization" in h.headers]
    assert len(gets) == 2
    assert gets[1].at - gets[0].at >= 0.9  # waited for Retry-After
    assert parse_file_command(Path(gh["GITHUB_OUTPUT"]).read_text()) == {"BUSY": "b-1"}


def test_throttled_forever_is_bounded(azure: FakeAzure, gh: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from mlgate.secrets.keyvault import RETRIES

    azure.add_secret("busy", "b-1")
    azure.throttle["busy"] = -1
    azure.retry_after = "0.1"
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "busy")
    assert code == 3
    assert "kept throttling" in err and "HTTP 429" in err
    gets = [h for h in azure.hits if h.path.rstrip("/") == "/secrets/busy" and "authorization" in h.headers]
    assert len(gets) == RETRIES + 1
    assert nothing_handed(gh)


def test_retry_after_beyond_limit_is_not_waited_for(azure: FakeAzure, gh: dict[str, str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("busy", "b-1")
    azure.throttle["busy"] = -1
    azure.retry_after = "3600"
    started = time.monotonic()
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "busy")
    assert code == 3
    assert "Retry-After 3600 s" in err
    assert time.monotonic() - started < 60
    assert len([h for h in azure.hits if h.path.rstrip("/") == "/secrets/busy" and "authorization" in h.headers]) == 1


def test_no_credential_lists_every_option(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    apply(monkeypatch, github_runner(tmp_path))
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a")
    assert code == 3
    [annotation] = out.splitlines()  # one annotation, never cut: every option and the hint, as on stderr
    assert annotation.startswith("::error::mlgate secrets: no Azure credential is available:%0A")
    for needed in ("--identity github-oidc", "permissions: id-token: write", "--identity azure-pipelines",
                   "SYSTEM_ACCESSTOKEN", "--identity environment", "AZURE_CLIENT_SECRET", "--identity managed"):
        assert needed in err
        assert needed in annotation
    assert azure.hits == []


def test_explicit_github_oidc_without_id_token_permission(azure: FakeAzure, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    env = github_oidc_env(azure)
    del env["ACTIONS_ID_TOKEN_REQUEST_URL"], env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    apply(monkeypatch, env, github_runner(tmp_path))
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a", "--identity", "github-oidc")
    assert code == 3
    assert "--identity github-oidc cannot be used here" in err
    assert "permissions: id-token: write" in err


def test_github_oidc_not_federated_names_the_app(azure: FakeAzure, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    env = apply(monkeypatch, github_oidc_env(azure), github_runner(tmp_path))
    azure.apps[env["AZURE_CLIENT_ID"]].federated = set()
    azure.add_secret("a", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a")
    assert code == 3
    assert f"could not get an Azure token as federated app {env['AZURE_CLIENT_ID']}" in err
    assert "AADSTS70021" in err
    assert "internal error" not in err


def test_github_id_token_endpoint_refuses(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    env = github_oidc_env(azure)
    env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "wrong-request-token"
    apply(monkeypatch, env, github_runner(tmp_path))
    azure.add_secret("a", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a")
    assert code == 3
    assert "GitHub ID token endpoint answered HTTP 401" in err
    assert "id-token: write" in err
    assert "internal error" not in err


def test_unknown_user_assigned_identity(azure: FakeAzure, gh: dict[str, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("a", "x")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a", "--identity", "managed",
                       "--client-id", "11111111-2222-3333-4444-555555555555")
    assert code == 3
    assert "user-assigned managed identity (client id 11111111-2222-3333-4444-555555555555)" in err
    assert "internal error" not in err


def test_pipelines_wrong_service_connection(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.helpers import pipelines_env

    env = pipelines_env(azure)
    env["AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"] = "99999999-0000-0000-0000-000000000000"
    apply(monkeypatch, env, azure_agent(tmp_path))
    azure.add_secret("a", "x")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "a")
    assert code == 3
    assert "service connection 99999999-0000-0000-0000-000000000000" in err
    assert "internal error" not in err
    assert "setvariable" not in out


def test_vault_unreachable(azure: FakeAzure, gh: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run(capsys, "--vault", f"https://127.0.0.1:{port}", "--secrets", "a")
    assert code == 3
    assert "could not reach Key Vault" in err


def test_allow_partial_hands_over_the_rest_with_a_warning(azure: FakeAzure, gh: dict[str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    azure.add_secret("present", "p-1")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "present,missing-one", "--allow-partial")
    assert code == 0, err
    assert parse_file_command(Path(gh["GITHUB_OUTPUT"]).read_text()) == {"PRESENT": "p-1"}
    assert any(line.startswith("::warning::mlgate secrets: missing-one not handed over") for line in out.splitlines())


def test_allow_partial_with_nothing_fetched_still_fails(azure: FakeAzure, gh: dict[str, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "--vault", azure.vault_url, "--secrets", "missing-one", "--allow-partial")
    assert code == 3
    assert nothing_handed(gh)


def test_bad_vault_name_and_url(azure: FakeAzure, gh: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    for vault in ("x", "http://127.0.0.1:1", "https://v.vault.azure.net/secrets/a", "https://u:p@v.vault.azure.net"):
        code, _, err = run(capsys, "--vault", vault, "--secrets", "a")
        assert code == 3, vault
        assert "how to fix:" in err
