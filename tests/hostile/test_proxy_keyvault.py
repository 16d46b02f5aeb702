"""`mlgate secrets` with a faulty Key Vault or a faulty managed-identity endpoint in front (TLS proxies).

The loopback Key Vault + identity fake (tests/integration/secrets/fake_azure.py) answers behind two
TLS-terminating :class:`tests.fakes.faultproxy.FaultProxy` instances; the real Azure SDK talks to
them. Every fault is exit 3, hands nothing over, and shows no secret value, identity header or
access token; a short 429 followed by success hands the secret over; an off-origin redirect's
target never receives our bearer token or identity header; a trickle is cut off by ``--deadline``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.faultproxy import FaultProxy, Rule
from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import github_runner, parse_file_command

pytestmark = pytest.mark.integration

SECRET = "kv-canary-value-4d1c9b"
OTHER = "kv-canary-other-77e0aa"
GET = r"^/secrets/a/?$"
LIST = r"^/secrets$"
MSI = r"^/msi/token$"


@dataclass(frozen=True)
class Fault:
    id: str
    where: str  # "vault" or "identity": which proxy gets the rule
    rule: Rule
    secrets: str = "a"
    says: tuple[str, ...] = ()


def transport(prefix: str, where: str, path: str, nth: int | None, secrets: str = "a") -> list[Fault]:
    """Transport faults on one endpoint (``nth``: the authenticated request, after Key Vault's challenge).

    Faults a client may rightly retry (refused, 5xx, 429, truncated) persist; the others hit once.
    """
    cases = [
        Fault(f"{prefix}-refuse", where, Rule("refuse", path=path)),
        Fault(f"{prefix}-503", where, Rule("5xx", path=path, status=503)),
        Fault(f"{prefix}-500", where, Rule("5xx", path=path, status=500)),
        Fault(f"{prefix}-429-forever", where, Rule("429", path=path, retry_after="0")),
        Fault(f"{prefix}-garbage", where, Rule("garbage", path=path, nth=nth)),
        Fault(f"{prefix}-redirect", where, Rule("redirect", path=path, nth=nth)),
        Fault(f"{prefix}-huge", where, Rule("huge", path=path, nth=nth, declare=True)),
        Fault(f"{prefix}-truncated", where, Rule("truncated", path=path)),  # a one-off one is retried
        Fault(f"{prefix}-deep", where, Rule("deep", path=path, nth=nth)),
        Fault(f"{prefix}-bignum", where, Rule("bignum", path=path, nth=nth)),
    ]
    return [Fault(c.id, c.where, c.rule, secrets=secrets) for c in cases]


def typed(prefix: str, where: str, path: str, nth: int | None, field: str, value: object,
          secrets: str = "a") -> Fault:
    return Fault(f"{prefix}-{field.replace('[', '.').replace(']', '')}-{type(value).__name__}", where,
                 Rule("wrong-typed", path=path, nth=nth, field=field, value=value), secrets=secrets,
                 says=(field.split(".")[-1].split("[")[0],))


CASES: list[Fault] = [
    *transport("get", "vault", GET, 2),
    *transport("list", "vault", LIST, 2, secrets="*"),
    Fault("list-page2-garbage", "vault", Rule("garbage", path=LIST, nth=3), secrets="*"),
    *transport("msi", "identity", MSI, None),
    Fault("get-huge-chunked", "vault", Rule("huge", path=GET, nth=2)),
    typed("get", "vault", GET, 2, "value", {"x": 1}),
    typed("get", "vault", GET, 2, "value", 5),
    typed("get", "vault", GET, 2, "value", None),
    typed("get", "vault", GET, 2, "value", ["a"]),
    typed("get", "vault", GET, 2, "attributes", "x"),
    typed("get", "vault", GET, 2, "attributes.enabled", "yes"),
    typed("get", "vault", GET, 2, "attributes.created", "soon"),
    typed("get", "vault", GET, 2, "id", 7),
    typed("list", "vault", LIST, 2, "value", "x", secrets="*"),
    typed("list", "vault", LIST, 2, "value[0].id", 5, secrets="*"),
    typed("list", "vault", LIST, 2, "value[0].attributes", [], secrets="*"),
    typed("list", "vault", LIST, 2, "nextLink", 5, secrets="*"),
    typed("msi", "identity", MSI, None, "expires_on", "soon"),
    typed("msi", "identity", MSI, None, "expires_on", {"x": 1}),
    typed("msi", "identity", MSI, None, "access_token", 5),
    typed("msi", "identity", MSI, None, "access_token", None),
    Fault("msi-expires-bignum", "identity", Rule("bignum", path=MSI, field="expires_on")),
    Fault("get-created-bignum", "vault", Rule("bignum", path=GET, nth=2, field="attributes.created")),
]


def setup(azure: FakeAzure, login_proxy: FaultProxy, tmp_path: Path) -> dict[str, str]:
    for i in range(5):
        azure.add_secret("a" if i == 0 else f"s{i}", SECRET if i == 0 else f"{OTHER}-{i}")
    return {"IDENTITY_ENDPOINT": f"{login_proxy.url}/msi/token", "IDENTITY_HEADER": azure.identity_header,
            **github_runner(tmp_path)}


def leaked(azure: FakeAzure) -> tuple[str, ...]:
    tokens = tuple(azure.access_tokens)
    return (SECRET, OTHER, azure.identity_header, *tokens)


def unmasked(output: str) -> str:
    """The output without GitHub's ``::add-mask::VALUE`` commands (they must carry the value to mask it)."""
    return "\n".join(line for line in output.splitlines() if not line.startswith("::add-mask::"))


def nothing_handed(env: dict[str, str]) -> bool:
    return Path(env["GITHUB_OUTPUT"]).read_text() == "" and Path(env["GITHUB_ENV"]).read_text() == ""


def off_origin_clean(azure: FakeAzure, *proxies: FaultProxy) -> None:
    for proxy in proxies:
        assert proxy.other is not None
        for hit in proxy.other.seen:
            assert not (hit.authorization or "").lower().startswith("bearer "), "bearer token sent off-origin"
            assert hit.headers.get("x-identity-header") is None, "identity header sent off-origin"


@pytest.mark.parametrize("fault", CASES, ids=lambda f: f.id)
def test_fault_is_exit_3(fault: Fault, azure: FakeAzure, vault_proxy: FaultProxy, login_proxy: FaultProxy,
                         tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    env = setup(azure, login_proxy, tmp_path)
    proxy = vault_proxy if fault.where == "vault" else login_proxy
    proxy.add(fault.rule)
    code, output = run_in_process(["secrets", "--vault", vault_proxy.url, "--secrets", fault.secrets], capsys,
                                  monkeypatch, env=env)
    assert proxy.faulted(fault.rule.mode), f"{fault.id}: the fault was never injected"
    assert proxy.errors == []
    assert code == 3, f"{fault.id}: exit {code}, expected 3:\n{output}"
    check_output(unmasked(output), canaries=leaked(azure), says=fault.says)
    service = "vault" if fault.where == "vault" else "identity"
    named = service in output.lower() or proxy.origin in output  # the service, or its URL
    assert named, f"{fault.id}: the message names neither the {service} nor its URL:\n{output}"
    assert nothing_handed(env)
    off_origin_clean(azure, vault_proxy, login_proxy)


def test_pass_through_hands_the_secrets_over(azure: FakeAzure, vault_proxy: FaultProxy, login_proxy: FaultProxy,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    env = setup(azure, login_proxy, tmp_path)
    code, output = run_in_process(["secrets", "--vault", vault_proxy.url, "--secrets", "*"], capsys, monkeypatch,
                                  env=env)
    assert code == 0, output
    handed = parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())
    assert handed["A"] == SECRET and len(handed) == 5
    # the challenge and both pages, all through the proxy (nextLink rewritten like any reverse proxy does)
    assert len([s for s in vault_proxy.seen if s.path.startswith("/secrets?")]) == 3
    assert login_proxy.seen and not vault_proxy.faulted() and not login_proxy.faulted()


@pytest.mark.parametrize(("where", "path", "nth"), [("vault", GET, 2), ("vault", LIST, 2), ("identity", MSI, 1)])
def test_short_429_then_success_hands_over(where: str, path: str, nth: int, azure: FakeAzure,
                                           vault_proxy: FaultProxy, login_proxy: FaultProxy, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env = setup(azure, login_proxy, tmp_path)
    proxy = vault_proxy if where == "vault" else login_proxy
    proxy.add(Rule("429", path=path, nth=nth, retry_after="1"))
    started = time.monotonic()
    code, output = run_in_process(["secrets", "--vault", vault_proxy.url, "--secrets", "*" if path == LIST else "a"],
                                  capsys, monkeypatch, env=env)
    assert code == 0, output
    check_output(unmasked(output), canaries=(azure.identity_header,))
    assert len(proxy.faulted("429")) == 1
    assert parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())["A"] == SECRET
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured


def test_next_link_to_another_origin_is_not_followed(azure: FakeAzure, vault_proxy: FaultProxy,
                                                     login_proxy: FaultProxy, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = setup(azure, login_proxy, tmp_path)
    assert vault_proxy.other is not None
    evil = f"{vault_proxy.other.url}/secrets?api-version=7.5&$skiptoken=3"
    vault_proxy.add(Rule("wrong-typed", path=LIST, nth=2, field="nextLink", value=evil))
    code, output = run_in_process(["secrets", "--vault", vault_proxy.url, "--secrets", "*"], capsys, monkeypatch,
                                  env=env)
    assert code == 3, output
    check_output(unmasked(output), canaries=leaked(azure))
    assert vault_proxy.other.seen == [], "the off-origin nextLink was followed"
    assert nothing_handed(env)


@pytest.mark.parametrize(("where", "path"), [("vault", GET), ("identity", MSI)])
def test_redirects_never_carry_credentials_off_origin(where: str, path: str, azure: FakeAzure,
                                                      vault_proxy: FaultProxy, login_proxy: FaultProxy,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env = setup(azure, login_proxy, tmp_path)
    proxy = vault_proxy if where == "vault" else login_proxy
    proxy.add(Rule("redirect", path=path, status=307))
    code, output = run_in_process(["secrets", "--vault", vault_proxy.url, "--secrets", "a"], capsys, monkeypatch,
                                  env=env)
    assert code == 3, output
    check_output(unmasked(output), canaries=leaked(azure))
    assert proxy.other is not None and proxy.other.seen == [], "an off-origin redirect was followed"


@pytest.mark.parametrize(("where", "path"), [("vault", GET), ("identity", MSI)])
def test_trickle_is_cut_off_by_the_deadline(where: str, path: str, azure: FakeAzure, vault_proxy: FaultProxy,
                                            login_proxy: FaultProxy, tmp_path: Path) -> None:
    env = setup(azure, login_proxy, tmp_path)
    proxy = vault_proxy if where == "vault" else login_proxy
    proxy.add(Rule("trickle", path=path, interval=0.5))
    started = time.monotonic()
    code, output = run_process(["secrets", "--vault", vault_proxy.url, "--secrets", "a", "--deadline", "2"],
                               env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert proxy.faulted("trickle")
    assert code == 3, output
    check_output(unmasked(output), canaries=leaked(azure), says=("deadline",))
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert nothing_handed(env)


@pytest.mark.parametrize(("where", "rule"), [
    ("identity", Rule("bignum", path=MSI, field="expires_on")),
    ("identity", Rule("wrong-typed", path=MSI, field="expires_on", value="soon")),
    ("vault", Rule("wrong-typed", path=GET, nth=2, field="value", value={"x": 1})),
    ("vault", Rule("garbage", path=GET, nth=2)),
])
def test_process_output_never_shows_a_token(where: str, rule: Rule, azure: FakeAzure, vault_proxy: FaultProxy,
                                            login_proxy: FaultProxy, tmp_path: Path) -> None:
    """The CLI process's whole output (log lines of the SDKs included) holds no token, header or value."""
    env = setup(azure, login_proxy, tmp_path)
    proxy = vault_proxy if where == "vault" else login_proxy
    proxy.add(rule)
    code, output = run_process(["secrets", "--vault", vault_proxy.url, "--secrets", "a", "-v", "--deadline", "30"],
                               env=env, timeout=60)
    assert proxy.faulted(rule.mode)
    assert code == 3, output
    check_output(unmasked(output), canaries=leaked(azure))
    assert nothing_handed(env)
