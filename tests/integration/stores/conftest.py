"""Real `mlflow server --no-serve-artifacts` instances whose artifact root is object storage.

* ``blob``: a container in Azurite; the server, the ``mlflow`` client and mlgate reach it through
  ``AZURE_STORAGE_CONNECTION_STRING``, as MLflow's own Azure store does.
* ``s3``: a bucket in moto's S3 server (``ThreadedMotoServer`` on loopback), reached through
  ``MLFLOW_S3_ENDPOINT_URL`` and ``AWS_*`` variables, as MLflow's own S3 store does.

The models are logged by the real ``mlflow`` client straight into the store; mlgate reads them
back from there. :class:`StoreSetup` gives the tests the same handles on either store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlgate.demo.mlflow_server import LocalMlflow, free_port
from tests.integration.ledger.conftest import Azurite, azurite  # noqa: F401  (the session's emulator)
from tests.integration.lineage.conftest import POLICY, Built, build_model, model_files

CONTAINER = "mlflow"
BLOB_ROOT = f"wasbs://{CONTAINER}@devstoreaccount1.blob.core.windows.net/artifacts"
S3_ROOT = f"s3://{CONTAINER}/artifacts"
_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCESS_KEY", "MLGATE_IDENTITY", "GITHUB_ACTIONS", "TF_BUILD",
        "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
SPECS = {"traced": {"files": model_files(3, 2)}, "tamper": {}, "run": {"run_source": True}}


@dataclass(frozen=True)
class StoreSetup:
    """One MLflow server writing to one store, with its models and the store's raw handles."""

    name: str
    uri: str  # tracking URI
    root: str  # the server's artifact root URI
    env: dict[str, str]  # what the client and mlgate need to reach the store
    models: dict[str, Built]
    policy: Path
    put: Callable[[str, bytes], None]  # raw writes, keys relative to the container/bucket
    delete: Callable[[str], None]
    list_keys: Callable[[], list[str]]
    failing_env: Callable[[int, str], dict[str, str]]  # (fake store port, canary secret): env reaching the fake
    says: tuple[str, ...]  # what a store error names

    def key_of(self, built: Built, name: str) -> str:
        """The key of ``name`` in ``built``'s logged-model directory."""
        found = [k for k in self.list_keys() if k.endswith(f"{built.model_id}/artifacts/MLmodel")]
        assert found, built.model_id
        return found[0].removesuffix("MLmodel") + name


@contextlib.contextmanager
def _server(root: Path, artifact_root: str, env: dict[str, str]) -> Iterator[tuple[str, dict[str, Built], Path]]:
    saved = {name: os.environ.pop(name) for name in _ENV if name in os.environ}
    server = LocalMlflow(root, artifact_root=artifact_root, env=env)
    mp = pytest.MonkeyPatch()
    try:
        server.start()
        for name, value in env.items():
            mp.setenv(name, value)
        work = root / "models"
        models = {name: build_model(server.uri, work, name, **spec) for name, spec in SPECS.items()}
        policy = root / "policy.yaml"
        policy.write_text(POLICY)
        yield server.uri, models, policy
    finally:
        mp.undo()
        server.stop()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def blob_store(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreSetup]:  # noqa: F811
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(azurite.connection_string, CONTAINER)
    container.create_container()
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}

    def failing(port: int, canary: str) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={canary};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"}

    with _server(tmp_path_factory.mktemp("mlflow-blob"), BLOB_ROOT, env) as (uri, models, policy):
        yield StoreSetup(
            "blob", uri, BLOB_ROOT, env, models, policy,
            put=lambda key, data: container.upload_blob(key, data, overwrite=True) and None,
            delete=container.delete_blob, list_keys=lambda: [b.name for b in container.list_blobs()],
            failing_env=failing,
            says=("Azure Blob", "container mlflow of account devstoreaccount1", "AZURE_STORAGE_CONNECTION_STRING"),
        )


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[dict[str, str], Any]]:
    """A moto S3 server on loopback with the bucket made: (the environment reaching it, a boto3 client)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket=CONTAINER)
        yield env, s3
    finally:
        moto.stop()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreSetup]:
    with moto_s3() as (env, s3):
        yield from _s3_setup(tmp_path_factory, env, s3)


def _s3_setup(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], s3: Any) -> Iterator[StoreSetup]:

    def keys() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=CONTAINER)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def failing(port: int, canary: str) -> dict[str, str]:
        return {**env, "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_SECRET_ACCESS_KEY": canary}

    with _server(tmp_path_factory.mktemp("mlflow-s3"), S3_ROOT, env) as (uri, models, policy):
        yield StoreSetup(
            "s3", uri, S3_ROOT, env, models, policy,
            put=lambda key, data: s3.put_object(Bucket=CONTAINER, Key=key, Body=data) and None,
            delete=lambda key: s3.delete_object(Bucket=CONTAINER, Key=key) and None, list_keys=keys,
            failing_env=failing, says=("S3", "bucket mlflow at http://127.0.0.1:", "AWS credentials from env"),
        )


@pytest.fixture(params=["blob", "s3"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> StoreSetup:
    """Each store in turn, with the test's environment set to reach it (and nothing else)."""
    setup: StoreSetup = request.getfixturevalue(f"{request.param}_store")
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setup.uri)
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    return setup
