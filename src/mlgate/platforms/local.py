"""A developer's machine: nothing to mask in a CI log, outputs printed as KEY=VALUE.

The only platform where an approval is declared by hand (``--approver NAME --comment TEXT``),
and therefore refused whenever the environment is a CI run (``GITHUB_ACTIONS``, ``TF_BUILD``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlgate.console import err, out
from mlgate.platforms.base import CIContext, Level, Platform

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalReport, ApprovalRequest


class Local(Platform):
    name = "local"
    title = "a local run"
    is_ci = False

    @classmethod
    def detected(cls, environ: Mapping[str, str]) -> bool:
        return True  # the fallback when no CI says it runs this job

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

    def check_approval_request(self, request: ApprovalRequest) -> None:
        """A hand-declared approval is refused whenever a CI runs this job."""
        from mlgate.errors import UsageError
        from mlgate.platforms.detect import running_ci

        ci = running_ci(self._env)
        if ci is None:
            return
        raise UsageError(
            f"a local approval (--platform local, or MLGATE_PLATFORM=local) cannot be recorded in {ci.title} "
            f"({ci.marker} is set): inside a CI run the approvers come only from the CI's own approvals API, "
            "so a pipeline cannot name its own approver",
            hint="drop --platform local / MLGATE_PLATFORM=local and --approver, and configure the approval on the "
            f"environment or stage (the {ci.name} platform reads it); --approver is for runs outside CI",
        )

    def read_approvals(self, request: ApprovalRequest) -> ApprovalReport:
        """``--approver``/``--comment``, only when no CI runs this job."""
        from mlgate.approvals import local
        from mlgate.ledger.base import utc_now

        self.check_approval_request(request)
        return local.read_approvals(request.approvers, request.comment, time=utc_now())

    def context(self) -> CIContext:
        import getpass
        import subprocess

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
