"""The small request/reply types the protocol handlers see (independent of WSGI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

# A JSON value as the service answers it (and the names and ids its log lines carry).
Json: TypeAlias = "str | int | float | bool | Sequence[Json] | Mapping[str, Json] | None"
LogFields = Mapping[str, Json]


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
    body: Mapping[str, Json] | bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    log_fields: LogFields = field(default_factory=dict)


def error_reply(status: int, message: str, **log_fields: Json) -> Reply:
    return Reply(status, {"error": message}, log_fields=log_fields)
