"""The lineage chain from MLflow answers: every missing link named, only a missing version raises."""

from __future__ import annotations

from typing import Any

import pytest

from mlgate.lineage.chain import trace
from mlgate.lineage.mlflow import NotFound
from mlgate.lineage.records import Experiment, LoggedModel, ModelVersion, RegisteredModel, Run

COMMIT = "a" * 40


class FakeClient:
    """Answers like the REST client; entities missing from the maps raise NotFound."""

    def __init__(self, **overrides: Any) -> None:
        self.version: dict[str, Any] = {"name": "m", "version": "1", "source": "models:/m-1", "run_id": "r1",
                                        "tags": [{"key": "owner", "value": "team"}]}
        self.registered: dict[str, Any] | None = {"name": "m", "tags": [{"key": "use_case", "value": "uc"}]}
        self.logged: dict[str, Any] | None = {"info": {"model_id": "m-1", "source_run_id": "r1",
                                                       "experiment_id": "1"}}
        self.run: dict[str, Any] | None = {
            "info": {"run_id": "r1", "status": "FINISHED", "experiment_id": "1", "lifecycle_stage": "active"},
            "data": {"tags": [{"key": "mlflow.source.git.commit", "value": COMMIT}], "metrics": []},
            "inputs": {"dataset_inputs": [{"tags": [{"key": "mlflow.data.context", "value": "training"}],
                                           "dataset": {"name": "train", "digest": "d", "source": "s3://x"}}]},
        }
        self.experiment: dict[str, Any] | None = {"experiment_id": "1", "name": "exp", "lifecycle_stage": "active"}
        self.__dict__.update(overrides)
        self.calls = 0

    def _get(self, value: dict[str, Any] | None, what: str) -> dict[str, Any]:
        self.calls += 1
        if value is None:
            raise NotFound(what)
        return value

    def resolve(self, ref: Any) -> ModelVersion:
        return ModelVersion.from_json(self._get(self.version, "version"), "test")

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_json(self._get(self.registered, "registered model"), "test")

    def get_logged_model(self, model_id: str) -> LoggedModel:
        return LoggedModel.from_json(self._get(self.logged, "logged model"), "test")

    def get_run(self, run_id: str) -> Run:
        return Run.from_json(self._get(self.run, "run"), "test")

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.from_json(self._get(self.experiment, "experiment"), "test")


def missing(client: FakeClient) -> dict[str, str]:
    lineage = trace(client, "m/1")  # type: ignore[arg-type]
    return {link.id: link.detail for link in lineage.missing}


def test_complete_chain_in_a_constant_number_of_requests() -> None:
    client = FakeClient()
    lineage = trace(client, "m/1")  # type: ignore[arg-type]
    assert lineage.complete and lineage.git_commit == COMMIT
    assert lineage.tags == {"use_case": "uc", "owner": "team"}
    assert client.calls == 5
    assert any("[ok ] git commit" in line for line in lineage.tree())


def test_every_missing_link_is_named_at_once() -> None:
    client = FakeClient(run=None)
    assert set(missing(client)) == {"source_run", "source_run_finished", "git_commit", "training_dataset"}
    assert missing(client)["source_run"] == "run r1 does not exist"


@pytest.mark.parametrize(("change", "link", "detail"), [
    ({"status": "RUNNING"}, "source_run_finished", "run r1 is RUNNING"),
    ({"lifecycle_stage": "deleted"}, "source_run_finished", "run r1 is deleted"),
])
def test_run_state(change: dict[str, str], link: str, detail: str) -> None:
    client = FakeClient()
    assert client.run is not None
    client.run["info"].update(change)
    assert missing(client) == {link: detail}


def test_bad_commit_mismatched_runs_and_missing_tags() -> None:
    client = FakeClient()
    assert client.run is not None
    client.run["data"]["tags"] = [{"key": "mlflow.source.git.commit", "value": "main"}]
    assert missing(client) == {"git_commit": "run tag mlflow.source.git.commit is not a 40-hex commit"}
    client = FakeClient(logged={"info": {"model_id": "m-1", "source_run_id": "r2"}})
    assert "source_run" in missing(client)
    client = FakeClient(registered=None)
    assert set(missing(client)) == {"use_case"}


def test_mlflow2_run_source_has_no_logged_model() -> None:
    client = FakeClient()
    client.version["source"] = "runs:/r1/model"
    lineage = trace(client, "m/1")  # type: ignore[arg-type]
    assert lineage.complete
    assert lineage.link("logged_model").detail.startswith("not an MLflow 3 logged model")


def test_missing_version_raises_not_found() -> None:
    with pytest.raises(NotFound):
        trace(FakeClient(version=None), "m/1")  # type: ignore[arg-type]
