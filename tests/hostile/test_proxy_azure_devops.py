"""`mlgate record --platform azure-devops` reading approvals through a faulty proxy in front of the fake.

The spec-driven Azure DevOps fake (tests/fakes/ci.py: build timeline + Approvals API, answers
validated against Microsoft's Swagger files) answers behind :class:`tests.fakes.faultproxy.FaultProxy`.
Every fault is exit 3 naming Azure DevOps, records nothing (no ledger entry, no tags, no alias) and
never shows the job token; a short 429 followed by success records; an off-origin redirect's target
never receives the job token; a trickle is cut off by ``--deadline``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.ci import ADO_TOKEN, ORG, FakeAzureDevOps
from tests.fakes.faultproxy import FaultProxy, Rule
from tests.hostile.conftest import Recordable, ci_files
from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.governed.helpers import alias_of, version_tags

pytestmark = pytest.mark.integration

TIMELINE = r"/_apis/build/builds/[^/]+/timeline"
APPROVALS = r"/_apis/pipelines/approvals$"
APPROVAL = "value[0]"
STEP = "value[0].steps[0]"


@dataclass(frozen=True)
class Fault:
    id: str
    rule: Rule
    says: tuple[str, ...] = ()


def transport(short: str, path: str) -> list[Fault]:
    return [
        Fault(f"{short}-refuse", Rule("refuse", path=path)),
        Fault(f"{short}-503", Rule("5xx", path=path, status=503)),
        Fault(f"{short}-500", Rule("5xx", path=path, status=500)),
        Fault(f"{short}-429-forever", Rule("429", path=path, retry_after="0")),
        Fault(f"{short}-garbage", Rule("garbage", path=path)),
        Fault(f"{short}-redirect", Rule("redirect", path=path), says=("another origin",)),
        Fault(f"{short}-huge", Rule("huge", path=path, declare=True)),
        Fault(f"{short}-truncated", Rule("truncated", path=path)),
        Fault(f"{short}-deep", Rule("deep", path=path)),
        Fault(f"{short}-bignum", Rule("bignum", path=path)),
    ]


def typed(short: str, path: str, field: str, value: object) -> Fault:
    return Fault(f"{short}-{field}-{type(value).__name__}", Rule("wrong-typed", path=path, field=field, value=value),
                 says=(field.split(".")[-1].split("[")[0],))


CASES: list[Fault] = [
    *transport("timeline", TIMELINE),
    *transport("approvals", APPROVALS),
    typed("timeline", TIMELINE, "records", "x"),
    typed("timeline", TIMELINE, "records[type=Checkpoint.Approval].id", 5),
    typed("timeline", TIMELINE, "records[type=Checkpoint.Approval].parentId", {"x": 1}),
    typed("timeline", TIMELINE, "records[1].identifier", 7),
    typed("timeline", TIMELINE, "records[1].type", True),
    typed("approvals", APPROVALS, "value", "x"),
    typed("approvals", APPROVALS, f"{APPROVAL}.status", True),
    typed("approvals", APPROVALS, f"{APPROVAL}.steps", "x"),
    typed("approvals", APPROVALS, f"{APPROVAL}.minRequiredApprovers", "one"),
    typed("approvals", APPROVALS, f"{STEP}.actualApprover", "x"),
    typed("approvals", APPROVALS, f"{STEP}.actualApprover.displayName", 5),
    typed("approvals", APPROVALS, f"{STEP}.comment", {"x": 1}),
    typed("approvals", APPROVALS, f"{STEP}.status", ["approved"]),
    Fault("approvals-huge-chunked", Rule("huge", path=APPROVALS)),
    Fault("approvals-min-bignum", Rule("bignum", path=APPROVALS, field=f"{APPROVAL}.minRequiredApprovers")),
    Fault("approvals-deep-steps", Rule("deep", path=APPROVALS, field=f"{APPROVAL}.steps")),
]


def ado_env(ado: FakeAzureDevOps, proxy: FaultProxy, tmp: Path) -> dict[str, str]:
    return {**ado.env(), "SYSTEM_COLLECTIONURI": f"{proxy.url}/{ORG}/", **ci_files(tmp)}


def state(model: Recordable, mlflow_server: str) -> tuple[dict[str, str], str | None]:
    """What a record changes in MLflow: the version's tags and the production alias."""
    return version_tags(mlflow_server, model.name, model.version), alias_of(mlflow_server, model.name, "production")


def nothing_recorded(model: Recordable, mlflow_server: str, before: tuple[dict[str, str], str | None]) -> None:
    assert not Path(model.ledger.removeprefix("file:")).exists(), "a ledger entry was written"
    assert state(model, mlflow_server) == before, "tags or the alias changed"


def no_token_off_origin(proxy: FaultProxy) -> None:
    assert proxy.other is not None
    for hit in proxy.other.seen:
        assert ADO_TOKEN not in (hit.authorization or ""), "the job token was sent off-origin"


@pytest.mark.parametrize("fault", CASES, ids=lambda f: f.id)
def test_fault_is_exit_3(fault: Fault, ado: FakeAzureDevOps, ado_proxy: FaultProxy, recordable: Recordable,
                         mlflow_server: str, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = state(recordable, mlflow_server)
    ado_proxy.add(fault.rule)
    code, output = run_in_process(recordable.argv("azure-devops"), capsys, monkeypatch,
                                  env=ado_env(ado, ado_proxy, recordable.tmp))
    assert ado_proxy.faulted(fault.rule.mode), f"{fault.id}: the fault was never injected"
    assert ado_proxy.errors == []
    assert code == 3, f"{fault.id}: exit {code}, expected 3:\n{output}"
    check_output(output, canaries=(ADO_TOKEN,), says=fault.says)
    named = "azure devops" in output.lower() or ado_proxy.origin in output  # the service, or its URL
    assert named, f"{fault.id}: the message names neither Azure DevOps nor its URL:\n{output}"
    nothing_recorded(recordable, mlflow_server, before)
    no_token_off_origin(ado_proxy)


def test_pass_through_records_microsofts_approver(ado: FakeAzureDevOps, ado_proxy: FaultProxy,
                                                  fresh_recordable: Recordable, mlflow_server: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run_in_process(fresh_recordable.argv("azure-devops"), capsys, monkeypatch,
                                  env=ado_env(ado, ado_proxy, fresh_recordable.tmp))
    assert code == 0, output
    check_output(output, canaries=(ADO_TOKEN,))
    tags = version_tags(mlflow_server, fresh_recordable.name, fresh_recordable.version)
    assert tags["mlgate.approved_by"] == "User Name"
    assert {s.path.split("?")[0].rsplit("/", 1)[-1] for s in ado_proxy.seen} == {"timeline", "approvals"}
    assert all(s.authorization == f"Bearer {ADO_TOKEN}" for s in ado_proxy.seen)


@pytest.mark.parametrize("path", [TIMELINE, APPROVALS], ids=["timeline", "approvals"])
def test_short_429_then_success_records(path: str, ado: FakeAzureDevOps, ado_proxy: FaultProxy,
                                        fresh_recordable: Recordable, mlflow_server: str,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ado_proxy.add(Rule("429", path=path, nth=1, retry_after="1"))
    started = time.monotonic()
    code, output = run_in_process(fresh_recordable.argv("azure-devops"), capsys, monkeypatch,
                                  env=ado_env(ado, ado_proxy, fresh_recordable.tmp))
    assert code == 0, output
    check_output(output, canaries=(ADO_TOKEN,))
    assert len(ado_proxy.faulted("429")) == 1
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    assert alias_of(mlflow_server, fresh_recordable.name, "production") == fresh_recordable.version


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_target_never_receives_the_job_token(status: int, ado: FakeAzureDevOps, ado_proxy: FaultProxy,
                                                      recordable: Recordable, mlflow_server: str,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = state(recordable, mlflow_server)
    ado_proxy.add(Rule("redirect", path=APPROVALS, status=status))
    code, output = run_in_process(recordable.argv("azure-devops"), capsys, monkeypatch,
                                  env=ado_env(ado, ado_proxy, recordable.tmp))
    assert code == 3, output
    check_output(output, canaries=(ADO_TOKEN,), says=("another origin",))
    assert ado_proxy.other is not None and ado_proxy.other.seen == [], "the off-origin redirect was followed"
    nothing_recorded(recordable, mlflow_server, before)


@pytest.mark.parametrize("path", [APPROVALS], ids=["approvals"])
def test_trickle_is_cut_off_by_the_deadline(path: str, ado: FakeAzureDevOps, ado_proxy: FaultProxy,
                                            recordable: Recordable, mlflow_server: str) -> None:
    before = state(recordable, mlflow_server)
    ado_proxy.add(Rule("trickle", path=path, interval=0.5))
    started = time.monotonic()
    code, output = run_process([*recordable.argv("azure-devops"), "--deadline", "2"],
                               env=ado_env(ado, ado_proxy, recordable.tmp), timeout=60)
    elapsed = time.monotonic() - started
    assert ado_proxy.faulted("trickle")
    assert code == 3, output
    check_output(output, canaries=(ADO_TOKEN,), says=("deadline",))
    assert elapsed < 20, f"took {elapsed:.1f} s"
    nothing_recorded(recordable, mlflow_server, before)
