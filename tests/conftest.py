"""Shared test configuration: an empty secret registry per test, and one real ``mlflow server``.

The server (:class:`mlgate.demo.mlflow_server.LocalMlflow`) runs with one worker, job execution
off, a SQLite backend and a local artifact store served through its ``mlflow-artifacts`` proxy,
in its own process session; the whole group (it spawns children) is killed at the end. It is
declared here, at the root, so every suite (integration, hostile) shares the one session server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate import redact
from mlgate.demo.mlflow_server import LocalMlflow


@pytest.fixture(autouse=True)
def _clean_secret_registry() -> Iterator[None]:
    redact.clear()
    yield
    redact.clear()


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(scope="session")
def mlflow_server_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(tracking URI, state directory) of one real MLflow server for the whole test session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    saved = {name: os.environ.pop(name) for name in _MLFLOW_ENV if name in os.environ}
    server = LocalMlflow(root)
    try:
        server.start()
    finally:
        os.environ.update(saved)
    try:
        yield server.uri, root
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_state: tuple[str, Path]) -> str:
    """The tracking URI of a real MLflow server shared by the whole test session."""
    return mlflow_server_state[0]


@pytest.fixture(scope="session")
def mlflow_artifacts_root(mlflow_server_state: tuple[str, Path]) -> Path:
    """Where that server keeps artifact files (for tests that tamper with the store)."""
    return mlflow_server_state[1] / "artifacts"
