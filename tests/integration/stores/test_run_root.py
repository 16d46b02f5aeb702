"""Versions registered from one run (``runs:/<run>/a`` and ``runs:/<run>/``) never seal each other's manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.lineage.mlflow import MlflowClient as RestClient
from tests.integration.lineage.conftest import write_tree


def test_a_run_root_version_does_not_seal_its_siblings_manifests(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_artifacts_root: Path,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(mlflow_server)
    exp = client.create_experiment("run-root-siblings")
    run_id = client.create_run(exp).info.run_id
    client.log_artifacts(run_id, str(write_tree(tmp_path / "a", {"MLmodel": b"a", "w.bin": b"1"})), "a")
    client.log_artifacts(run_id, str(write_tree(tmp_path / "b", {"MLmodel": b"b"})), "b")
    client.set_terminated(run_id)
    client.create_registered_model("siblings")
    first = client.create_model_version("siblings", f"runs:/{run_id}/a", run_id=run_id).version
    whole = client.create_model_version("siblings", f"runs:/{run_id}/", run_id=run_id).version
    assert main(["seal", "--model", f"models:/siblings/{first}", "--platform", "local"]) == 0
    assert main(["seal", "--model", f"models:/siblings/{whole}", "--platform", "local"]) == 0
    tags = RestClient.from_env(mlflow_server).resolve(f"siblings/{whole}").tags
    assert tags["mlgate.manifest.files"] == "3"  # a/MLmodel, a/w.bin, b/MLmodel: no mlgate-manifests/*
    run_dir = next(mlflow_artifacts_root.rglob(run_id))
    assert not (run_dir / "artifacts" / "mlgate-manifests").exists()
    assert len(list((run_dir / "mlgate-manifests").iterdir())) == 2
