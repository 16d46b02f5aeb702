"""The interface every CI platform adapter implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal

from mlgate import redact

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
    """A CI system as seen by a step running inside it."""

    name: str = "base"

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

    @abc.abstractmethod
    def context(self) -> CIContext:
        """Run URL, commit and requester of the current run, where the CI says them."""

    def check_name(self, name: str, *, output: bool = False) -> None:
        """Raise :class:`~mlgate.errors.UsageError` if ``name`` cannot be an output (or env variable) here."""
        return None

    def fail(self, message: str) -> None:
        """Report that this step failed with ``message`` (the exit code still decides)."""
        self.annotate("error", message)

    @property
    def is_ci(self) -> bool:
        return self.name != "local"


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
