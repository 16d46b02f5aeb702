"""Fake Azure DevOps and GitHub servers on loopback (see tests/fakes/ci.py), one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.ci import FakeAzureDevOps, FakeGitHub


@pytest.fixture
def ado() -> Iterator[FakeAzureDevOps]:
    fake = FakeAzureDevOps()
    with fake.server:
        yield fake


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    with fake.server:
        yield fake
