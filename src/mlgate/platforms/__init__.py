"""CI platform adapters: masking, outputs, annotations, summaries, run context and approvals.

Names are loaded on first use, so the CLI's parser (which needs only the registry's names,
:data:`mlgate.platforms.detect.NAMES`) imports no adapter and no dataclass machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.platforms.base import Platform
    from mlgate.platforms.detect import NAMES, approval_platform, backend, detect_platform, running_ci

__all__ = ["NAMES", "Platform", "approval_platform", "backend", "detect_platform", "running_ci"]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "Platform":
        return importlib.import_module("mlgate.platforms.base").Platform
    if name in __all__:
        return getattr(importlib.import_module("mlgate.platforms.detect"), name)
    raise AttributeError(f"module 'mlgate.platforms' has no attribute {name!r}")
