"""The REST client against a real ``mlflow server`` (MLflow 3: versions point at logged models)."""

from __future__ import annotations

import pytest

from mlgate.lineage.mlflow import MlflowClient, NotFound, proxied_path

from .conftest import Built


def test_resolve_version_alias_logged_model_and_run(mlflow_server: str, models: dict[str, Built]) -> None:
    traced = models["traced"]
    c = MlflowClient.from_env(mlflow_server)
    by_version = c.resolve(traced.ref)
    by_alias = c.resolve(f"{traced.name}@champion")
    assert by_version.version == by_alias.version == traced.version
    assert by_version.source == f"models:/{traced.model_id}"
    assert by_version.model_id is None  # MLflow 3 does not return it: the source names it
    logged = c.get_logged_model(traced.model_id)
    assert logged.source_run_id == traced.run_id
    run = c.get_run(traced.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id is not None
    assert c.get_experiment(run.info.experiment_id).name == f"exp-{traced.name}"
    assert c.get_registered_model(traced.name).tags["owner"] == "credit-risk-team"
    assert [v.version for v in c.search_model_versions(traced.name)] == [traced.version]


def test_missing_alias_version_and_run_are_not_found(mlflow_server: str, models: dict[str, Built]) -> None:
    c = MlflowClient.from_env(mlflow_server)
    with pytest.raises(NotFound, match="no such alias @nope"):
        c.resolve(f"{models['traced'].name}@nope")
    with pytest.raises(NotFound, match="model version traced/99"):
        c.resolve("traced/99")
    with pytest.raises(NotFound):
        c.get_run("0" * 32)


def test_listing_and_streamed_download(mlflow_server: str, models: dict[str, Built]) -> None:
    traced = models["traced"]
    c = MlflowClient.from_env(mlflow_server)
    top = {f.path: f.is_dir for f in c.list_logged_model_artifacts(traced.model_id)}
    assert top == {"MLmodel": False, "requirements.txt": False, "data": True}
    nested = [f.path for f in c.list_logged_model_artifacts(traced.model_id, "data/part1")]
    assert sorted(nested) == ["data/part1/w0.bin", "data/part1/w1.bin"]
    root = proxied_path(c.get_logged_model(traced.model_id).artifact_uri or "")
    assert root is not None
    assert b"".join(c.stream_artifact(f"{root}/data/part1/w0.bin")) == traced.files["data/part1/w0.bin"]
    names = sorted(f.path for f in c.list_proxied_artifacts(f"{root}/data/part0"))
    assert names == ["w0.bin", "w1.bin"]


def test_tags_and_aliases_round_trip(mlflow_server: str, models: dict[str, Built]) -> None:
    m = models["low-risk"]
    c = MlflowClient.from_env(mlflow_server)
    c.set_model_version_tag(m.name, m.version, "mlgate.test", "v")
    c.set_registered_model_alias(m.name, "staging", m.version)
    version = c.resolve(f"{m.name}@staging")
    assert version.tags["mlgate.test"] == "v"
    c.delete_model_version_tag(m.name, m.version, "mlgate.test")
    assert "mlgate.test" not in c.resolve(m.ref).tags
