"""Pass every log record through the secret registry (``-vv`` turns on third-party debug logs)."""

from __future__ import annotations

import logging

from mlgate.redact import redact


class RedactingFilter(logging.Filter):
    """Replace each record's message with its redacted, fully formatted text."""

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
    """Attach a :class:`RedactingFilter` to every handler of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
