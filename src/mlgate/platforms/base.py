"""The interface every CI platform adapter implements."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from mlgate import redact

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalReport, ApprovalRequest
    from mlgate.errors import Error

Level = Literal["error", "warning", "notice"]


@dataclass(frozen=True)
class CIContext:
    """Where this run happens; recorded in evidence and ledger entries."""

    platform: str
    run_url: str | None = None
    run_id: str | None = None
    commit: str | None = None
    requester: str | None = None
    repository: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Platform(abc.ABC):
    """A CI system as seen by a step running inside it, and everything mlgate does differently there.

    A back-end is one subclass registered by name in :data:`mlgate.platforms.detect.BACKENDS`; it
    says how it is detected (:attr:`marker`), which identity ``mlgate secrets`` uses by default
    (:attr:`default_identity`), how secrets are handed to later steps (:attr:`secrets_to`) and where
    the named approvers of a run come from (:meth:`read_approvals`).
    """

    name: ClassVar[str] = "base"
    title: ClassVar[str] = "a CI run"  # for messages: "a GitHub Actions run"
    marker: ClassVar[str | None] = None  # the variable the CI sets to "true" in every job
    is_ci: ClassVar[bool] = True
    default_identity: ClassVar[str] = "auto"  # the `mlgate secrets --identity` kind this CI federates
    secrets_to: ClassVar[str] = "env"  # `mlgate secrets --to` default: "env" or "output"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)

    @classmethod
    def detected(cls, environ: Mapping[str, str]) -> bool:
        """Whether ``environ`` is a job of this CI (its :attr:`marker` is ``true``)."""
        return cls.marker is not None and environ.get(cls.marker, "").strip().lower() == "true"

    def check_approval_request(self, request: ApprovalRequest) -> None:
        """Refuse (exit 2) a request this platform must not answer, before anything is read.

        A CI platform refuses approvers declared by hand (``--approver``/``--comment``).
        """
        refuse_declared(self, request)

    @abc.abstractmethod
    def read_approvals(self, request: ApprovalRequest) -> ApprovalReport:
        """The named approvers of this run for ``request.stage``, from this CI's own approvals
        (after :meth:`check_approval_request`)."""

    def mask(self, value: str) -> None:
        """Make ``value`` (and each of its lines) unprintable, in our output and the CI log.

        Must be called before anything else is printed once a secret is known.
        """
        masked: set[str] = self.__dict__.setdefault("_masked", set())
        for part in redact.register(value):
            if part not in masked:
                self._emit_mask(part)
                masked.add(part)

    @abc.abstractmethod
    def _emit_mask(self, value: str) -> None:
        """Tell the CI to hide ``value`` in its log (a single line)."""

    @abc.abstractmethod
    def set_output(self, name: str, value: str, *, secret: bool = False) -> None:
        """Hand ``value`` to later steps as a step output / pipeline variable."""

    @abc.abstractmethod
    def set_env(self, name: str, value: str, *, secret: bool = False) -> None:
        """Put ``value`` into the environment of later steps."""

    @abc.abstractmethod
    def annotate(self, level: Level, message: str, *, file: str | None = None, line: int | None = None) -> None:
        """Surface ``message`` as an error/warning/notice annotation of the run."""

    @abc.abstractmethod
    def summary(self, markdown: str) -> None:
        """Append ``markdown`` to the run's summary page."""

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """Fold the log lines printed inside into one collapsible section titled ``title``."""
        self._group(title, start=True)
        try:
            yield
        finally:
            self._group(title, start=False)

    def _group(self, title: str, *, start: bool) -> None:
        """Start or end a log group (a CI without groups prints nothing)."""
        return None

    def report(self, error: Error, command: str) -> None:
        """Annotate a failure (exit 1, 2 or 3) of ``command`` with its full diagnostics (never cut: every
        line and the hint), at the user's file and line when one is at fault."""
        text = error.diagnostics().removeprefix("error: ")
        self.annotate("error", f"{command}: {text}", file=error.source_file, line=error.source_line)

    @abc.abstractmethod
    def context(self) -> CIContext:
        """Run URL, commit and requester of the current run, where the CI says them."""

    def check_name(self, name: str, *, output: bool = False) -> None:
        """Raise :class:`~mlgate.errors.UsageError` if ``name`` cannot be an output (or env variable) here."""
        return None

    def fail(self, message: str) -> None:
        """Report that this step failed with ``message`` (the exit code still decides)."""
        self.annotate("error", message)


SUMMARY_LIMIT = 1024 * 1024  # GitHub's documented per-step summary limit (1 MiB); applied on every CI


def truncate_utf8(text: str, budget: int, note: str) -> str:
    """``text`` if it fits in ``budget`` UTF-8 bytes, else its longest prefix that fits with ``note`` appended.

    Returns ``""`` when not even the note fits. Never splits a character.
    """
    data = text.encode("utf-8")
    if len(data) <= budget:
        return text
    tail = note.encode("utf-8")
    room = budget - len(tail)
    if room < 0:
        return ""
    return data[:room].decode("utf-8", errors="ignore") + note


def refuse_declared(platform: Platform, request: ApprovalRequest) -> None:
    """Inside a CI run the approvers come only from its approvals API: refuse any given by hand."""
    from mlgate.errors import UsageError

    if request.declared:
        given = " and ".join(request.declared)
        raise UsageError(
            f"{given} {'is' if len(request.declared) == 1 else 'are'} only for local runs; in {platform.title} "
            "the approver is read from the CI's own approval, so a pipeline cannot name its own approver",
            hint=f"configure the approval on the environment / stage and drop {given} (MLGATE_* defaults "
            "included); --approver and --comment are for runs outside CI",
        )
