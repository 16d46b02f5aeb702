"""Test models registered once per session on the shared MLflow server, with the real ``mlflow`` client.

Each scenario is its own registered model (version 1) so tests never step on each other:
``traced`` is complete; every other one misses exactly one thing the policy requires.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL_TAGS = {"owner": "credit-risk-team", "use_case": "churn scoring", "rollback_plan": "alias back to previous"}


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    model_id: str
    run_id: str
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"models:/{self.name}/{self.version}"


def model_files(n_dirs: int = 3, per_dir: int = 2) -> dict[str, bytes]:
    files = {"MLmodel": b"flavors:\n  python_function: {}\n", "requirements.txt": b"scikit-learn\n"}
    for d in range(n_dirs):
        for i in range(per_dir):
            files[f"data/part{d}/w{i}.bin"] = os.urandom(64) + bytes([d, i])
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def build_model(
    uri: str,
    workdir: Path,
    name: str,
    *,
    files: dict[str, bytes] | None = None,
    git_commit: str | None = GIT_COMMIT,
    dataset_context: str | None = "training",
    run_status: str = "FINISHED",
    model_tags: dict[str, str] | None = None,
    version_tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    alias: str | None = None,
    run_source: bool = False,
) -> Built:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = mlflow.set_experiment(f"exp-{name}")
    content = files if files is not None else model_files()
    src = write_tree(workdir / name, content)
    run = client.create_run(exp.experiment_id, tags={"mlflow.source.git.commit": git_commit} if git_commit else {})
    run_id = run.info.run_id
    default_metrics = {"auc": 0.91, "demographic_parity_difference": 0.04}
    for key, value in (metrics if metrics is not None else default_metrics).items():
        client.log_metric(run_id, key, value)
    if dataset_context:
        with mlflow.start_run(run_id=run_id):
            frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
            mlflow.log_input(mlflow.data.from_pandas(frame, source="s3://bucket/train.parquet", name="train"),
                             context=dataset_context)
    if run_source:  # MLflow 2 style: the version's source is the run's artifact directory
        client.log_artifacts(run_id, str(src), "model")
        model_id, source = "", f"runs:/{run_id}/model"
    else:
        logged = mlflow.initialize_logged_model(name="model", source_run_id=run_id, experiment_id=exp.experiment_id)
        client.log_model_artifacts(logged.model_id, str(src))
        mlflow.finalize_logged_model(logged.model_id, "READY")
        model_id, source = logged.model_id, f"models:/{logged.model_id}"
    if run_status != "RUNNING":
        client.set_terminated(run_id, status=run_status)
    client.create_registered_model(name, tags=model_tags if model_tags is not None else MODEL_TAGS)
    mv = client.create_model_version(name, source, run_id=run_id, tags=version_tags or {},
                                     model_id=model_id or None)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return Built(name, str(mv.version), model_id, run_id, content)


@pytest.fixture(scope="session")
def models(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    """Every scenario, registered once per session."""
    work = tmp_path_factory.mktemp("models")
    tags_missing_rollback = {k: v for k, v in MODEL_TAGS.items() if k != "rollback_plan"}
    specs: dict[str, dict[str, Any]] = {
        "traced": {"alias": "champion", "version_tags": {"risk_class": "high"}},
        "no-commit": {"git_commit": None},
        "no-dataset": {"dataset_context": None},
        "eval-dataset-only": {"dataset_context": "evaluation"},
        "failed-run": {"run_status": "FAILED"},
        "no-tag": {"model_tags": tags_missing_rollback},
        "no-fairness": {"metrics": {"auc": 0.93}},
        "low-auc": {"metrics": {"auc": 0.5, "demographic_parity_difference": 0.04}},
        "tamper": {},
        "seal-me": {},
        "unsealed": {},
        "manifest-tamper": {},
        "run-source": {"run_source": True},
        "low-risk": {"git_commit": None, "dataset_context": None, "version_tags": {"risk_class": "low"}},
    }
    return {name: build_model(mlflow_server, work, name, **spec) for name, spec in specs.items()}


POLICY = """\
version: 1
default_risk: high              # or read from the model version tag `risk_class`
risk_classes:
  high:
    lineage: [source_run_finished, git_commit, training_dataset]
    tags_required: [owner, use_case, rollback_plan]
    metrics: {auc: ">= 0.80"}
    fairness: {demographic_parity_difference: "<= 0.10"}   # run metrics logged by the training job
    approvals: {min_approvers: 2, approver_not_author: true, approver_not_requester: true}
  low:
    lineage: [source_run_finished]
stages:
  production: {}
"""

NOT_SEALED_UP_FRONT = {"seal-me", "unsealed"}


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="session")
def sealed(mlflow_server: str, models: dict[str, Built]) -> dict[str, Built]:
    """Every scenario except the seal tests' own models, sealed with `mlgate seal --model`."""
    from mlgate.cli import main

    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    try:
        for name, built in models.items():
            if name not in NOT_SEALED_UP_FRONT:
                assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0, name
    finally:
        mp.undo()
    return models


@pytest.fixture()
def tracking(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "GITHUB_ACTIONS", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)
    return mlflow_server
