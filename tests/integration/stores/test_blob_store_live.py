"""seal --model, verify --model and store-mode gate on models kept in Azure Blob (Azurite), read by mlgate directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.gate import evaluate
from mlgate.lineage.mlflow import MlflowClient
from tests.integration.lineage.conftest import Built
from tests.integration.stores.conftest import CONTAINER, BlobSetup


def _blobs(setup: BlobSetup, marker: str) -> list[str]:
    container = setup.container()
    return sorted(b.name for b in container.list_blobs(name_starts_with="artifacts/") if marker in b.name)


def test_seal_verify_and_gate_from_blob(on_blob: BlobSetup, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    built = on_blob.models["blob-traced"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    out = capsys.readouterr().out
    assert f"wasbs://{CONTAINER}@devstoreaccount1.blob.core.windows.net/artifacts/" in out
    tags = MlflowClient.from_env(on_blob.uri).resolve(built.ref).tags
    assert tags["mlgate.manifest.uri"].startswith("wasbs://")
    stored = _blobs(on_blob, "mlgate-manifests/")
    assert any(name.endswith(tags["mlgate.manifest.sha256"] + ".json") for name in stored)
    assert not any(f"{built.model_id}/artifacts/mlgate-manifests" in name for name in stored)  # never inside it
    mlflow.set_tracking_uri(on_blob.uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=built.ref, dst_path=str(tmp_path / "dl")))
    (local / "registered_model_meta").unlink()
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 0
    (local / "MLmodel").write_bytes(b"changed")
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 1
    outcome = evaluate(built.ref, policy_path=str(on_blob.policy))
    assert outcome.passed, outcome.summary
    assert outcome.evidence.document["manifest"]["integrity"]["mode"] == "store"
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0  # unchanged: already sealed
    assert "already sealed" in capsys.readouterr().out


def test_a_runs_source_version_in_blob(on_blob: BlobSetup) -> None:
    built = on_blob.models["blob-run"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    outcome = evaluate(built.ref, policy_path=str(on_blob.policy))
    assert outcome.evidence.document["manifest"]["integrity"]["files_checked"] == len(built.files)
    assert "integrity.matches" not in outcome.failed_rules


def test_blobs_changed_added_and_removed_after_sealing_are_each_named(
    on_blob: BlobSetup, capsys: pytest.CaptureFixture[str],
) -> None:
    built = on_blob.models["blob-tamper"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    container = on_blob.container()
    base = f"artifacts/{_experiment_dir(on_blob, built)}"
    container.upload_blob(f"{base}/data/part1/w1.bin", b"poisoned weights", overwrite=True)
    container.upload_blob(f"{base}/data/backdoor.py", b"import os", overwrite=True)
    container.delete_blob(f"{base}/requirements.txt")
    outcome = evaluate(built.ref, policy_path=str(on_blob.policy))
    integrity = outcome.evidence.document["manifest"]["integrity"]
    assert outcome.failed_rules == ["integrity.matches"]
    assert (integrity["changed"], integrity["extra"], integrity["missing"]) == (
        ["data/part1/w1.bin"], ["data/backdoor.py"], ["requirements.txt"])
    capsys.readouterr()
    assert main(["gate", built.ref, "--policy", str(on_blob.policy), "--platform", "local"]) == 1
    printed = capsys.readouterr()
    for name in ("data/part1/w1.bin", "data/backdoor.py", "requirements.txt"):
        assert name in printed.out + printed.err


def _experiment_dir(setup: BlobSetup, built: Built) -> str:
    model_id = built.model_id
    names = _blobs(setup, f"{model_id}/artifacts/MLmodel")
    assert names, model_id
    return names[0].removeprefix("artifacts/").removesuffix("/MLmodel")
