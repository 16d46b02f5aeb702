"""Model files in the artifact store: location, listing safety, size checks, the stored manifest."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import responses

from mlgate.errors import EvaluationError, NetworkError, RefusedError
from mlgate.http import make_session
from mlgate.integrity.manifest import Manifest
from mlgate.lineage import artifacts
from mlgate.lineage.mlflow import MlflowClient
from mlgate.lineage.records import ModelVersion

BASE = "http://mlflow.test"
API = BASE + "/api/2.0/mlflow"
PROXY = BASE + "/api/2.0/mlflow-artifacts/artifacts"
VERSION = ModelVersion("m", "1", source="models:/m-1")


def client() -> MlflowClient:
    return MlflowClient(BASE, session=make_session(total_retries=0))


def logged(uri: str) -> None:
    responses.get(API + "/logged-models/m-1", json={"model": {"info": {"model_id": "m-1", "artifact_uri": uri}}})


@responses.activate
def test_a_store_mlflow_does_not_proxy_cannot_be_sealed() -> None:
    logged("gs://bucket/1/models/m-1/artifacts")
    with pytest.raises(EvaluationError, match="does not proxy") as info:
        artifacts.locate(client(), VERSION)
    assert info.value.exit_code == 3


@responses.activate
def test_hostile_names_in_a_listing_are_refused() -> None:
    logged("mlflow-artifacts:/1/models/m-1/artifacts")
    responses.get(API + "/logged-models/m-1/artifacts/directories",
                  json={"files": [{"path": "../../etc/passwd", "is_dir": False, "file_size": 1}]})
    c = client()
    with pytest.raises(RefusedError, match="unsafe artifact name"):
        artifacts.list_files(c, artifacts.locate(c, VERSION))


@responses.activate
def test_a_cut_off_download_is_never_hashed_as_the_file() -> None:
    logged("mlflow-artifacts:/1/models/m-1/artifacts")
    responses.get(API + "/logged-models/m-1/artifacts/directories",
                  json={"files": [{"path": "w.bin", "is_dir": False, "file_size": 10}]})
    responses.get(PROXY + "/1/models/m-1/artifacts/w.bin", body=b"short")
    with pytest.raises(NetworkError, match="gave 5 bytes, the listing says 10"):
        artifacts.seal_from_store(client(), VERSION)


@responses.activate
def test_seal_from_store_hashes_the_streamed_bytes() -> None:
    logged("mlflow-artifacts:/1/models/m-1/artifacts")
    responses.get(API + "/logged-models/m-1/artifacts/directories",
                  json={"files": [{"path": "w.bin", "is_dir": False, "file_size": 3}, {"path": "d", "is_dir": True}]},
                  match=[responses.matchers.query_param_matcher({})])
    responses.get(API + "/logged-models/m-1/artifacts/directories",
                  json={"files": [{"path": "d/x", "is_dir": False, "file_size": 0}]},
                  match=[responses.matchers.query_param_matcher({"artifact_directory_path": "d"})])
    responses.get(PROXY + "/1/models/m-1/artifacts/w.bin", body=b"abc")
    responses.get(PROXY + "/1/models/m-1/artifacts/d/x", body=b"")
    manifest, where = artifacts.seal_from_store(client(), VERSION)
    assert dict(manifest.subjects) == {"w.bin": hashlib.sha256(b"abc").hexdigest(),
                                       "d/x": hashlib.sha256(b"").hexdigest()}
    assert manifest.total_bytes == 3
    assert where.manifest_dir == "1/models/m-1/mlgate-manifests"


@responses.activate
def test_an_empty_model_is_refused() -> None:
    logged("mlflow-artifacts:/1/models/m-1/artifacts")
    responses.get(API + "/logged-models/m-1/artifacts/directories", json={})
    with pytest.raises(RefusedError, match="has no files"):
        artifacts.seal_from_store(client(), VERSION)


STORED = "mlflow-artifacts:/1/models/m-1/mlgate-manifests/x.json"


def sealed_version(digest: str, uri: str = STORED) -> ModelVersion:
    return dataclasses.replace(VERSION, tags={artifacts.TAG_SHA256: digest, artifacts.TAG_URI: uri})


@responses.activate
def test_load_manifest_checks_the_digest_tag() -> None:
    manifest = Manifest.build({"w.bin": "a" * 64}, 3, follow_internal_symlinks=False)
    responses.get(PROXY + "/1/models/m-1/mlgate-manifests/x.json", body=manifest.canonical())
    assert artifacts.load_manifest(client(), sealed_version(manifest.digest)).digest == manifest.digest
    with pytest.raises(RefusedError, match="does not match its seal"):
        artifacts.load_manifest(client(), sealed_version("b" * 64))
    with pytest.raises(RefusedError, match="never sealed"):
        artifacts.load_manifest(client(), VERSION)
    with pytest.raises(RefusedError, match="no retrievable manifest"):
        artifacts.load_manifest(client(), sealed_version("b" * 64, uri="gs://x/y.json"))


@responses.activate
def test_a_deleted_stored_manifest_is_a_refusal() -> None:
    responses.get(PROXY + "/1/models/m-1/mlgate-manifests/x.json", status=404,
                  json={"error_code": "RESOURCE_DOES_NOT_EXIST"})
    with pytest.raises(RefusedError, match="missing from the artifact store"):
        artifacts.load_manifest(client(), sealed_version("b" * 64))


@responses.activate
def test_a_refused_manifest_upload_is_named_a_permission() -> None:
    responses.put(PROXY + "/1/models/m-1/mlgate-manifests/x.json", status=403, json={"error_code": "PERMISSION_DENIED"})
    with pytest.raises(NetworkError, match="did not permit storing") as info:
        client().upload_artifact("1/models/m-1/mlgate-manifests/x.json", b"{}")
    assert "EDIT on the model's experiment" in (info.value.hint or "")
    assert info.value.exit_code == 3


@pytest.mark.parametrize(("text", "accepted"), [
    ("model_name: m\nmodel_version: '1'\n", True),
    ("model_name: null\nmodel_version: null\n", True),  # MLflow 3 downloads of models:/m-<id>
    ("model_name: null\nmodel_version: '1'\n", False),
    ("model_name: other\nmodel_version: '1'\n", False),
    ("model_name: null\nmodel_version: null\nextra: x\n", False),
])
def test_only_the_marker_mlflow_writes_is_tolerated(tmp_path: Path, text: str, accepted: bool) -> None:
    (tmp_path / artifacts.REGISTERED_MODEL_META).write_text(text)
    assert artifacts.is_mlflow_download_marker(str(tmp_path), VERSION) is accepted
