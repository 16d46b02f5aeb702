"""Model references: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``NAME/VERSION``, ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgate.errors import UsageError

_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_VERSION = re.compile(r"^[0-9]{1,18}$")  # ASCII digits only ("²" is a digit to str.isdigit); fits an int64
MAX_NAME = 256


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        raw = text.strip()
        body = raw[len("models:/") :] if raw.startswith("models:/") else raw
        hint = "write models:/NAME/VERSION, models:/NAME@ALIAS, NAME/VERSION or NAME@ALIAS"
        if "@" in body:
            name, _, alias = body.rpartition("@")
            if not name or "/" in name or len(name) > MAX_NAME or not _ALIAS.match(alias):
                raise UsageError(f"not a model reference: {_shown(text)}", hint=hint)
            return cls(name=name, alias=alias)
        name, sep, version = body.rpartition("/")
        if not sep or not name or "/" in name or len(name) > MAX_NAME:
            raise UsageError(f"not a model reference: {_shown(text)}", hint=hint)
        if not _VERSION.match(version) or int(version) < 1:
            raise UsageError(f"not a model reference: {_shown(text)}: the version must be 1 to 18 ASCII digits",
                             hint=hint)
        return cls(name=name, version=str(int(version)))


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to 80 characters (a ref can be a 5,000-digit argument)."""
    return repr(text) if len(text) <= 80 else repr(text[:80]) + f"... ({len(text)} characters)"
