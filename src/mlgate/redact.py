"""Process-wide registry of secret values, so no output path can print one.

Every secret mlgate handles is registered here *before* anything else is printed; the
console and the CI adapters pass all text through :func:`redact`. This is defence in
depth: code must still never put a secret into a message in the first place.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

_lock = threading.Lock()
_values: set[str] = set()
MASK = "***"


def register(value: str) -> list[str]:
    """Remember ``value`` (and each of its lines) as secret; return the strings registered."""
    parts = [value, *value.splitlines()]
    new = [p for p in dict.fromkeys(parts) if p.strip()]
    with _lock:
        _values.update(new)
    return new


def redact(text: str) -> str:
    """Replace every registered secret value in ``text`` with ``***`` (longest first)."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def clear() -> None:
    """Forget every registered value (tests only)."""
    with _lock:
        _values.clear()


class RedactingFilter:
    """Replace each log record's message with its redacted, fully formatted text.

    A handler filter (an object with ``filter(record)``); not a :class:`logging.Filter`, so that
    importing this module does not import :mod:`logging` (most commands never load it).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        record.msg = redact(text)
        record.args = None
        if record.exc_info:
            import traceback

            record.msg += "\n" + redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
            record.exc_text = None
        return True


def redact_logging() -> None:
    """Attach a :class:`RedactingFilter` to every handler of the root logger (once each).

    Called for every command by the CLI: at ``-vv`` third-party libraries (urllib3, the Azure
    SDK, MSAL, PyGithub) log request lines and headers, which may carry a registered secret.
    """
    import logging

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
