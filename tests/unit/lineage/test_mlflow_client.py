"""The MLflow REST client against recorded MLflow answers (``responses``), offline."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from mlgate import redact
from mlgate.errors import NetworkError, UsageError
from mlgate.http import make_session
from mlgate.lineage.mlflow import MlflowClient, NotFound, proxied_path, rewrite_tracking_uri
from mlgate.refs import ModelRef

BASE = "http://mlflow.test"
API = BASE + "/api/2.0/mlflow"

VERSION = {
    "name": "churn", "version": "3", "source": "models:/m-abc", "run_id": "r1", "status": "READY",
    "tags": [{"key": "risk_class", "value": "high"}],
}


def client(**kwargs: Any) -> MlflowClient:
    session = make_session(total_retries=2, backoff_factor=0)
    return MlflowClient(BASE, session=session, **kwargs)


@responses.activate
def test_model_version_by_version_and_alias() -> None:
    responses.get(API + "/model-versions/get", json={"model_version": VERSION},
                  match=[responses.matchers.query_param_matcher({"name": "churn", "version": "3"})])
    responses.get(API + "/registered-models/alias", json={"model_version": VERSION},
                  match=[responses.matchers.query_param_matcher({"name": "churn", "alias": "champion"})])
    c = client()
    assert c.resolve(ModelRef.parse("models:/churn/3")).source == "models:/m-abc"
    assert c.resolve("churn@champion").version == "3"
    assert c.request_counts["/model-versions/get"] == 1
    assert c.request_counts["/registered-models/alias"] == 1


@responses.activate
def test_missing_alias_is_reported_as_no_such_alias() -> None:
    responses.get(API + "/registered-models/alias", status=400, json={
        "error_code": "INVALID_PARAMETER_VALUE", "message": "Registered model alias nope not found."})
    with pytest.raises(NotFound, match="no such alias @nope") as info:
        client().get_model_version_by_alias("churn", "nope")
    assert info.value.exit_code == 1


@responses.activate
def test_not_found_is_exit_1_and_names_the_thing() -> None:
    responses.get(API + "/runs/get", status=404, json={
        "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=r9 not found"})
    with pytest.raises(NotFound, match="run r9") as info:
        client().get_run("r9")
    assert info.value.exit_code == 1


@responses.activate
def test_5xx_is_retried_then_network_error_exit_3() -> None:
    responses.get(API + "/experiments/get", status=503, json={"error_code": "TEMPORARILY_UNAVAILABLE"})
    with pytest.raises(NetworkError) as info:
        client().get_experiment("1")
    assert info.value.exit_code == 3
    assert len(responses.calls) == 3  # the first try and two bounded retries


@responses.activate
def test_garbage_answer_is_network_error() -> None:
    responses.get(API + "/registered-models/get", body="<html>login</html>", status=200)
    with pytest.raises(NetworkError, match="not JSON"):
        client().get_registered_model("churn")
    responses.get(API + "/runs/get", json={"something": "else"})
    with pytest.raises(NetworkError, match="without 'run'"):
        client().get_run("r1")


def test_unreachable_is_network_error() -> None:
    c = MlflowClient("http://127.0.0.1:9", session=make_session(total_retries=0))
    with pytest.raises(NetworkError, match=r"cannot reach MLflow at http://127\.0\.0\.1:9") as info:
        c.get_run("r1")
    assert info.value.exit_code == 3


@responses.activate
def test_logged_model_listing_follows_pages() -> None:
    url = API + "/logged-models/m-abc/artifacts/directories"
    responses.get(url, json={"files": [{"path": "a", "is_dir": False, "file_size": 1}], "next_page_token": "p2"},
                  match=[responses.matchers.query_param_matcher({})])
    responses.get(url, json={"files": [{"path": "b", "is_dir": True}]},
                  match=[responses.matchers.query_param_matcher({"page_token": "p2"})])
    c = client()
    assert [f.path for f in c.list_logged_model_artifacts("m-abc")] == ["a", "b"]
    assert c.request_counts["/logged-models/{id}/artifacts/directories"] == 2


@responses.activate
def test_proxied_listing_follows_pages_and_download_streams() -> None:
    url = BASE + "/api/2.0/mlflow-artifacts/artifacts"
    responses.get(url, json={"files": [{"path": "x.bin", "is_dir": False, "file_size": 3}], "next_page_token": "t"},
                  match=[responses.matchers.query_param_matcher({"path": "1/m"})])
    responses.get(url, json={"files": [{"path": "y.bin", "is_dir": False, "file_size": 3}]},
                  match=[responses.matchers.query_param_matcher({"path": "1/m", "page_token": "t"})])
    responses.get(url + "/1/m/dir%20a/x.bin", body=b"abc")
    c = client()
    assert [f.path for f in c.list_proxied_artifacts("1/m")] == ["x.bin", "y.bin"]
    assert b"".join(c.stream_artifact("1/m/dir a/x.bin")) == b"abc"


@responses.activate
def test_search_model_versions_pages() -> None:
    url = API + "/model-versions/search"
    responses.get(url, json={"model_versions": [{"name": "churn", "version": "2"}], "next_page_token": "n"},
                  match=[responses.matchers.query_param_matcher({"filter": "name='churn'", "max_results": "1000"})])
    responses.get(url, json={"model_versions": [{"name": "churn", "version": "1"}]},
                  match=[responses.matchers.query_param_matcher(
                      {"filter": "name='churn'", "max_results": "1000", "page_token": "n"})])
    assert [v.version for v in client().search_model_versions("churn")] == ["2", "1"]


@responses.activate
def test_writes_send_the_documented_bodies() -> None:
    responses.post(API + "/model-versions/set-tag", json={})
    responses.post(API + "/registered-models/alias", json={})
    responses.delete(API + "/model-versions/delete-tag", json={})
    c = client()
    c.set_model_version_tag("churn", "3", "k", "v")
    c.set_registered_model_alias("churn", "production", "3")
    c.delete_model_version_tag("churn", "3", "k")
    bodies = [json.loads(call.request.body or b"{}") for call in responses.calls]
    assert bodies == [
        {"name": "churn", "version": "3", "key": "k", "value": "v"},
        {"name": "churn", "alias": "production", "version": "3"},
        {"name": "churn", "version": "3", "key": "k"},
    ]


@responses.activate
def test_token_auth_is_bearer_and_never_printed() -> None:
    canary = "tok-CANARY-1234567890"
    responses.get(API + "/runs/get", status=403, json={"error_code": "PERMISSION_DENIED", "message": "no"})
    c = MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": BASE, "MLFLOW_TRACKING_TOKEN": canary})
    with pytest.raises(NetworkError) as info:
        c.get_run("r1")
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {canary}"
    assert canary not in info.value.diagnostics()
    assert canary not in repr(c.session.auth)
    assert redact.redact(f"x {canary} y") == "x *** y"


@responses.activate
def test_basic_auth() -> None:
    responses.get(API + "/runs/get", json={"run": {"info": {}}})
    c = MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": BASE + "/", "MLFLOW_TRACKING_USERNAME": "u",
                                       "MLFLOW_TRACKING_PASSWORD": "pw-CANARY"})
    c.get_run("r1")
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert redact.redact("pw-CANARY") == "***"


class _Token:
    def __init__(self, token: str) -> None:
        self.token = token
        self.expires_on = 4102444800


class _Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> _Token:
        self.scopes.extend(scopes)
        return _Token("aad-CANARY")


@responses.activate
def test_azureml_uri_is_rewritten_and_uses_an_azure_token() -> None:
    ws = "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"
    responses.get("https://westeurope.api.azureml.ms/mlflow/v2.0" + ws + "/api/2.0/mlflow/runs/get",
                  json={"run": {"info": {}}})
    cred = _Credential()
    c = MlflowClient.from_env(environ={"MLFLOW_TRACKING_URI": "azureml://westeurope.api.azureml.ms/mlflow/v1.0" + ws},
                              credential=cred)
    c.get_run("r1")
    c.get_run("r1")
    assert cred.scopes == ["https://management.azure.com/.default"]  # fetched once, cached
    assert responses.calls[0].request.headers["Authorization"] == "Bearer aad-CANARY"
    assert redact.redact("aad-CANARY") == "***"


def test_tracking_uri_validation() -> None:
    with pytest.raises(UsageError, match="MLFLOW_TRACKING_URI is not set"):
        MlflowClient.from_env(environ={})
    with pytest.raises(UsageError, match="must not embed credentials"):
        rewrite_tracking_uri("https://user:secret@host")
    with pytest.raises(UsageError, match="scheme 'file'"):
        rewrite_tracking_uri("file:///tmp/mlruns")
    assert rewrite_tracking_uri("http://h:5000/") == ("http://h:5000", False)


def test_proxied_path() -> None:
    assert proxied_path("mlflow-artifacts:/1/models/m-x/artifacts") == "1/models/m-x/artifacts"
    assert proxied_path("http://h/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts") == "1/r/artifacts"
    assert proxied_path("s3://bucket/1/r") is None


def test_timeout_is_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    c = client()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ReadTimeout("slow")

    monkeypatch.setattr(c.session, "request", boom)
    with pytest.raises(NetworkError, match="timed out"):
        c.get_experiment("1")
