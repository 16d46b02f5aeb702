"""`mlgate demo` end to end: what `make demo` runs on a fresh machine."""

from __future__ import annotations

import json
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
    uri = re.search(r"local MLflow on (http://127\.0\.0\.1:(\d+))", out)
    assert uri is not None
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(2)
        sock.connect(("127.0.0.1", int(uri.group(2))))  # the server the demo started is gone
