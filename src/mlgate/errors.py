"""One error hierarchy, caught once in :func:`mlgate.cli.main` and mapped to exit codes.

Exit codes (the CLI contract):

* 0 -- passed
* 1 -- the gate said no (mismatch, untraceable, policy refused, duty conflict, tampering)
* 2 -- usage or configuration error (bad flags, malformed manifest or policy)
* 3 -- could not evaluate (network, service, timeout, unreadable file); never a pass
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNEVALUATED = 3


class Error(Exception):
    """Base class of every error mlgate reports to a user.

    ``message`` says what happened; ``hint`` says what to do about it. Neither may ever
    contain a secret value: callers pass names, never values. ``source_file`` (and
    ``source_line``) name the user's file at fault, where one is (a policy, a manifest): the CI
    annotation of the failure then points at it.
    """

    exit_code: int = EXIT_UNEVALUATED

    def __init__(self, message: str, *, hint: str | None = None, source_file: str | None = None,
                 source_line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.source_file = source_file
        self.source_line = source_line

    def diagnostics(self) -> str:
        """The text shown to the user: what happened, then how to fix it."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  how to fix: {self.hint}"
        return text


class UsageError(Error):
    """Bad command line or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class InvalidInputError(UsageError):
    """A file the user gave us (manifest, policy, config) is malformed (exit 2)."""


class RefusedError(Error):
    """The gate said no: mismatch, hostile input, untraceable model, policy, duty conflict (exit 1)."""

    exit_code = EXIT_REFUSED


class EvaluationError(Error):
    """Could not evaluate: I/O, network, service or timeout failure (exit 3). Never a pass."""

    exit_code = EXIT_UNEVALUATED


class NetworkError(EvaluationError):
    """A remote service could not be reached or answered something unusable (exit 3)."""
