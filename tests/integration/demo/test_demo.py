"""`mlgate demo` end to end: what `make demo` runs on a fresh machine."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from mlgate.cli import main


def test_demo_runs_the_whole_flow_and_stops_its_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "demo"
    assert main(["demo", "--workdir", str(work), "--approver", "model-risk-officer"]) == 0
    out = capsys.readouterr().out
    assert "mlgate gate: PASSED models:/credit-risk/1" in out
    assert "mlgate gate: REFUSED models:/credit-risk/1" in out  # the tampered copy
    assert "integrity.matches" in out
    assert "mlgate gate: REFUSED models:/churn-untraced/1" in out
    assert "lineage.git_commit" in out and "lineage.training_dataset" in out
    assert "approved by model-risk-officer" in out
    assert "audit: models:/credit-risk@production = version 1" in out
    assert "chain intact" in out
    evidence = json.loads((work / "evidence" / "evidence.json").read_text())
    assert evidence["decision"]["passed"] is True
    assert evidence["stage"] == "production"  # record --stage production only takes evidence gated for it
    ledger = [json.loads(line) for line in (work / "ledger.jsonl").read_text().splitlines()]
    assert [(e["event"], e["model"]) for e in ledger] == [
        ("sealed", "models:/credit-risk/1"),
        ("gated", "models:/credit-risk/1"),
        ("gated", "models:/credit-risk/1"),
        ("gated", "models:/churn-untraced/1"),
        ("approved", "models:/credit-risk/1"),
    ]
    assert [e["details"]["passed"] for e in ledger if e["event"] == "gated"] == [True, False, False]
    assert ledger[1]["evidence_sha256"] == ledger[4]["evidence_sha256"] == evidence["evidence_sha256"]
    assert ledger[4]["details"]["evidence_in_ledger"] is True
    # one demo key signs the seal, the evidence and every ledger entry; audit verify checked them
    hints = {e["sig"]["keyid"] for e in ledger}
    assert len(hints) == 1 and ledger[4]["details"]["evidence_signed_by"] in hints
    assert (work / "evidence" / "evidence.dsse.json").is_file()
    assert "5 signed entries from seq 1" in out
    uri = re.search(r"local MLflow on (http://127\.0\.0\.1:(\d+))", out)
    assert uri is not None
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(2)
        sock.connect(("127.0.0.1", int(uri.group(2))))  # the server the demo started is gone


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_on_azure_blob_reads_and_writes_the_store_directly_and_stops_both_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCESS_KEY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "demo"
    assert main(["demo", "--store", "azure-blob", "--workdir", str(work)]) == 0
    out = capsys.readouterr().out
    root = "wasbs://mlflow@devstoreaccount1.blob.core.windows.net/artifacts"
    assert f"artifacts in {root}, not served by MLflow" in out
    assert [int(n) for n in re.findall(r"^== (\d)\. ", out, re.MULTILINE)] == list(range(1, 9))
    sealed = re.search(r"^sealed models:/credit-risk/1: 7 files .* -> (\S+)$", out, re.MULTILINE)
    assert sealed is not None and sealed.group(1).startswith(f"{root}/1/models/m-")  # the manifest, in the blob store
    assert "mlgate gate: PASSED models:/credit-risk/1" in out
    assert "mlgate gate: REFUSED models:/credit-risk/1" in out and "integrity.matches" in out
    assert "mlgate gate: REFUSED models:/churn-untraced/1" in out
    assert "chain intact" in out and "The local MLflow server and Azurite have been stopped" in out
    evidence = json.loads((work / "evidence" / "evidence.json").read_text())
    assert evidence["decision"]["passed"] is True
    blobs = [p.name for p in (work / "azurite" / "__blobstorage__").rglob("*") if p.is_file()]
    assert blobs  # the model's bytes were kept by Azurite, under the demo's workdir
    assert not any((work / "mlflow" / "artifacts").iterdir())  # and never by the MLflow server
    ports = [int(p) for p in re.findall(r"local (?:Azurite|MLflow) on http://127\.0\.0\.1:(\d+)", out)]
    assert len(ports) == 2 and all(_closed(port) for port in ports)
    assert "AZURE_STORAGE_CONNECTION_STRING" not in os.environ  # restored after the demo


def test_demo_on_azure_blob_without_the_emulator_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlgate.demo import azurite

    monkeypatch.setattr(azurite, "SEARCH_ROOTS", (tmp_path,))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["demo", "--store", "azure-blob", "--workdir", str(tmp_path / "demo")]) == 2
    captured = capsys.readouterr()
    assert "azurite-blob" in captured.err and "npm ci" in captured.err and "make setup" in captured.err
    assert "local MLflow on" not in captured.out  # nothing was started
