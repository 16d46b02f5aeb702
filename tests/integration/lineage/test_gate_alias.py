"""`gate --set-alias`: the alias the approval check gates moves only when the gate passes, and the ledger says so;
the deploy templates' `verify --model` step accepts the files `gate` passed (MLflow's `registered_model_meta`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgate.cli import main
from mlgate.ledger import open_ledger
from mlgate.lineage.mlflow import MlflowClient

from .conftest import Built

ROOT = Path(__file__).resolve().parents[3]


def alias_version(name: str, alias: str) -> str | None:
    try:
        return MlflowClient.from_env().resolve(f"models:/{name}@{alias}").version
    except Exception:  # no such alias
        return None


def gate(built: Built, policy: Path, tmp_path: Path, *extra: str) -> int:
    return main(["gate", built.ref, "--policy", str(policy), "--evidence-dir", str(tmp_path / "ev"),
                 "--platform", "local", "--stage", "production", *extra])


def test_a_passing_gate_sets_the_alias_and_records_it(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traced = sealed["traced"]
    ledger = f"file:{tmp_path / 'ledger.jsonl'}"
    assert gate(traced, policy_file, tmp_path, "--set-alias", "candidate-a", "--ledger", ledger) == 0
    assert f"alias: models:/{traced.name}@candidate-a -> version {traced.version}" in capsys.readouterr().out
    assert alias_version(traced.name, "candidate-a") == traced.version
    [entry] = [dict(e.data) for e in open_ledger(ledger).entries()]
    assert entry["event"] == "gated" and entry["details"]["alias"] == "candidate-a"
    assert entry["details"]["passed"] is True


def test_a_refused_gate_leaves_the_alias_alone(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = sealed["no-commit"]
    ledger = f"file:{tmp_path / 'ledger.jsonl'}"
    assert gate(refused, policy_file, tmp_path, "--set-alias", "candidate-b", "--ledger", ledger) == 1
    assert "alias: candidate-b left where it was (the gate refused this version)" in capsys.readouterr().out
    assert alias_version(refused.name, "candidate-b") is None
    [entry] = [dict(e.data) for e in open_ledger(ledger).entries()]
    assert entry["details"]["passed"] is False and "alias" not in entry["details"]


@pytest.mark.parametrize("alias", ["latest", "v3", "two words", ""])
def test_an_alias_mlflow_would_refuse_is_a_usage_error(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, alias: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gate(sealed["traced"], policy_file, tmp_path, "--set-alias", alias) == 2
    assert "not an MLflow alias" in capsys.readouterr().err


def _verify_inputs() -> list[tuple[str, dict[str, Any]]]:
    """The verify step of each deploy template: (template, its inputs)."""
    found = []
    azure = yaml.safe_load((ROOT / "templates" / "azure-pipelines" / "deploy.yml").read_text(encoding="utf-8"))
    for step in azure["stages"][0]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]:
        if step.get("inputs", {}).get("command") == "verify":
            found.append(("azure deploy.yml", step["inputs"]))
    github = yaml.safe_load((ROOT / ".github" / "workflows" / "mlgate-deploy.yml").read_text(encoding="utf-8"))
    for step in github["jobs"]["deploy"]["steps"]:
        if step.get("with", {}).get("command") == "verify":
            found.append(("github mlgate-deploy.yml", step["with"]))
    return found


def test_deploy_templates_verify_the_files_gate_passed(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    traced = sealed["traced"]
    mlflow.set_tracking_uri(tracking)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=traced.ref, dst_path=str(tmp_path / "dl")))
    assert (local / "registered_model_meta").exists()
    assert main(["gate", traced.ref, "--artifacts", str(local), "--policy", str(policy_file),
                 "--evidence-dir", str(tmp_path / "ev"), "--platform", "local"]) == 0
    evidence = json.loads((tmp_path / "ev" / "evidence.json").read_text())
    assert evidence["manifest"]["integrity"]["tolerated"][0].startswith("registered_model_meta")
    steps = _verify_inputs()
    assert [name for name, _ in steps] == ["azure deploy.yml", "github mlgate-deploy.yml"]
    for name, inputs in steps:
        # both deploy templates verify against the version's sealed manifest (`--model`), as gate does
        assert "model" in inputs and "manifest" not in inputs, name
        capsys.readouterr()
        assert main(["verify", str(local), "--model", traced.ref, "--platform", "local"]) == 0, name
        assert "tolerated registered_model_meta" in capsys.readouterr().out
