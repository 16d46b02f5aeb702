"""MLflow answers parsed into typed records: each wrong-typed field named, MLflow's own encodings kept."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from mlgate.errors import NetworkError
from mlgate.http import make_session
from mlgate.lineage.mlflow import MlflowClient
from mlgate.lineage.records import FileInfo, ModelVersion, RegisteredModel, Run

API = "http://mlflow.test/api/2.0/mlflow"


def run(**data: Any) -> dict[str, Any]:
    return {"info": {"run_uuid": "r1", "experiment_id": 0, "status": "FINISHED"}, "data": data}


def test_a_run_keeps_finite_metrics_and_drops_protobufs_non_finite_encodings() -> None:
    parsed = Run.from_json(run(metrics=[{"key": "auc", "value": 0.9}, {"key": "loss", "value": "NaN"},
                                        {"key": "n", "value": 3}], params=[{"key": "lr", "value": "0.1"}]), "t")
    assert parsed.data.metrics == {"auc": 0.9, "n": 3.0}
    assert parsed.data.params == {"lr": "0.1"}
    assert parsed.info.run_id == "r1" and parsed.info.experiment_id == "0"  # old run_uuid; id sent as a number


@pytest.mark.parametrize(("answer", "field"), [
    (run(metrics=[{"key": "auc", "value": True}]), "data.metrics[0].value: expected a finite number, got a boolean"),
    (run(metrics=[{"key": "auc", "value": "0.9"}]), "data.metrics[0].value: expected a finite number, got a string"),
    (run(tags={"a": 1}), "data.tags.a: expected a string, got a number"),
    ({"info": "FINISHED"}, "field info: expected an object, got a string"),
    ({"info": {}, "data": "x"}, "field data: expected an object, got a string"),
    ({"info": {}, "inputs": {"dataset_inputs": [1]}}, "inputs.dataset_inputs[0]: expected an object"),
])
def test_a_wrong_typed_run_field_is_named(answer: dict[str, Any], field: str) -> None:
    with pytest.raises(NetworkError) as info:
        Run.from_json(answer, "MLflow answer to /runs/get")
    assert info.value.exit_code == 3
    assert "MLflow answer to /runs/get" in info.value.message and field in info.value.message


def test_versions_registered_models_and_file_entries() -> None:
    mv = ModelVersion.from_json({"name": "m", "version": 2, "tags": {"k": "v"}, "aliases": ["prod"]}, "t")
    assert (mv.version, mv.tags, mv.aliases, mv.label) == ("2", {"k": "v"}, ("prod",), "m/2")
    rm = RegisteredModel.from_json({"name": "m", "aliases": [{"alias": "prod", "version": "2"}]}, "t")
    assert rm.aliases == {"prod": "2"} and rm.tags == {}
    from mlgate.jsonvalue import Fields

    assert FileInfo.parse(Fields({"path": "a", "file_size": "12"}, "t")) == FileInfo("a", False, 12)
    with pytest.raises(NetworkError, match="field version: expected a string, got a boolean"):
        ModelVersion.from_json({"name": "m", "version": True}, "t")


@responses.activate
def test_search_model_versions_by_filter_and_name() -> None:
    url = API + "/model-versions/search"
    responses.get(url, json={"model_versions": [{"name": "m", "version": "1"}]},
                  match=[responses.matchers.query_param_matcher(
                      {"filter": "name='it\\'s' AND tags.`x` = 'y'", "max_results": "1000"})])
    client = MlflowClient("http://mlflow.test", session=make_session(total_retries=0))
    assert [v.label for v in client.search_model_versions("it's", filter="tags.`x` = 'y'")] == ["m/1"]
