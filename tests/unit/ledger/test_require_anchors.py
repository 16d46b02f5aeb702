"""Zero anchors checked: a warning (exit 0) by default, exit 1 with --require-anchors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.ledger import Draft, open_ledger


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLGATE_REQUIRE_ANCHORS", raising=False)
    spec = f"file:{tmp_path / 'ledger.jsonl'}"
    open_ledger(spec).append(Draft(event="approved", model="models:/m/1", stage="production"))
    return spec


def test_first_entry_carries_a_ledger_id(ledger: str) -> None:
    first = next(open_ledger(ledger).entries())
    assert first.ledger_id is not None and len(first.ledger_id) == 32
    assert open_ledger(ledger).identity() == first.ledger_id


def test_no_anchor_warns_and_passes(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--ledger", ledger]) == 0
    captured = capsys.readouterr()
    assert "0 anchor(s) on model versions checked" in captured.out
    assert "rewritten in full" in captured.err and "MLFLOW_TRACKING_URI" in captured.err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_require_anchors_refuses(
    ledger: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--require-anchors"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("MLGATE_REQUIRE_ANCHORS", "true")
    assert main(["audit", "verify", "--ledger", ledger, *extra]) == 1
    assert "--require-anchors" in capsys.readouterr().err
    assert main(["audit", "verify", "--file", ledger.removeprefix("file:"), *extra]) == 1
    out = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--ledger", ledger, "-o", str(out), *extra]) == 1
    assert not out.exists()
