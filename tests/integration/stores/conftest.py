"""A real `mlflow server --no-serve-artifacts` whose artifact root is a container in Azurite.

The server and the test process both reach Azurite through ``AZURE_STORAGE_CONNECTION_STRING``
(as MLflow's own Azure store does); the models are logged by the real ``mlflow`` client straight
into the container, and mlgate reads them back from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlgate.demo.mlflow_server import LocalMlflow
from tests.integration.ledger.conftest import Azurite, azurite  # noqa: F401  (the session's emulator)
from tests.integration.lineage.conftest import MODEL_TAGS, POLICY, Built, build_model, model_files

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

CONTAINER = "mlflow"
ROOT = f"wasbs://{CONTAINER}@devstoreaccount1.blob.core.windows.net/artifacts"
_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCESS_KEY", "MLGATE_IDENTITY", "GITHUB_ACTIONS", "TF_BUILD")


@dataclass(frozen=True)
class BlobSetup:
    uri: str
    azurite: Azurite
    models: dict[str, Built]
    policy: Path

    def container(self) -> ContainerClient:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(self.azurite.connection_string, CONTAINER)


@pytest.fixture(scope="session")
def blob_mlflow(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobSetup]:  # noqa: F811
    from azure.storage.blob import ContainerClient

    ContainerClient.from_connection_string(azurite.connection_string, CONTAINER).create_container()
    root = tmp_path_factory.mktemp("mlflow-blob")
    saved = {name: os.environ.pop(name) for name in _ENV if name in os.environ}
    server = LocalMlflow(root, artifact_root=ROOT, env={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    mp = pytest.MonkeyPatch()
    try:
        server.start()
        mp.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        work = tmp_path_factory.mktemp("blob-models")
        models = {name: build_model(server.uri, work, name, **spec) for name, spec in {
            "blob-traced": {"files": model_files(3, 2)},
            "blob-tamper": {},
            "blob-run": {"run_source": True},
        }.items()}
        policy = root / "policy.yaml"
        policy.write_text(POLICY)
        yield BlobSetup(server.uri, azurite, models, policy)
    finally:
        mp.undo()
        server.stop()
        os.environ.update(saved)


@pytest.fixture()
def on_blob(blob_mlflow: BlobSetup, monkeypatch: pytest.MonkeyPatch) -> BlobSetup:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", blob_mlflow.uri)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", blob_mlflow.azurite.connection_string)
    return blob_mlflow


__all__ = ["MODEL_TAGS", "BlobSetup"]
