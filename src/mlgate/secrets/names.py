"""Parsing ``--secrets`` and mapping Key Vault secret names onto CI variable names.

``--secrets`` is a comma-separated list of secret names, or ``*`` for every enabled, unexpired
secret of the vault. Each name maps to a variable name by upper-casing it and turning dashes
into underscores (``db-password`` -> ``DB_PASSWORD``); ``NAME:VARIABLE`` overrides that for one
secret (``db-password:PGPASSWORD``). With ``*``, overrides may follow: ``*,db-password:PGPASSWORD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgate.errors import EvaluationError

# Key Vault object names: 1-127 characters, letters, digits and dashes.
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretNameError(EvaluationError):
    """``--secrets`` names something Key Vault cannot hold or a CI cannot receive (exit 3, nothing fetched)."""


@dataclass(frozen=True)
class SecretSpec:
    name: str
    variable: str


@dataclass(frozen=True)
class Selection:
    """What ``--secrets`` asked for: explicit names, or everything (``*``) with optional overrides."""

    all: bool
    specs: tuple[SecretSpec, ...]

    def overrides(self) -> dict[str, str]:
        return {s.name.lower(): s.variable for s in self.specs}


def default_variable(name: str) -> str:
    """``db-password`` -> ``DB_PASSWORD``."""
    return name.upper().replace("-", "_")


def check_secret_name(name: str, *, position: str = "") -> None:
    if not SECRET_NAME.match(name):
        where = f" ({position})" if position else ""
        raise SecretNameError(
            f"invalid Key Vault secret name {name!r}{where}",
            hint="secret names are 1-127 letters, digits and dashes (no underscores, dots or spaces); "
            "check the name in the vault",
        )


def parse_selection(text: str) -> Selection:
    """Parse ``a,b:VAR`` or ``*[,name:VAR...]``; error messages name the position of a bad entry."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise SecretNameError("--secrets is empty", hint="pass --secrets name1,name2 or --secrets '*'")
    everything = False
    specs: list[SecretSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items, start=1):
        position = f"entry {index} of --secrets"
        if not item:
            raise SecretNameError(f"{position} is empty", hint="remove the extra comma")
        if item == "*":
            everything = True
            continue
        name, sep, variable = item.partition(":")
        name, variable = name.strip(), variable.strip()
        check_secret_name(name, position=position)
        if sep and not VARIABLE_NAME.match(variable):
            raise SecretNameError(
                f"invalid variable name {variable!r} for secret {name!r} ({position})",
                hint="variable names start with a letter or _ and contain only letters, digits and _",
            )
        key = name.lower()  # Key Vault names are case-insensitive
        if key in seen:
            raise SecretNameError(f"secret {name!r} is listed twice (entries {seen[key]} and {index})",
                                  hint="list each secret once")
        seen[key] = index
        specs.append(SecretSpec(name, variable if sep else default_variable(name)))
    if everything and any(default_variable(s.name) == s.variable for s in specs):
        plain = next(s.name for s in specs if default_variable(s.name) == s.variable)
        raise SecretNameError(f"with '*', entry {plain!r} needs an override (NAME:VARIABLE)",
                              hint="'*' already fetches every secret; list a name only to rename it")
    return Selection(all=everything, specs=tuple(specs))


def resolve(selection: Selection, listed: list[str] | None = None) -> list[SecretSpec]:
    """The final name -> variable list; with ``*``, ``listed`` are the vault's usable secret names."""
    if not selection.all:
        specs = list(selection.specs)
    else:
        overrides = selection.overrides()
        specs = [SecretSpec(n, overrides.get(n.lower(), default_variable(n))) for n in listed or []]
        missing = sorted(set(overrides) - {n.lower() for n in listed or []})
        if missing:
            raise SecretNameError(
                f"override for {', '.join(missing)} given, but the vault lists no such enabled, unexpired secret",
                hint="check the name, or enable/renew the secret",
            )
    by_variable: dict[str, str] = {}
    for spec in specs:
        other = by_variable.get(spec.variable.upper())
        if other is not None:
            raise SecretNameError(
                f"secrets {other!r} and {spec.name!r} would both be handed over as {spec.variable}",
                hint=f"rename one with NAME:VARIABLE, e.g. {spec.name}:{spec.variable}_2",
            )
        by_variable[spec.variable.upper()] = spec.name
        if not VARIABLE_NAME.match(spec.variable):
            raise SecretNameError(
                f"secret {spec.name!r} maps to {spec.variable!r}, which is not a valid variable name",
                hint=f"rename it with {spec.name}:VARIABLE (a name starting with a letter or _)",
            )
    return specs
