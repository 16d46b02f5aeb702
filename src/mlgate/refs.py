"""Model references: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``NAME/VERSION``, ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgate.errors import UsageError

_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


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
            if not name or "/" in name or not _ALIAS.match(alias):
                raise UsageError(f"not a model reference: {text!r}", hint=hint)
            return cls(name=name, alias=alias)
        name, sep, version = body.rpartition("/")
        if not sep or not name or "/" in name or not version.isdigit() or int(version) < 1:
            raise UsageError(f"not a model reference: {text!r}", hint=hint)
        return cls(name=name, version=str(int(version)))
