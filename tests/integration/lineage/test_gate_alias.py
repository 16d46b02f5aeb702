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


def test_verify_refuses_a_version_that_lost_the_gated_alias(
    tracking: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs overlap: run 2's passing gate moves @candidate after run 1's check judged it. Run 1's deploy must
    refuse (the approver saw version 2's evidence, not version 1's); run 2's deploy goes ahead."""
    import mlflow
    from mlflow import MlflowClient as RealClient

    from .conftest import build_model

    first = build_model(tracking, tmp_path, "gated-overlap")
    real = RealClient(tracking)
    v1 = real.get_model_version(first.name, first.version)
    second = real.create_model_version(first.name, v1.source, run_id=first.run_id, model_id=first.model_id).version
    for version in (first.version, second):
        assert main(["seal", "--model", f"models:/{first.name}/{version}", "--platform", "local"]) == 0
    mlflow.set_tracking_uri(tracking)
    local = {v: Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{first.name}/{v}",
                                                         dst_path=str(tmp_path / f"dl{v}")))
             for v in (first.version, second)}
    real.set_registered_model_alias(first.name, "candidate", second)
    capsys.readouterr()

    def verify(version: str) -> int:
        return main(["verify", str(local[version]), "--model", f"models:/{first.name}/{version}", "--gated-alias",
                     "candidate", "--platform", "local"])

    assert verify(first.version) == 1
    err = capsys.readouterr().err
    assert (f"models:/{first.name}@candidate points at version {second}, not at version {first.version} which this "
            "run deploys") in err
    assert "re-run this release" in err
    assert verify(second) == 0
    assert f"gated alias: models:/{first.name}@candidate -> version {second}" in capsys.readouterr().out
    real.delete_registered_model_alias(first.name, "candidate")
    assert verify(second) == 1
    assert f"models:/{first.name}@candidate points at no version, not at version {second}" in capsys.readouterr().err


def test_gated_alias_needs_a_model_version_and_a_valid_alias(
    tracking: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path), "--manifest", str(tmp_path / "m.json"), "--gated-alias", "candidate",
                 "--platform", "local"]) == 2
    assert "--gated-alias needs --model REF" in capsys.readouterr().err
    assert main(["verify", str(tmp_path), "--model", "models:/x/1", "--gated-alias", "latest",
                 "--platform", "local"]) == 2
    assert "not an MLflow alias" in capsys.readouterr().err


def test_deploy_templates_verify_against_the_alias_the_gate_sets() -> None:
    """Each deploy template's verify step passes the gate's alias as --gated-alias, defaulting to `candidate`,
    the gate templates' default `set-alias`: the deployed version must be the one the approval check judged."""
    steps = dict(_verify_inputs())
    assert steps["azure deploy.yml"]["gatedAlias"] == "${{ parameters.gatedAlias }}"
    assert steps["github mlgate-deploy.yml"]["gated-alias"] == "${{ inputs.gated-alias }}"
    azure = yaml.safe_load((ROOT / "templates" / "azure-pipelines" / "deploy.yml").read_text(encoding="utf-8"))
    gate = yaml.safe_load((ROOT / "templates" / "azure-pipelines" / "gate.yml").read_text(encoding="utf-8"))
    default = {p["name"]: p.get("default") for p in azure["parameters"]}["gatedAlias"]
    assert default == {p["name"]: p.get("default") for p in gate["parameters"]}["setAlias"] == "candidate"
    workflows = ROOT / ".github" / "workflows"
    deploy = yaml.safe_load((workflows / "mlgate-deploy.yml").read_text(encoding="utf-8"))
    gated = yaml.safe_load((workflows / "mlgate-gate.yml").read_text(encoding="utf-8"))
    assert (deploy[True]["workflow_call"]["inputs"]["gated-alias"]["default"]
            == gated[True]["workflow_call"]["inputs"]["set-alias"]["default"] == "candidate")
    release = yaml.safe_load((ROOT / "templates" / "azure-pipelines" / "release.yml").read_text(encoding="utf-8"))
    verify = [step for stage in release["stages"] for job in stage["jobs"]
              for step in job.get("strategy", {}).get("runOnce", {}).get("deploy", {}).get("steps", [])
              if isinstance(step, dict) and step.get("inputs", {}).get("command") == "verify"]
    assert [step["inputs"]["gatedAlias"] for step in verify] == ["${{ parameters.setAlias }}"]
