"""The small request/reply types the protocol handlers see (independent of WSGI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    remote_addr: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    log_fields: Mapping[str, Any] = field(default_factory=dict)


def error_reply(status: int, message: str, **log_fields: Any) -> Reply:
    return Reply(status, {"error": message}, log_fields=log_fields)
