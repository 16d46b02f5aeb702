"""The platform back-ends, registered by name, and which one this environment is.

:data:`BACKENDS` maps each ``--platform`` name to its :class:`~mlgate.platforms.base.Platform`
subclass (imported on first use, so ``mlgate --help`` loads none of them). ``auto`` picks the
first CI whose marker is set (``GITHUB_ACTIONS``, ``TF_BUILD``), else ``local``. A new CI is one
module with one subclass and one line here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlgate.errors import UsageError

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalRequest
    from mlgate.platforms.base import Platform

# name -> "module:Class", in detection order (the fallback, local, last)
BACKENDS: dict[str, str] = {
    "github": "mlgate.platforms.github:GitHubActions",
    "azure-devops": "mlgate.platforms.azure_devops:AzureDevOps",
    "local": "mlgate.platforms.local:Local",
}
# name -> its class's ``marker`` (tests/unit/test_platform_registry.py checks them): detection loads
# only the module of a CI whose marker is set, so a local run imports no CI adapter
MARKERS: dict[str, str | None] = {"github": "GITHUB_ACTIONS", "azure-devops": "TF_BUILD", "local": None}
NAMES = tuple(BACKENDS)


def backend(name: str) -> type[Platform]:
    """The platform class registered as ``name``."""
    target = BACKENDS.get(name)
    if target is None:
        raise UsageError(f"unknown platform {name!r}", hint="use one of: auto, " + ", ".join(NAMES))
    module, _, attribute = target.partition(":")
    cls: type[Platform] = getattr(importlib.import_module(module), attribute)
    return cls


def running_ci(environ: Mapping[str, str] | None = None) -> type[Platform] | None:
    """The CI whose job this environment is (its marker is set), or None outside CI."""
    env = os.environ if environ is None else environ
    for name in NAMES:
        marker = MARKERS[name]
        if marker is None or env.get(marker, "").strip().lower() != "true":
            continue  # what Platform.detected would say, without loading the class
        cls = backend(name)
        if cls.is_ci and cls.detected(env):
            return cls
    return None


def platform_name(requested: str | None = "auto", environ: Mapping[str, str] | None = None) -> str:
    if requested and requested != "auto":
        return requested
    ci = running_ci(environ)
    return ci.name if ci is not None else "local"


def detect_platform(requested: str | None = "auto", environ: Mapping[str, str] | None = None) -> Platform:
    """Return the adapter for ``requested`` (``auto`` detects it from the environment)."""
    env = dict(os.environ if environ is None else environ)
    return backend(platform_name(requested, env))(env)


def approval_platform(
    request: ApprovalRequest, requested: str | None = "auto", environ: Mapping[str, str] | None = None
) -> Platform:
    """The platform whose approvals name the approvers of this run; every refusal before anything is read.

    Inside a CI run that is the CI itself: ``--platform local`` there is refused (see
    :meth:`Local.check_approval_request <mlgate.platforms.local.Local.check_approval_request>`), as are
    ``--approver``/``--comment``, and another CI's platform (``--platform azure-devops`` in a GitHub
    Actions job, pointed at a server of the pipeline's choosing) is refused here. All exit 2.
    """
    env = dict(os.environ if environ is None else environ)
    platform = detect_platform(requested, env)
    ci = running_ci(env)
    if ci is not None and platform.is_ci and not type(platform).detected(env):
        raise UsageError(
            f"--platform {platform.name} cannot read approvals in {ci.title} ({ci.marker} is set): inside a CI run "
            "the approvers come only from that CI's own approvals API, so a pipeline cannot name its own approver",
            hint=f"drop --platform / MLGATE_PLATFORM (or use --platform {ci.name}) and configure the approval there",
        )
    platform.check_approval_request(request)
    return platform
