"""`mlgate gate`, `seal --model`, `verify --model` and `lineage` against a real MLflow server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.evidence.pack import digest
from mlgate.gate import evaluate
from mlgate.lineage.mlflow import MlflowClient

from .conftest import Built, write_tree


def files_dir(tmp_path: Path, built: Built) -> Path:
    return write_tree(tmp_path / "artifacts", built.files)


def test_fully_traced_model_passes_and_writes_evidence(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traced = sealed["traced"]
    art = files_dir(tmp_path, traced)
    ev = tmp_path / "ev"
    code = main(["gate", traced.ref, "--artifacts", str(art), "--policy", str(policy_file),
                 "--evidence-dir", str(ev), "--platform", "local", "--stage", "production"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "mlgate gate: PASSED" in printed
    evidence = json.loads((ev / "evidence.json").read_text())
    assert evidence["schema_version"] == "1"
    assert evidence["decision"] == {"passed": True, "verdict": "passed", "failed_rules": [],
                                    "rules_total": len(evidence["rules"])}
    assert evidence["evidence_sha256"] == digest(evidence)
    assert evidence["lineage"]["git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert evidence["lineage"]["training_datasets"][0]["name"] == "train"
    assert evidence["manifest"]["integrity"]["files_checked"] == len(traced.files)
    assert evidence["requirements"]["approvals"]["min_approvers"] == 2
    ids = {r["id"] for r in evidence["rules"]}
    assert {"integrity.sealed", "integrity.matches", "lineage.git_commit", "tags.rollback_plan", "metrics.auc",
            "fairness.demographic_parity_difference"} <= ids
    md = (ev / "evidence.md").read_text()
    assert md.startswith("## mlgate gate: ✅ PASSED")
    assert "### Lineage chain" in md


def test_alias_ref_and_store_mode(tracking: str, sealed: dict[str, Built], policy_file: Path) -> None:
    outcome = evaluate("traced@champion", policy_path=str(policy_file))
    assert outcome.passed, outcome.summary
    assert outcome.evidence.document["model"]["alias"] == "champion"
    assert outcome.evidence.document["manifest"]["integrity"]["mode"] == "store"


@pytest.mark.parametrize(("model", "rule"), [
    ("no-commit", "lineage.git_commit"),
    ("no-dataset", "lineage.training_dataset"),
    ("eval-dataset-only", "lineage.training_dataset"),
    ("failed-run", "lineage.source_run_finished"),
    ("no-tag", "tags.rollback_plan"),
    ("no-fairness", "fairness.demographic_parity_difference"),
    ("low-auc", "metrics.auc"),
])
def test_each_missing_requirement_is_refused_naming_its_rule(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, model: str, rule: str
) -> None:
    built = sealed[model]
    outcome = evaluate(built.ref, policy_path=str(policy_file), artifacts_dir=str(files_dir(tmp_path, built)))
    assert not outcome.passed
    assert outcome.failed_rules == [rule]
    assert rule in outcome.summary and "REFUSED" in outcome.summary
    assert f"`{rule}`" in outcome.markdown


def test_risk_class_from_the_version_tag(tracking: str, sealed: dict[str, Built], policy_file: Path) -> None:
    outcome = evaluate(sealed["low-risk"].ref, policy_path=str(policy_file))
    assert outcome.passed, outcome.summary  # low risk needs only a finished run, not a commit or dataset
    assert outcome.evidence.document["risk"] == {"class": "low", "source": "model version tag risk_class"}


def test_cli_exit_1_for_refusal(tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["gate", sealed["no-commit"].ref, "--policy", str(policy_file), "--evidence-dir",
                 str(tmp_path / "ev"), "--platform", "local"])
    assert code == 1
    assert "lineage.git_commit" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev" / "evidence.json").read_text())["decision"]["passed"] is False


def test_unsealed_model_and_manifest_digest_mode(tracking: str, sealed: dict[str, Built], policy_file: Path) -> None:
    unsealed = evaluate(sealed["unsealed"].ref, policy_path=str(policy_file))
    assert unsealed.failed_rules == ["integrity.sealed", "integrity.matches"]
    recorded = sealed_digest(tracking, sealed["traced"])
    ok = evaluate(sealed["traced"].ref, policy_path=str(policy_file), manifest_sha256=recorded)
    assert ok.passed and ok.evidence.document["manifest"]["integrity"]["mode"] == "digest"
    bad = evaluate(sealed["traced"].ref, policy_path=str(policy_file), manifest_sha256="0" * 64)
    assert bad.failed_rules == ["integrity.matches"]


def sealed_digest(uri: str, built: Built) -> str:
    version = MlflowClient.from_env(uri).resolve(built.ref)
    return version.tags["mlgate.manifest.sha256"]


def test_changed_artifacts_dir_is_refused(tracking: str, sealed: dict[str, Built], policy_file: Path,
                                          tmp_path: Path) -> None:
    art = files_dir(tmp_path, sealed["traced"])
    (art / "data" / "part0" / "w0.bin").write_bytes(b"swapped")
    (art / "extra.py").write_text("print('x')\n")
    outcome = evaluate(sealed["traced"].ref, policy_path=str(policy_file), artifacts_dir=str(art))
    assert outcome.failed_rules == ["integrity.matches"]
    integ = outcome.evidence.document["manifest"]["integrity"]
    assert integ["changed"] == ["data/part0/w0.bin"] and integ["extra"] == ["extra.py"]


def test_file_replaced_in_the_artifact_store_after_sealing(
    tracking: str, sealed: dict[str, Built], policy_file: Path, mlflow_artifacts_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    built = sealed["tamper"]
    stored = next(mlflow_artifacts_root.rglob(f"{built.model_id}/artifacts/data/part1/w1.bin"))
    stored.write_bytes(b"poisoned weights")
    outcome = evaluate(built.ref, policy_path=str(policy_file))
    assert outcome.failed_rules == ["integrity.matches"]
    assert outcome.evidence.document["manifest"]["integrity"]["changed"] == ["data/part1/w1.bin"]
    # re-sealing the altered version is refused unless forced, and forcing is recorded
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 1
    assert "already sealed with different content" in capsys.readouterr().err
    assert main(["seal", "--model", built.ref, "--platform", "local", "--force"]) == 0
    tags = MlflowClient.from_env(tracking).resolve(built.ref).tags
    resealed = json.loads(tags["mlgate.resealed"])
    assert resealed["new_sha256"] == tags["mlgate.manifest.sha256"] != resealed["previous_sha256"]


def test_seal_model_then_verify_model(tracking: str, models: dict[str, Built], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    built = models["seal-me"]
    manifest_out = tmp_path / "manifest.json"
    assert main(["seal", "--model", built.ref, "-o", str(manifest_out), "--platform", "local"]) == 0
    tags = MlflowClient.from_env(tracking).resolve(built.ref).tags
    import hashlib

    assert tags["mlgate.manifest.sha256"] == hashlib.sha256(manifest_out.read_bytes()).hexdigest()
    assert tags["mlgate.manifest.files"] == str(len(built.files))
    assert tags["mlgate.manifest.uri"].startswith("mlflow-artifacts:/")
    # the manifest lives next to, not inside, the model files: sealing again is a no-op
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    assert "already sealed" in capsys.readouterr().out
    art = files_dir(tmp_path, built)
    assert main(["verify", str(art), "--model", built.ref, "--platform", "local"]) == 0
    (art / "MLmodel").write_text("changed")
    assert main(["verify", str(art), "--model", built.ref, "--platform", "local"]) == 1
    # seal DIR --model refuses a directory that is not the registered files
    assert main(["seal", str(art), "--model", built.ref, "--platform", "local"]) == 1


def test_verify_model_on_an_unsealed_version_is_refused(tracking: str, models: dict[str, Built],
                                                        tmp_path: Path) -> None:
    built = models["unsealed"]
    assert main(["verify", str(files_dir(tmp_path, built)), "--model", built.ref, "--platform", "local"]) == 1


def test_lineage_command(tracking: str, models: dict[str, Built], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "traced@champion", "--platform", "local"]) == 0
    printed = capsys.readouterr().out
    assert "[ok ] git commit: 0123456789abcdef0123456789abcdef01234567" in printed
    assert "train digest=" in printed and "source=s3://bucket/train.parquet" in printed
    assert main(["lineage", models["no-commit"].ref, "--platform", "local"]) == 1
    printed = capsys.readouterr().out
    assert "UNTRACEABLE: 1 missing link(s): git commit" in printed
    assert main(["lineage", models["failed-run"].ref, "--platform", "local"]) == 1
    assert "source run finished (run" in capsys.readouterr().out
    assert main(["lineage", "traced@nope", "--platform", "local"]) == 1
    assert "no such alias @nope" in capsys.readouterr().err


def test_github_step_summary_gets_the_evidence(tracking: str, sealed: dict[str, Built], policy_file: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.md"
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code = main(["gate", sealed["no-tag"].ref, "--policy", str(policy_file), "--evidence-dir",
                 str(tmp_path / "ev"), "--platform", "github"])
    assert code == 1
    assert summary.read_text().startswith("## mlgate gate: ❌ REFUSED")
    assert "gate_passed" in outputs.read_text() and "manifest_sha256" in outputs.read_text()
    assert "::error::mlgate gate refused" in capsys.readouterr().out


def test_a_model_downloaded_with_mlflows_client_passes(tracking: str, sealed: dict[str, Built], policy_file: Path,
                                                       tmp_path: Path) -> None:
    import mlflow

    traced = sealed["traced"]
    mlflow.set_tracking_uri(tracking)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=traced.ref, dst_path=str(tmp_path / "dl")))
    assert (local / "registered_model_meta").exists()  # MLflow's client adds it on download
    outcome = evaluate(traced.ref, policy_path=str(policy_file), artifacts_dir=str(local))
    assert outcome.passed, outcome.summary
    assert outcome.evidence.document["manifest"]["integrity"]["tolerated"][0].startswith("registered_model_meta")
    # the same file naming another version, or carrying anything else, is an extra file
    (local / "registered_model_meta").write_text("model_name: traced\nmodel_version: 2\n")
    assert evaluate(traced.ref, policy_path=str(policy_file), artifacts_dir=str(local)).failed_rules == [
        "integrity.matches"]


def test_tracking_credentials_never_reach_output_or_evidence(
    tracking: str, sealed: dict[str, Built], policy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary = "mlflow-token-CANARY-8c1f2d"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", canary)  # the local server ignores it; we still send it
    ev = tmp_path / "ev"
    code = main(["gate", sealed["no-tag"].ref, "--policy", str(policy_file), "--evidence-dir", str(ev),
                 "--platform", "local", "-vv"])
    assert code == 1
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, (ev / "evidence.json").read_text(), (ev / "evidence.md").read_text()):
        assert canary not in text


def test_azure_devops_run_summary_gets_the_evidence(tracking: str, sealed: dict[str, Built], policy_file: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    agent_temp = tmp_path / "agent"
    agent_temp.mkdir()
    monkeypatch.setenv("AGENT_TEMPDIRECTORY", str(agent_temp))
    code = main(["gate", sealed["traced"].ref, "--policy", str(policy_file), "--evidence-dir",
                 str(tmp_path / "ev"), "--platform", "azure-devops"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    uploaded = [line for line in printed.splitlines() if line.startswith("##vso[task.uploadsummary]")]
    assert len(uploaded) == 1
    summary = Path(uploaded[0].removeprefix("##vso[task.uploadsummary]"))
    assert summary.parent == agent_temp
    assert summary.read_text() == (tmp_path / "ev" / "evidence.md").read_text()
    assert "##vso[task.setvariable variable=gate_passed" in printed


def test_stored_manifest_altered_after_sealing_is_refused(
    tracking: str, sealed: dict[str, Built], policy_file: Path, mlflow_artifacts_root: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    built = sealed["manifest-tamper"]
    stored = next(mlflow_artifacts_root.rglob(f"{built.model_id}/mlgate-manifests/*.json"))
    doc = json.loads(stored.read_text())
    resources = doc["predicate"]["resources"]
    resources[0]["digest"] = "0" * 64  # bless a different first file, the statement kept consistent
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    doc["subject"][0]["digest"]["sha256"] = root
    stored.write_text(json.dumps(doc))
    outcome = evaluate(built.ref, policy_path=str(policy_file), artifacts_dir=str(files_dir(tmp_path, built)))
    assert outcome.failed_rules == ["integrity.sealed", "integrity.matches"]
    assert "does not match its seal" in outcome.evidence.document["manifest"]["integrity"]["sealed_problem"]
    assert main(["verify", str(files_dir(tmp_path / "v", built)), "--model", built.ref, "--platform", "local"]) == 1
    assert "does not match its seal" in capsys.readouterr().err


def test_mlflow2_run_artifact_source(tracking: str, sealed: dict[str, Built], policy_file: Path,
                                     tmp_path: Path) -> None:
    built = sealed["run-source"]  # sealed through the mlflow-artifacts proxy listing, not a logged model
    version = MlflowClient.from_env(tracking).resolve(built.ref)
    assert version.source == f"runs:/{built.run_id}/model"
    store = evaluate(built.ref, policy_path=str(policy_file))
    assert store.passed, store.summary
    assert store.evidence.document["manifest"]["integrity"]["files_checked"] == len(built.files)
    assert store.evidence.document["lineage"]["logged_model"] is None
    local = evaluate(built.ref, policy_path=str(policy_file), artifacts_dir=str(files_dir(tmp_path, built)))
    assert local.passed, local.summary
