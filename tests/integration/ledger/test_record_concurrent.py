"""Two `mlgate record` processes recording into one Azure append-blob ledger at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import mlgate
from mlgate.cli import main
from mlgate.ledger import open_ledger
from tests.integration.governed.helpers import CI_VARS, alias_of, register, version_tags, write_evidence

from .conftest import Azurite

pytestmark = pytest.mark.integration


def test_two_pipelines_record_at_once_into_one_blob_ledger(
    azurite: Azurite,
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = azurite.spec(f"c{uuid.uuid4().hex[:12]}", "ledger.jsonl")
    env = {k: v for k, v in os.environ.items() if k not in CI_VARS}
    env |= {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "MLGATE_LEDGER": spec,
    }
    package_root = str(Path(mlgate.__file__).resolve().parents[1])  # the children run from tmp_path
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    models = [register(mlflow_server, 1) for _ in range(2)]
    procs = []
    for i, model in enumerate(models):
        evidence = write_evidence(tmp_path / f"pipeline{i}" / "evidence.json", model.name, model.versions[0])
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlgate",
                    "record",
                    model.ref(),
                    "--platform",
                    "local",
                    "--evidence",
                    str(evidence),
                    "--approver",
                    f"Approver {i}",
                    "--comment",
                    f"pipeline {i}",
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert azurite.connection_string not in out + err
    for model in models:
        assert alias_of(mlflow_server, model.name, "production") == model.versions[0]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    ledger = open_ledger(spec)
    entries = list(ledger.entries())
    assert sorted(str(e.model) for e in entries) == sorted(m.ref() for m in models)
    anchors = {version_tags(mlflow_server, m.name, m.versions[0])["mlgate.ledger.head"] for m in models}
    assert anchors == {e.anchor for e in entries}
    assert main(["audit", "verify", "--ledger", spec]) == 0
    assert "2 entries, chain intact" in capsys.readouterr().out
