"""Canary: a unique secret value per path must never show up outside the CI's own channels.

Every success and error path runs `python -m mlgate secrets` as a real process (HOME, TMPDIR and
the working directory inside the test's folder). A canary secret, multi-line so each line is a
separate masking case, is fetched in every path. It, and every credential the run touches
(client secret, SYSTEM_ACCESSTOKEN, the GitHub request token, the identity header, every access
token the fake issued), may appear only:

* on stdout inside ``::add-mask::`` / ``##vso[task.setsecret]`` lines, or an Azure DevOps
  ``task.setvariable`` line with ``issecret=true``;
* in the files named by ``$GITHUB_OUTPUT`` / ``$GITHUB_ENV``.

Nowhere in stderr, in no other stdout line, in no other file written under the test folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import (
    azure_agent,
    environment_env,
    github_oidc_env,
    github_runner,
    managed_env,
    pipelines_env,
)

ALLOWED_STDOUT = ("::add-mask::", "##vso[task.setsecret]")


def python_path() -> str:
    """PYTHONPATH for the child: where this mlgate comes from first (the child runs in another folder)."""
    import mlgate

    parts = [str(Path(mlgate.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


@dataclass
class Case:
    name: str
    setup: Callable[[FakeAzure, Path, str], tuple[dict[str, str], list[str]]]
    code: int


def case(name: str, code: int, argv: list[str], env: Callable[[FakeAzure, Path, str], dict[str, str]],
         prepare: Callable[[FakeAzure], None] = lambda _a: None) -> Case:
    def setup(azure: FakeAzure, tmp: Path, client_secret: str) -> tuple[dict[str, str], list[str]]:
        prepare(azure)
        return env(azure, tmp, client_secret), argv
    return Case(name, setup, code)


def gh(azure: FakeAzure, tmp: Path, _s: str) -> dict[str, str]:
    return {**managed_env(azure), **github_runner(tmp)}


def gh_oidc(azure: FakeAzure, tmp: Path, _s: str) -> dict[str, str]:
    return {**github_oidc_env(azure), **github_runner(tmp)}


def ado(azure: FakeAzure, tmp: Path, _s: str) -> dict[str, str]:
    return {**pipelines_env(azure), **azure_agent(tmp)}


def ado_managed(azure: FakeAzure, tmp: Path, _s: str) -> dict[str, str]:
    return {**managed_env(azure), **azure_agent(tmp)}


def local_sp(azure: FakeAzure, _tmp: Path, secret: str) -> dict[str, str]:
    return environment_env(azure, secret)


def local_sp_wrong(azure: FakeAzure, _tmp: Path, secret: str) -> dict[str, str]:
    env = environment_env(azure, secret)
    azure.apps[env["AZURE_CLIENT_ID"]].client_secret = "something-else"
    return env


def nothing(azure: FakeAzure, tmp: Path, _s: str) -> dict[str, str]:
    return github_runner(tmp)


def expire_canary(azure: FakeAzure) -> None:
    azure.secrets["canary"].expires = int(time.time()) - 5


CASES = [
    case("github-outputs", 0, ["--secrets", "canary,plain"], gh),
    case("github-env-verbose", 0, ["--secrets", "canary,plain", "--to", "env", "-v"], gh),
    case("github-oidc-debug", 0, ["--secrets", "canary", "-vv"], gh_oidc),
    case("github-star", 0, ["--secrets", "*"], gh),
    case("azure-pipelines-debug", 0, ["--secrets", "canary,plain", "-vv"], ado),
    case("azure-devops-outputs", 0, ["--secrets", "canary", "--to", "output", "-v"], ado_managed),
    case("local-service-principal", 0, ["--secrets", "canary", "--identity", "environment", "-vv"], local_sp),
    case("allow-partial", 0, ["--secrets", "canary,missing", "--allow-partial", "-v"], gh),
    case("not-found", 3, ["--secrets", "canary,missing", "-vv"], gh),
    case("disabled", 3, ["--secrets", "canary,off"], gh, lambda a: a.add_secret("off", "off-v", enabled=False)),
    case("rbac-denied", 3, ["--secrets", "canary,plain"], gh, lambda a: a.denied.add("plain")),
    case("access-policy-list", 3, ["--secrets", "*"], gh,
         lambda a: (setattr(a, "rbac", False), a.system_identity.permissions.discard("list"))),
    case("throttled", 3, ["--secrets", "canary,plain", "-vv"], gh,
         lambda a: (a.throttle.__setitem__("plain", -1), setattr(a, "retry_after", "0.1"))),
    case("expired", 3, ["--secrets", "canary", "-v"], gh, expire_canary),
    case("firewall", 3, ["--secrets", "canary"], gh, lambda a: setattr(a, "firewall", True)),
    case("invalid-name", 3, ["--secrets", "canary,bad_name"], gh),
    case("no-credential", 3, ["--secrets", "canary"], nothing),
    case("wrong-client-secret", 3, ["--secrets", "canary", "--identity", "environment", "-vv"], local_sp_wrong),
    case("ado-reserved-name", 3, ["--secrets", "canary,secret-x"], ado),
]


def forbidden_values(azure: FakeAzure, canary: str, client_secret: str) -> list[str]:
    values = [canary, *canary.splitlines(), client_secret, azure.system_access_token, azure.github_request_token,
              azure.identity_header, *azure.access_tokens]
    return [v for v in values if v]


def escaped_forms(value: str) -> set[str]:
    from mlgate.platforms import azure_devops, github

    return {value, github.escape_data(value), azure_devops.escape_data(value)}


@pytest.mark.parametrize("spec", CASES, ids=[c.name for c in CASES])
def test_canary_never_leaks(azure: FakeAzure, tmp_path: Path, ca_bundle: tuple[Path, Path], spec: Case) -> None:
    unique = uuid.uuid4().hex
    canary = f"CANARY-{spec.name}-{unique}\nCANARY-LINE2-{unique}"
    client_secret = f"SP-SECRET-{unique}"
    azure.add_secret("canary", canary)
    azure.add_secret("plain", f"PLAIN-{unique}")
    work, home, temp = tmp_path / "work", tmp_path / "home", tmp_path / "tmp"
    for folder in (work, home, temp):
        folder.mkdir()
    case_env, argv = spec.setup(azure, tmp_path, client_secret)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": python_path(),
        "HOME": str(home),
        "TMPDIR": str(temp),
        "REQUESTS_CA_BUNDLE": str(ca_bundle[0]),
        **case_env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mlgate", "secrets", "--vault", azure.vault_url, *argv],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == spec.code, proc.stderr

    forbidden = forbidden_values(azure, canary, client_secret)
    assert forbidden, "the canary list is never empty"
    # stderr: never
    for value in forbidden:
        for form in escaped_forms(value):
            assert form not in proc.stderr, f"secret leaked to stderr in {spec.name}"
    # stdout: only inside the CI's masking / secret-variable commands
    for line in proc.stdout.splitlines():
        allowed = line.startswith(ALLOWED_STDOUT) or (
            line.startswith("##vso[task.setvariable ") and ";issecret=true;" in line
        )
        if allowed:
            continue
        for value in forbidden:
            for form in escaped_forms(value):
                assert form not in line, f"secret leaked to stdout in {spec.name}: not a mask command"
    # files: none but the runner's own output/env files
    channels = {Path(case_env[v]) for v in ("GITHUB_OUTPUT", "GITHUB_ENV") if v in case_env}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in channels]
    for path in written:
        data = path.read_bytes()
        for value in forbidden:
            for form in escaped_forms(value):
                assert form.encode() not in data, f"secret written to {path.name} in {spec.name}"
    if spec.code == 0 and "GITHUB_OUTPUT" in case_env:
        handed = Path(case_env["GITHUB_OUTPUT"]).read_text() + Path(case_env["GITHUB_ENV"]).read_text()
        assert canary in handed  # the positive control: the canary did travel the allowed channel
    if spec.code != 0 and "GITHUB_OUTPUT" in case_env:
        assert Path(case_env["GITHUB_OUTPUT"]).read_text() == ""
        assert Path(case_env["GITHUB_ENV"]).read_text() == ""


def test_canary_masked_before_anything_else_printed(azure: FakeAzure, tmp_path: Path,
                                                    ca_bundle: tuple[Path, Path]) -> None:
    """The mask lines of a value come before any other stdout/stderr output that follows its fetch."""
    unique = uuid.uuid4().hex
    azure.add_secret("canary", f"FIRST-{unique}\nSECOND-{unique}")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": python_path(),
           "HOME": str(tmp_path), "REQUESTS_CA_BUNDLE": str(ca_bundle[0]),
           **managed_env(azure), **azure_agent(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "mlgate", "secrets", "--vault", azure.vault_url, "--secrets", "canary"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[:3] == [f"##vso[task.setsecret]FIRST-{unique}%0ASECOND-{unique}",
                         f"##vso[task.setsecret]FIRST-{unique}", f"##vso[task.setsecret]SECOND-{unique}"]
