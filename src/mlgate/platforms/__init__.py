"""CI platform adapters: masking, outputs, annotations, summaries and run context."""

from mlgate.platforms.base import Platform
from mlgate.platforms.detect import detect_platform

__all__ = ["Platform", "detect_platform"]
