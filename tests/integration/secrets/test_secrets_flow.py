"""`mlgate secrets` in-process against the loopback Key Vault, with the real Azure SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import apply, github_runner, managed_env, parse_file_command


def test_managed_identity_github_outputs(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("db-password", "pw-1")
    azure.add_secret("api-key", "line-a\nline-b")
    code = main(["secrets", "--vault", azure.vault_url, "--secrets", "db-password,api-key:API", "-v"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text()) == {"DB_PASSWORD": "pw-1",
                                                                         "API": "line-a\nline-b"}
    lines = out.splitlines()
    assert "::add-mask::pw-1" in lines
    assert {"::add-mask::line-a%0Aline-b", "::add-mask::line-a", "::add-mask::line-b"} <= set(lines)
    assert "ManagedIdentityCredential" in err
    assert "challenge-resource verification is off" in err


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["secrets", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_request_count_challenge_once_then_parallel(azure: FakeAzure, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    names = [f"s-{i}" for i in range(10)]
    for name in names:
        azure.add_secret(name, f"value-{name}")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", ",".join(names))
    assert code == 0, err
    # one 401 challenge, then one GET per secret; one token request
    assert azure.count("vault", "/secrets/") == 11
    assert azure.count("login", "/msi/token") == 1


def test_user_assigned_managed_identity(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    app = azure.add_app()
    azure.add_secret("k", "v-user-assigned")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "k", "--identity", "managed",
                       "--client-id", app.client_id, "-v")
    assert code == 0, err
    msi = [h for h in azure.hits if h.path == "/msi/token"]
    assert msi[0].query["client_id"] == [app.client_id]
    assert f"user-assigned managed identity (client id {app.client_id})" in err


def test_star_lists_pages_and_skips_disabled_expired_future(azure: FakeAzure, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    import time

    for i in range(5):
        azure.add_secret(f"ok-{i}", f"ok-value-{i}")
    azure.add_secret("off", "x", enabled=False)
    azure.add_secret("old", "x", expires=int(time.time()) - 10)
    azure.add_secret("later", "x", not_before=int(time.time()) + 3600)
    azure.add_secret("db-password", "renamed-value")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "*,db-password:PGPASSWORD", "--to", "env",
                       "-v")
    assert code == 0, err
    handed = parse_file_command(Path(env["GITHUB_ENV"]).read_text())
    assert handed == {**{f"OK_{i}": f"ok-value-{i}" for i in range(5)}, "PGPASSWORD": "renamed-value"}
    list_pages = [h for h in azure.hits if h.path == "/secrets" and "authorization" in h.headers]
    assert len(list_pages) == 3  # 9 secrets, 3 per page, followed through nextLink
    assert "off (disabled)" in err and "old (expired" in err and "later (not valid before" in err
    assert not any(h.path.startswith("/secrets/off") for h in azure.hits)


def test_azure_pipelines_credential_and_secret_variables(azure: FakeAzure, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.helpers import azure_agent, pipelines_env

    apply(monkeypatch, pipelines_env(azure), azure_agent(tmp_path))
    azure.add_secret("db-password", "p;w]1\nx")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "db-password", "-v")
    assert code == 0, err
    lines = out.splitlines()
    mask_at = lines.index("##vso[task.setsecret]p;w]1%0Ax")
    set_at = lines.index("##vso[task.setvariable variable=DB_PASSWORD;issecret=true;isOutput=false;]p;w]1%0Ax")
    assert mask_at < set_at
    oidc = [h for h in azure.hits if h.path.endswith("/oidctoken")]
    assert len(oidc) == 1
    assert oidc[0].query["serviceConnectionId"] == [azure.service_connection_id]
    assert oidc[0].headers["authorization"] == f"Bearer {azure.system_access_token}"
    assert "AzurePipelinesCredential" in err
    entra = [h for h in azure.hits if h.path.endswith("/oauth2/v2.0/token")]
    assert entra[0].form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]


def test_azure_pipelines_output_variables(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.helpers import azure_agent, pipelines_env

    apply(monkeypatch, pipelines_env(azure), azure_agent(tmp_path))
    azure.add_secret("api-key", "k-1")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "api-key", "--to", "output")
    assert code == 0, err
    assert "##vso[task.setvariable variable=API_KEY;issecret=true;isOutput=true;]k-1" in out.splitlines()


def test_github_oidc_fresh_id_token_per_entra_request(azure: FakeAzure, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from mlgate.platforms.github import GitHubActions
    from mlgate.secrets.credentials import IdentityOptions, choose
    from tests.integration.secrets.helpers import github_oidc_env

    env = apply(monkeypatch, github_oidc_env(azure))
    platform = GitHubActions(env)
    choice = choose(IdentityOptions(identity="github-oidc"), on_id_token=platform.mask)
    assert choice.kind == "github-oidc"
    # two token acquisitions (different scopes: no cache hit) -> two fresh ID tokens
    choice.credential.get_token("https://vault.azure.net/.default")
    choice.credential.get_token("https://storage.azure.com/.default")
    id_requests = [h for h in azure.hits if h.path.endswith("/idtoken")]
    assert [h.query["audience"] for h in id_requests] == [["api://AzureADTokenExchange"]] * 2
    assert [h.query["api-version"] for h in id_requests] == [["2.0"]] * 2
    assertions = [h.form["client_assertion"][0] for h in azure.hits if h.path.endswith("/oauth2/v2.0/token")]
    assert len(assertions) == 2 and assertions[0] != assertions[1]
    # each ID token was masked on the runner
    masks = capsys.readouterr().out.splitlines()
    assert masks == [f"::add-mask::{a}" for a in assertions]


def test_github_oidc_end_to_end(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.helpers import github_oidc_env

    env = apply(monkeypatch, github_oidc_env(azure), github_runner(tmp_path))
    azure.add_secret("registry-token", "rt-9")
    code, _, err = run(capsys, "--vault", azure.vault_url, "--secrets", "registry-token", "-v")
    assert code == 0, err
    assert "auto: chose github-oidc" in err
    assert parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text()) == {"REGISTRY_TOKEN": "rt-9"}


def test_environment_service_principal_local(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.helpers import environment_env

    apply(monkeypatch, environment_env(azure, "sp-secret-value"))
    azure.add_secret("x", "local-value")
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "x", "--identity", "environment")
    assert code == 0, err
    assert out.strip() == "X=***"
    assert "local-value" not in out + err and "sp-secret-value" not in out + err


def test_loopback_by_name_localhost(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("a", "1")
    url = azure.vault_url.replace("127.0.0.1", "localhost")
    code, _, err = run(capsys, "--vault", url, "--secrets", "a")
    assert code == 0, err


@pytest.fixture
def resolve_to_loopback(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make two public-looking vault hosts on port 443 reach the fake (its certificate covers them)."""
    import socket

    real = socket.getaddrinfo
    port = int(azure.vault_url.rsplit(":", 1)[1])

    def fake(host: str, service: object, *args: object, **kwargs: object) -> object:
        if host in ("fakevault.vault.azure.net", "evil.example") and service == 443:
            host, service = "127.0.0.1", port
        return real(host, service, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_challenge_resource_verified_for_real_vault_host(azure: FakeAzure, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str],
                                                         resolve_to_loopback: None) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("a", "verified-1")
    code, _, err = run(capsys, "--vault", "https://fakevault.vault.azure.net", "--secrets", "a", "-v")
    assert code == 0, err
    assert "verification on" in err
    assert parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text()) == {"A": "verified-1"}


def test_challenge_resource_mismatch_refused(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], resolve_to_loopback: None) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("a", "never-sent")
    code, _, err = run(capsys, "--vault", "https://evil.example", "--secrets", "a")
    assert code == 3
    # no token was ever requested for, or sent to, a host outside the challenge's domain
    assert azure.count("login") == 0
    assert not any("authorization" in h.headers for h in azure.hits if h.server == "vault")
    assert Path(env["GITHUB_OUTPUT"]).read_text() == ""
    assert "authentication challenge for another domain; no token was sent" in err
    assert "internal error" not in err


def test_flags_from_mlgate_environment_variables(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path), {
        "MLGATE_VAULT": azure.vault_url, "MLGATE_SECRETS": "db-password", "MLGATE_TO": "env",
        "MLGATE_IDENTITY": "managed", "MLGATE_CONCURRENCY": "5"})
    azure.add_secret("db-password", "from-env-inputs")
    code = main(["secrets"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert parse_file_command(Path(env["GITHUB_ENV"]).read_text()) == {"DB_PASSWORD": "from-env-inputs"}


def test_star_on_an_empty_vault_warns(azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("off", "x", enabled=False)
    code, out, err = run(capsys, "--vault", azure.vault_url, "--secrets", "*")
    assert code == 0, err
    assert "::warning::mlgate secrets:" in out and "no enabled, unexpired secret" in out
    assert Path(env["GITHUB_OUTPUT"]).read_text() == ""
