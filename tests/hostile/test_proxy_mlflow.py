"""`lineage`, `gate` (store mode), `audit verify` (anchors) and `seal --model` with a faulty MLflow in front.

The real session MLflow server answers behind :class:`tests.fakes.faultproxy.FaultProxy`; each case
injects one fault into one endpoint. Every fault is exit 3 with a message naming MLflow (never 0,
never "internal error", no traceback, no token); a short 429 followed by success passes; an
off-origin redirect's target never sees our bearer token; a trickle is cut off by ``--deadline``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.faultproxy import FaultProxy, Rule
from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.lineage.conftest import POLICY, Built, build_model

pytestmark = pytest.mark.integration

TOKEN = "mlflow-canary-token-9f3e1a77"  # MLFLOW_TRACKING_TOKEN: must never be printed nor sent off-origin
MV = r"/model-versions/get$"
RM = r"/registered-models/get$"
RUN = r"/runs/get$"
EXP = r"/experiments/get$"
LM = r"/logged-models/[^/]+$"
DIRS = r"/logged-models/[^/]+/artifacts/directories$"
FILES = r"/mlflow-artifacts/artifacts/.+/requirements\.txt$"
SEARCH = r"/model-versions/search$"
AUC = "run.data.metrics[key=auc].value"


@dataclass(frozen=True)
class World:
    model: Built  # traced, sealed, aliased: passes lineage and gate
    policy: Path
    ledger: str  # a file ledger with one approved entry, anchored on the model version
    tmp: Path


@pytest.fixture(scope="module")
def world(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from mlgate.cli import main

    tmp = tmp_path_factory.mktemp("proxy-mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        for name in ("GITHUB_ACTIONS", "TF_BUILD", "MLGATE_PLATFORM", "MLFLOW_TRACKING_TOKEN"):
            mp.delenv(name, raising=False)
        model = build_model(mlflow_server, tmp, f"proxied-{uuid.uuid4().hex[:8]}", alias="champion",
                            version_tags={"risk_class": "high"})
        assert main(["seal", "--model", model.ref, "--platform", "local"]) == 0
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY.replace("min_approvers: 2", "min_approvers: 1"))
        assert main(["gate", model.ref, "--policy", str(policy), "--evidence-dir", str(tmp / "evidence"),
                     "--stage", "production", "--platform", "local"]) == 0
        evidence = tmp / "evidence" / "evidence.json"
        ledger = f"file:{tmp / 'ledger.jsonl'}"
        mp.chdir(tmp)
        mp.setenv("GIT_CEILING_DIRECTORIES", str(tmp.parent))
        assert main(["record", model.ref, "--platform", "local", "--ledger", ledger, "--evidence", str(evidence),
                     "--approver", "Ana Approver", "--comment", "reviewed"]) == 0
    yield World(model, policy, ledger, tmp)


def argv_of(command: str, world: World, tmp: Path) -> list[str]:
    ref = world.model.ref
    return {
        "lineage": ["lineage", ref],
        "gate": ["gate", ref, "--policy", str(world.policy), "--evidence-dir", str(tmp / "ev")],
        "seal": ["seal", "--model", ref],
        "audit": ["audit", "verify", "--ledger", world.ledger],
    }[command] + ["--platform", "local"]


@dataclass(frozen=True)
class Fault:
    id: str
    command: str
    rule: Rule
    exit_code: int = 3
    says: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def faults_for(command: str, endpoints: dict[str, str]) -> list[Fault]:
    """The nine transport faults on each of ``command``'s main endpoints."""
    cases: list[Fault] = []
    for short, path in endpoints.items():
        cases += [
            Fault(f"{command}-{short}-refuse", command, Rule("refuse", path=path)),
            Fault(f"{command}-{short}-503", command, Rule("5xx", path=path, status=503)),
            Fault(f"{command}-{short}-garbage", command, Rule("garbage", path=path)),
            Fault(f"{command}-{short}-redirect", command, Rule("redirect", path=path),
                  says=("another origin",)),
            Fault(f"{command}-{short}-huge", command, Rule("huge", path=path, declare=True)),
            Fault(f"{command}-{short}-truncated", command, Rule("truncated", path=path)),
            Fault(f"{command}-{short}-deep", command, Rule("deep", path=path)),
        ]
    return cases


CASES: list[Fault] = [
    *faults_for("lineage", {"mv": MV, "run": RUN}),
    Fault("lineage-rm-500", "lineage", Rule("5xx", path=RM, status=500)),
    Fault("lineage-exp-502", "lineage", Rule("5xx", path=EXP, status=502)),
    Fault("lineage-lm-garbage", "lineage", Rule("garbage", path=LM)),
    Fault("lineage-run-429-forever", "lineage", Rule("429", path=RUN, retry_after="0")),
    Fault("lineage-mv-bignum", "lineage", Rule("bignum", path=MV)),
    Fault("lineage-run-huge-chunked", "lineage", Rule("huge", path=RUN)),
    Fault("lineage-run-info-string", "lineage", Rule("wrong-typed", path=RUN, field="run.info", value="x"),
          says=("info",)),
    Fault("lineage-run-data-string", "lineage", Rule("wrong-typed", path=RUN, field="run.data", value="x"),
          says=("data",)),
    Fault("lineage-run-status-object", "lineage",
          Rule("wrong-typed", path=RUN, field="run.info.status", value={"x": 1}), says=("status",)),
    Fault("lineage-mv-run-id-number", "lineage",
          Rule("wrong-typed", path=MV, field="model_version.run_id", value=5), says=("run_id",)),
    Fault("lineage-mv-list", "lineage", Rule("wrong-typed", path=MV, field="model_version", value=[]),
          says=("model_version",)),
    Fault("lineage-mv-deep-field", "lineage", Rule("deep", path=MV, field="model_version.tags")),
    Fault("lineage-mv-version-bignum", "lineage", Rule("bignum", path=MV, field="model_version.version")),
    Fault("gate-auc-true", "gate", Rule("wrong-typed", path=RUN, field=AUC, value=True), says=("metrics",)),
    Fault("gate-auc-object", "gate", Rule("wrong-typed", path=RUN, field=AUC, value={"x": 1}),
          says=("metrics",)),
    Fault("gate-auc-string", "gate", Rule("wrong-typed", path=RUN, field=AUC, value="0.99"),
          says=("metrics",)),
    Fault("gate-auc-null", "gate", Rule("wrong-typed", path=RUN, field=AUC, value=None), says=("metrics",)),
    Fault("gate-auc-bignum", "gate", Rule("bignum", path=RUN, field=AUC)),
    Fault("gate-metrics-object", "gate",
          Rule("wrong-typed", path=RUN, field="run.data.metrics", value={"auc": 0.99}), says=("metrics",)),
    Fault("gate-model-tags-string", "gate",
          Rule("wrong-typed", path=RM, field="registered_model.tags", value="owner=x"), says=("tags",)),
    Fault("gate-run-info-string", "gate", Rule("wrong-typed", path=RUN, field="run.info", value="x"),
          says=("info",)),
    Fault("gate-mv-503", "gate", Rule("5xx", path=MV, status=503)),
    Fault("gate-run-redirect", "gate", Rule("redirect", path=RUN), says=("another origin",)),
    Fault("gate-dirs-refuse", "gate", Rule("refuse", path=DIRS)),
    Fault("gate-dirs-huge", "gate", Rule("huge", path=DIRS)),
    Fault("gate-dirs-deep", "gate", Rule("deep", path=DIRS)),
    Fault("gate-dirs-files-string", "gate", Rule("wrong-typed", path=DIRS, field="files", value="x"),
          says=("files",)),
    Fault("gate-file-503", "gate", Rule("5xx", path=FILES, status=503)),
    Fault("gate-file-refuse", "gate", Rule("refuse", path=FILES)),
    Fault("gate-file-truncated", "gate", Rule("truncated", path=FILES)),
    Fault("gate-file-redirect", "gate", Rule("redirect", path=FILES), says=("another origin",)),
    Fault("seal-mv-503", "seal", Rule("5xx", path=MV, status=503)),
    Fault("seal-mv-garbage", "seal", Rule("garbage", path=MV)),
    Fault("seal-mv-redirect", "seal", Rule("redirect", path=MV), says=("another origin",)),
    Fault("seal-lm-artifact-uri-number", "seal",
          Rule("wrong-typed", path=LM, field="model.info.artifact_uri", value=42), says=("artifact_uri",)),
    Fault("seal-dirs-garbage", "seal", Rule("garbage", path=DIRS)),
    Fault("seal-dirs-truncated", "seal", Rule("truncated", path=DIRS)),
    Fault("seal-file-truncated", "seal", Rule("truncated", path=FILES)),
    Fault("seal-file-redirect", "seal", Rule("redirect", path=FILES), says=("another origin",)),
    Fault("seal-file-refuse", "seal", Rule("refuse", path=FILES)),
    *faults_for("audit", {"search": SEARCH}),
    Fault("audit-search-bignum", "audit", Rule("bignum", path=SEARCH)),
    Fault("audit-search-versions-string", "audit",
          Rule("wrong-typed", path=SEARCH, field="model_versions", value="x"), says=("model_versions",)),
    Fault("audit-search-tags-object", "audit",
          Rule("wrong-typed", path=SEARCH, field="model_versions[0].tags", value={"x": 1}),
          says=("tags",)),
    Fault("audit-search-token-number", "audit",
          Rule("wrong-typed", path=SEARCH, field="model_versions[0].version", value={"x": 1}),
          says=("version",)),
]


@pytest.mark.parametrize("fault", CASES, ids=lambda f: f.id)
def test_fault_is_exit_3(fault: Fault, world: World, mlflow_proxy: FaultProxy, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow_proxy.add(fault.rule)
    code, output = run_in_process(argv_of(fault.command, world, tmp_path), capsys, monkeypatch,
                                  env={"MLFLOW_TRACKING_TOKEN": TOKEN})
    assert mlflow_proxy.faulted(fault.rule.mode), f"{fault.id}: the fault was never injected"
    assert mlflow_proxy.errors == []
    assert code == fault.exit_code, f"{fault.id}: exit {code}, expected {fault.exit_code}:\n{output}"
    check_output(output, canaries=(TOKEN,), says=fault.says)
    assert "mlflow" in output.lower(), f"{fault.id}: the message does not name MLflow:\n{output}"
    assert not (tmp_path / "ev" / "evidence.json").exists() or fault.exit_code == 0
    assert mlflow_proxy.other is not None
    for hit in mlflow_proxy.other.seen:  # an off-origin redirect target never gets our credentials
        assert hit.authorization is None or TOKEN not in hit.authorization, f"{fault.id}: token sent off-origin"


@pytest.mark.parametrize("command", ["lineage", "gate", "seal", "audit"])
def test_pass_through_is_transparent(command: str, world: World, mlflow_proxy: FaultProxy, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run_in_process(argv_of(command, world, tmp_path), capsys, monkeypatch,
                                  env={"MLFLOW_TRACKING_TOKEN": TOKEN})
    assert code == 0, output
    check_output(output, canaries=(TOKEN,), says=("1 anchor(s) on model versions match",) if command == "audit" else ())
    assert mlflow_proxy.seen and not mlflow_proxy.faulted()
    assert all(s.authorization == f"Bearer {TOKEN}" for s in mlflow_proxy.seen)


@pytest.mark.parametrize(("command", "path"), [("lineage", RUN), ("gate", MV), ("seal", LM), ("audit", SEARCH),
                                               ("gate", FILES)])
def test_short_429_then_success_passes(command: str, path: str, world: World, mlflow_proxy: FaultProxy,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow_proxy.add(Rule("429", path=path, nth=1, retry_after="1"))
    started = time.monotonic()
    code, output = run_in_process(argv_of(command, world, tmp_path), capsys, monkeypatch)
    assert code == 0, output
    check_output(output)
    assert len(mlflow_proxy.faulted("429")) == 1
    import re

    retried = [s for s in mlflow_proxy.seen if re.search(path, s.path.split("?")[0])]
    assert len(retried) >= 2 and retried[0].fault == "429" and retried[1].fault == ""
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured


@pytest.mark.parametrize(("command", "path"), [("lineage", MV), ("audit", SEARCH), ("seal", FILES)])
def test_trickle_is_cut_off_by_the_deadline(command: str, path: str, world: World, mlflow_proxy: FaultProxy,
                                            tmp_path: Path) -> None:
    mlflow_proxy.add(Rule("trickle", path=path, interval=0.5))
    started = time.monotonic()
    code, output = run_process([*argv_of(command, world, tmp_path), "--deadline", "2"],
                               env={"MLFLOW_TRACKING_URI": mlflow_proxy.url, "MLFLOW_TRACKING_TOKEN": TOKEN},
                               timeout=60)
    elapsed = time.monotonic() - started
    assert mlflow_proxy.faulted("trickle")
    assert code == 3, output
    check_output(output, canaries=(TOKEN,), says=("deadline",))
    assert elapsed < 20, f"took {elapsed:.1f} s"


def test_redirect_target_never_receives_the_token(world: World, mlflow_proxy: FaultProxy, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (MV, RM, RUN, LM, EXP, DIRS, FILES, SEARCH):
        mlflow_proxy.add(Rule("redirect", path=path, status=307))
    for command in ("lineage", "gate", "seal", "audit"):
        code, output = run_in_process(argv_of(command, world, tmp_path), capsys, monkeypatch,
                                      env={"MLFLOW_TRACKING_TOKEN": TOKEN})
        assert code == 3, f"{command}: {output}"
        check_output(output, canaries=(TOKEN,), says=("another origin",))
    assert mlflow_proxy.other is not None and mlflow_proxy.other.seen == []
