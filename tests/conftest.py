"""Shared test configuration: every test starts with an empty secret registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlgate import redact


@pytest.fixture(autouse=True)
def _clean_secret_registry() -> Iterator[None]:
    redact.clear()
    yield
    redact.clear()
