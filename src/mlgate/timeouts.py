"""The timeouts of MLflow requests and artifact downloads, chosen once per command (standard library only).

Kept apart from :mod:`mlgate.lineage.mlflow` so that building the command line (which shows the
defaults in ``--help``) does not import ``requests``: ``mlgate seal DIR`` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    """The (connect, read) timeouts of every request to MLflow and of artifact downloads, in seconds.

    ``read`` also bounds the wait for the first byte of an answer: a proxy that copies a large object
    from its store before answering needs more (or presigned downloads, :mod:`mlgate.lineage.presigned`).
    Set from ``--connect-timeout`` / ``--read-timeout`` (``MLGATE_CONNECT_TIMEOUT`` / ``MLGATE_READ_TIMEOUT``).
    """

    connect: float = 5.0
    read: float = 30.0


DEFAULT_TIMEOUTS = Timeouts()
_timeouts = [DEFAULT_TIMEOUTS]  # what the command line chose; read when a client is built


def set_timeouts(timeouts: Timeouts) -> None:
    """The timeouts of the clients built from now on (the CLI sets them once per command)."""
    _timeouts[0] = timeouts


def current_timeouts() -> Timeouts:
    return _timeouts[0]
