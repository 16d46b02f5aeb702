"""The command's overall deadline: nothing outside may stall the gate past it.

:func:`armed` runs a command under a wall-clock deadline (``--deadline SECONDS`` /
``MLGATE_DEADLINE``, default :data:`DEFAULT_SECONDS`). When it passes, the command stops
with :class:`DeadlineExceeded` (exit 3, never a pass), wherever it was waiting: a socket
read of any library (requests, the Azure SDK), a lock, a future. It uses ``SIGALRM``, so it
is only armed in the main thread of a POSIX process; elsewhere (a WSGI worker thread) the
per-request limits of :mod:`mlgate.http` still bound every call.

Writes that must not be torn (a ledger append, a file replace) run inside :func:`shielded`:
a deadline passing there is delivered when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from mlgate.errors import EvaluationError

DEFAULT_SECONDS = 900.0

_state = threading.local()
_shield_depth = 0
_pending = False
_seconds = 0.0
_fired = False


class DeadlineExceeded(EvaluationError):
    """The command ran past its overall deadline (exit 3)."""


def _raise() -> None:
    raise DeadlineExceeded(
        f"the command ran past its deadline of {_seconds:g} s (--deadline / MLGATE_DEADLINE); "
        "something it waited for (a server, a store, a lock) did not answer in time",
        hint="check the services mlgate talks to; raise --deadline only if the work is really that "
        "large; nothing was passed",
    )


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _pending, _fired
    _fired = True
    if _shield_depth:
        _pending = True
        return
    _raise()


def _usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def armed(seconds: float | None) -> Iterator[None]:
    """Run the block under a deadline of ``seconds`` (None or 0: no deadline)."""
    global _seconds, _pending, _fired
    if not seconds or seconds <= 0 or not _usable():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _seconds, _pending, _fired = float(seconds), False, False
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _state.elapsed = time.monotonic() - started
        _pending = False


def expired() -> bool:
    """Whether the last armed deadline passed (so worker threads may still be blocked)."""
    return _fired


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer a deadline passing inside the block to its end (for writes that must not be torn)."""
    global _shield_depth, _pending
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if not _shield_depth and _pending:
            _pending = False
            _raise()


def disarm() -> None:
    """Cancel the armed deadline (a long-running server, once started, is bounded per request instead)."""
    if _usable():
        signal.setitimer(signal.ITIMER_REAL, 0)
