"""A developer's machine: nothing to mask in a CI log, outputs printed as KEY=VALUE."""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Mapping

from mlgate.console import err, out
from mlgate.platforms.base import CIContext, Level, Platform


class Local(Platform):
    name = "local"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)

    def _emit_mask(self, value: str) -> None:
        # No CI log to mask; the value is registered for redaction by Platform.mask.
        return None

    def set_output(self, name: str, value: str, *, secret: bool = False) -> None:
        out(f"{name}={'***' if secret else value}")

    def set_env(self, name: str, value: str, *, secret: bool = False) -> None:
        # A local run has no later step to hand values to; never print a secret.
        out(f"{name}={'***' if secret else value}")

    def annotate(self, level: Level, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        err(f"{level}: {where}{message}")

    def summary(self, markdown: str) -> None:
        return None

    def context(self) -> CIContext:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            user = None
        commit = None
        try:
            proc = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
            )
            if proc.returncode == 0:
                commit = proc.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            commit = None
        return CIContext(platform="local", run_url=None, commit=commit, requester=user)
