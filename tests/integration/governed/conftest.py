"""A clean CI environment with MLflow configured, for governed-record tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import CI_VARS


@pytest.fixture
def env(mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """MLflow configured, no CI variables, a fresh ledger file, cwd in a temp dir without git."""
    for name in CI_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    yield {"uri": mlflow_server, "ledger": f"file:{tmp_path / 'ledger.jsonl'}", "tmp": str(tmp_path)}
