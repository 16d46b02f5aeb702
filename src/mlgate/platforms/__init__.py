"""CI platform adapters: masking, outputs, annotations, summaries, run context and approvals."""

from mlgate.platforms.base import Platform
from mlgate.platforms.detect import NAMES, approval_platform, backend, detect_platform, running_ci

__all__ = ["NAMES", "Platform", "approval_platform", "backend", "detect_platform", "running_ci"]
