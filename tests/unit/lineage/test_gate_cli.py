"""`mlgate gate` fails on configuration before asking MLflow anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on port 9: any request would be exit 3, so exit 2 proves none was made
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")


def test_invalid_policy_is_exit_2_naming_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrisk_classes:\n  high:\n    metrics: {auc: 'big'}\n")
    assert main(["gate", "m/1", "--policy", str(policy), "--evidence-dir", str(tmp_path / "ev"),
                 "--platform", "local"]) == 2
    assert "line 4, key risk_classes.high.metrics.auc" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_unknown_stage_and_missing_policy_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrisk_classes: {high: {}}\nstages: {production: {}}\n")
    assert main(["gate", "m/1", "--policy", str(policy), "--stage", "prod", "--platform", "local"]) == 2
    assert "no stage 'prod'" in capsys.readouterr().err
    assert main(["gate", "m/1", "--policy", str(tmp_path / "none.yaml"), "--platform", "local"]) == 2
    assert main(["gate", "m/1", "--platform", "local"]) == 2  # --policy is required


def test_bad_ref_is_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrisk_classes: {high: {}}\n")
    assert main(["gate", "not a ref", "--policy", str(policy), "--platform", "local"]) == 2
    assert main(["lineage", "m/x", "--platform", "local"]) == 2


def test_policy_from_environment_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 2\n")
    monkeypatch.setenv("MLGATE_POLICY", str(policy))
    assert main(["gate", "m/1", "--platform", "local"]) == 2
