"""The platform back-ends: one registry keyed by name; each back-end carries its own behaviour."""

from __future__ import annotations

import sys

import pytest

from mlgate import cli
from mlgate.errors import UsageError
from mlgate.platforms import NAMES, backend, detect_platform, running_ci
from mlgate.platforms.azure_devops import AzureDevOps
from mlgate.platforms.github import GitHubActions
from mlgate.platforms.local import Local


def test_the_registry_is_the_one_list_of_platforms() -> None:
    assert NAMES == ("github", "azure-devops", "local")
    assert ("auto", *NAMES) == cli.PLATFORMS
    assert [backend(n) for n in NAMES] == [GitHubActions, AzureDevOps, Local]
    assert all(backend(n).name == n for n in NAMES)
    with pytest.raises(UsageError, match="unknown platform 'jenkins'"):
        backend("jenkins")


def test_detection_markers_are_the_back_ends_own() -> None:
    """detect.MARKERS lets detection skip a CI adapter whose marker is unset: each says what its class says."""
    from mlgate.platforms.base import Platform
    from mlgate.platforms.detect import MARKERS

    assert list(MARKERS) == list(NAMES)
    for name in NAMES:
        cls = backend(name)
        assert MARKERS[name] == cls.marker, name
        if cls.is_ci:  # detected exactly when its marker is "true"
            assert cls.detected.__func__ is Platform.detected.__func__, name  # type: ignore[attr-defined]


def test_each_back_end_says_how_it_is_detected_and_its_defaults() -> None:
    assert (GitHubActions.marker, GitHubActions.default_identity, GitHubActions.secrets_to) == (
        "GITHUB_ACTIONS", "github-oidc", "output")
    assert (AzureDevOps.marker, AzureDevOps.default_identity, AzureDevOps.secrets_to) == (
        "TF_BUILD", "azure-pipelines", "env")
    assert (Local.marker, Local.is_ci, Local.secrets_to) == (None, False, "env")
    assert GitHubActions.detected({"GITHUB_ACTIONS": "true"}) and not GitHubActions.detected({"TF_BUILD": "True"})
    assert AzureDevOps.detected({"TF_BUILD": "True"}) and not AzureDevOps.detected({"TF_BUILD": "False"})
    assert Local.detected({})  # the fallback
    assert detect_platform("auto", {"GITHUB_ACTIONS": "true", "TF_BUILD": "True"}).name == "github"
    assert running_ci({"TF_BUILD": "true"}) is AzureDevOps


def test_the_registry_imports_no_back_end_for_help() -> None:
    import subprocess

    code = ("import sys, mlgate.cli; mods = [m for m in sys.modules if m.startswith('mlgate.platforms.')]; "
            "print(sorted(mods))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mlgate.platforms.detect']"  # the names only: no adapter, no base class
