"""The only place mlgate writes human-readable text; everything passes through redaction.

Text printed here is data, never a CI command: much of it comes from outside (MLflow tags,
file names, approver comments, server answers), and CI agents act on command syntax in a
step's output (Azure DevOps on ``##vso[`` anywhere in a line, GitHub on a line starting with
``::``). :func:`neutralise` breaks that syntax with an invisible zero-width space. The CI
adapters in :mod:`mlgate.platforms` write their own commands directly, not through here.
"""

from __future__ import annotations

import sys

from mlgate.redact import redact

_ZWSP = "\u200b"


def neutralise(text: str) -> str:
    """``text`` with every Azure DevOps logging command and GitHub workflow command defused."""
    text = text.replace("##vso[", f"##vso{_ZWSP}[").replace("##[", f"##{_ZWSP}[")
    if "::" in text:
        text = "\n".join(_ZWSP + line if line.lstrip().startswith("::") else line for line in text.split("\n"))
    return text


def out(text: str = "") -> None:
    """Print ``text`` to stdout (results a user or pipeline reads)."""
    sys.stdout.write(neutralise(redact(text)) + "\n")
    sys.stdout.flush()


def err(text: str = "") -> None:
    """Print ``text`` to stderr (diagnostics, progress)."""
    sys.stderr.write(neutralise(redact(text)) + "\n")
    sys.stderr.flush()


def is_terminal() -> bool:
    return sys.stderr.isatty()
