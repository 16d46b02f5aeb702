"""A developer's machine: ``--approver NAME --comment TEXT``, recorded as a local approval.

The requester is the local user (``getpass``) and the commit author comes from ``git`` when
the working directory is a repository (see :func:`commit_author`).
"""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Sequence

from mlgate.approvals import Approval, ApprovalReport, handles
from mlgate.errors import UsageError

SOURCE = "local"


def commit_author(commit: str | None = None) -> tuple[str, ...]:
    """Name and email of the author of ``commit`` (default HEAD), or () when git cannot say."""
    try:
        proc = subprocess.run(
            ["git", "log", "-1", "--format=%an%x00%ae", commit or "HEAD", "--"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if proc.returncode != 0:
        return ()
    return handles(*proc.stdout.strip().split("\x00"))


def read_approvals(approvers: Sequence[str], comment: str | None, *, time: str) -> ApprovalReport:
    names = [a.strip() for a in approvers if a and a.strip()]
    if not names:
        raise UsageError(
            "no approver given for a local record",
            hint="pass --approver NAME --comment TEXT (or run inside a CI with an approval)",
        )
    if not (comment or "").strip():
        raise UsageError("a local approval needs a reason", hint="pass --comment TEXT")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    approvals = tuple(
        Approval(
            approver=n,
            approver_id=n,
            comment=(comment or "").strip(),
            time=time,
            source=SOURCE,
            identities=handles(n),
        )
        for n in dict.fromkeys(names)
    )
    return ApprovalReport(SOURCE, approvals, None, handles(user), commit_author(), where="local")
