"""seal --model, verify --model and store-mode gate on models kept in object storage, read by mlgate directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.gate import evaluate
from mlgate.lineage.mlflow import MlflowClient
from tests.integration.stores.conftest import StoreSetup


def test_seal_verify_and_gate_from_the_store(store: StoreSetup, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    built = store.models["traced"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    assert f"{store.root}/" in capsys.readouterr().out
    tags = MlflowClient.from_env(store.uri).resolve(built.ref).tags
    assert tags["mlgate.manifest.uri"].startswith(store.root + "/")
    stored = [k for k in store.list_keys() if "mlgate-manifests/" in k]
    assert any(k.endswith(tags["mlgate.manifest.sha256"] + ".json") for k in stored)
    assert not any(f"{built.model_id}/artifacts/" in k for k in stored)  # next to the model, never inside it
    mlflow.set_tracking_uri(store.uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=built.ref, dst_path=str(tmp_path / "dl")))
    assert (local / "registered_model_meta").exists()  # MLflow's client adds it; verify tolerates exactly that
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 0
    assert "tolerated registered_model_meta" in capsys.readouterr().out
    by_id = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{built.model_id}",
                                                     dst_path=str(tmp_path / "by-id")))
    assert "model_name: null" in (by_id / "registered_model_meta").read_text()  # what MLflow 3.17 writes
    assert main(["verify", str(by_id), "--model", built.ref, "--platform", "local"]) == 0
    (local / "registered_model_meta").write_text("model_name: traced\nmodel_version: 2\n")  # another version
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 1
    (local / "registered_model_meta").unlink()
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 0
    (local / "MLmodel").write_bytes(b"changed")
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 1
    outcome = evaluate(built.ref, policy_path=str(store.policy))
    assert outcome.passed, outcome.summary
    assert outcome.evidence.document["manifest"]["integrity"]["mode"] == "store"
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    assert "already sealed" in capsys.readouterr().out


def test_a_runs_source_version_in_the_store(store: StoreSetup) -> None:
    built = store.models["run"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    outcome = evaluate(built.ref, policy_path=str(store.policy))
    assert outcome.evidence.document["manifest"]["integrity"]["files_checked"] == len(built.files)
    assert "integrity.matches" not in outcome.failed_rules


def test_files_changed_added_and_removed_in_the_store_are_each_named(
    store: StoreSetup, capsys: pytest.CaptureFixture[str],
) -> None:
    built = store.models["tamper"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    store.put(store.key_of(built, "data/part1/w1.bin"), b"poisoned weights")
    store.put(store.key_of(built, "data/backdoor.py"), b"import os")
    store.delete(store.key_of(built, "requirements.txt"))
    outcome = evaluate(built.ref, policy_path=str(store.policy))
    integrity = outcome.evidence.document["manifest"]["integrity"]
    assert outcome.failed_rules == ["integrity.matches"]
    assert (integrity["changed"], integrity["extra"], integrity["missing"]) == (
        ["data/part1/w1.bin"], ["data/backdoor.py"], ["requirements.txt"])
    capsys.readouterr()
    assert main(["gate", built.ref, "--policy", str(store.policy), "--platform", "local"]) == 1
    printed = capsys.readouterr()
    for name in ("data/part1/w1.bin", "data/backdoor.py", "requirements.txt"):
        assert name in printed.out + printed.err
