"""Structured logs of the service: one JSON object per line, redacted, never a header or a body.

Callers log an event name and a few named fields (ids, statuses, durations). Secret values
are kept out by construction (handlers never pass headers, bodies or tokens) and, as a
second line of defence, every line goes through :func:`mlgate.redact.redact`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO

from mlgate.redact import redact

LOGGER_NAME = "mlgate.service"
logger = logging.getLogger(LOGGER_NAME)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: time, level, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: a message or traceback might quote a request.
            entry.setdefault("exception", record.exc_info[0].__name__)
        return redact(json.dumps(entry, default=str, ensure_ascii=False, sort_keys=False))


def log_event(level: int, event: str, **fields: object) -> None:
    """Log ``event`` with ``fields`` (names and ids only, never a secret or a payload)."""
    logger.log(level, event, extra={"fields": fields})


def configure(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the service's logs (and waitress's) to ``stream`` as JSON lines; return the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER_NAME, "waitress"):
        target = logging.getLogger(name)
        target.handlers = [handler]
        target.setLevel(level)
        target.propagate = False
    return handler
