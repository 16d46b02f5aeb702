"""The only place mlgate writes human-readable text; everything passes through redaction."""

from __future__ import annotations

import sys

from mlgate.redact import redact


def out(text: str = "") -> None:
    """Print ``text`` to stdout (results a user or pipeline reads)."""
    sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()


def err(text: str = "") -> None:
    """Print ``text`` to stderr (diagnostics, progress)."""
    sys.stderr.write(redact(text) + "\n")
    sys.stderr.flush()


def is_terminal() -> bool:
    return sys.stderr.isatty()
