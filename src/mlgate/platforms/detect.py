"""Pick the platform adapter from the environment (``GITHUB_ACTIONS``, ``TF_BUILD``) or ``--platform``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlgate.errors import UsageError
from mlgate.platforms.base import Platform


def platform_name(requested: str | None = "auto", environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if requested and requested != "auto":
        return requested
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return "github"
    if env.get("TF_BUILD", "").lower() == "true":
        return "azure-devops"
    return "local"


def detect_platform(requested: str | None = "auto", environ: Mapping[str, str] | None = None) -> Platform:
    """Return the adapter for ``requested`` (``auto`` detects it from the environment)."""
    env = dict(os.environ if environ is None else environ)
    name = platform_name(requested, env)
    if name == "github":
        from mlgate.platforms.github import GitHubActions

        return GitHubActions(env)
    if name == "azure-devops":
        from mlgate.platforms.azure_devops import AzureDevOps

        return AzureDevOps(env)
    if name == "local":
        from mlgate.platforms.local import Local

        return Local(env)
    raise UsageError(f"unknown platform {name!r}", hint="use one of: auto, github, azure-devops, local")
