"""What a secrets source is to mlgate: list usable names, fetch values, say what went wrong.

`mlgate secrets` and the check service's start-up speak only to :class:`SecretsSource`; one
module per back-end implements it (today :mod:`mlgate.secrets.keyvault`). A new back-end
(HashiCorp Vault, AWS Secrets Manager, ...) subclasses it, returns :class:`Secret` and
:class:`Failure` records, and raises :class:`SecretsError` subclasses (exit 3).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mlgate.errors import Error, EvaluationError


class SecretsError(EvaluationError):
    """A secrets source refused or failed (exit 3). ``fatal``: retrying other secrets is pointless."""

    def __init__(self, message: str, *, hint: str | None = None, fatal: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.fatal = fatal


@dataclass(frozen=True)
class Secret:
    name: str
    value: str = field(repr=False)
    version: str | None = None


@dataclass(frozen=True)
class Failure:
    name: str
    error: Error


class SecretsSource(ABC):
    """One store of secrets, reached with one identity."""

    #: where the secrets come from, as printed (never with credentials or a query)
    url: str

    @abstractmethod
    def list_usable(self, *, now: dt.datetime | None = None) -> tuple[list[str], list[str]]:
        """Names of the secrets that can be fetched now, and a note per skipped one."""

    @abstractmethod
    def fetch(self, names: Iterable[str], *, on_value: Callable[[str, str], None],
              now: dt.datetime | None = None) -> tuple[list[Secret], list[Failure]]:
        """Fetch ``names`` in order; ``on_value(name, value)`` runs the moment a value arrives (to mask it)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> SecretsSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
