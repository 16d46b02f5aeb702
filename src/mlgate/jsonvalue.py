"""Bounded JSON parsing and typed field reading: the one place an outside answer gets its shape checked.

:func:`parse_json` refuses what the standard parser would turn into a crash or a wrong value:
nesting deeper than :data:`MAX_DEPTH`, integers longer than :data:`MAX_INT_DIGITS` digits,
non-finite numbers (``1e999``, ``NaN``, ``Infinity``), invalid UTF-8.

:class:`Fields` reads one JSON object field by field, each read checking the type (a string
is a string, a number is a finite int or float and never a boolean, an object is an object)
and naming the field and the answer when it is wrong::

    info = Fields(body, "MLflow answer for /runs/get").obj("run").obj("info")
    status = info.text("status")              # raises: "... field run.info.status: expected a string, got an object"

Both raise the ``error`` class they are given: :class:`mlgate.errors.NetworkError` (exit 3)
for a server's answer (the default), :class:`mlgate.errors.InvalidInputError` (exit 2) for
a file the user gave.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from mlgate.errors import Error, NetworkError

MAX_DEPTH = 64
MAX_INT_DIGITS = 40  # far beyond any count, size or version mlgate reads


class _Refused(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (limit {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 400:
        raise _Refused(f"a number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"a number that overflows to infinity ({text[:40]})")
    return value


def _parse_constant(text: str) -> NoReturn:
    raise _Refused(f"the non-finite number {text}")


def depth(value: object, *, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed value (scalars are 0); stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterator[object] = iter(item.values())
        elif isinstance(item, list):
            children = iter(item)
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def parse_json(data: bytes | str, *, what: str, error: type[Error] = NetworkError, hint: str | None = None) -> Any:
    """Parse ``data`` as JSON within mlgate's bounds; raise ``error`` naming ``what`` otherwise."""
    hint = hint or "check that the address points at the service itself; nothing was passed"
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise error(f"{what}: not UTF-8 text", hint=hint) from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _Refused as exc:
        raise error(f"{what}: refused {exc}", hint=hint) from None
    except RecursionError:
        raise error(f"{what}: JSON nested deeper than {MAX_DEPTH} levels (limit)", hint=hint) from None
    except ValueError as exc:
        head = text.lstrip()[:1]
        kind = "HTML or text, not JSON" if head in ("<", "") or head.isalpha() else f"not valid JSON ({exc})"
        raise error(f"{what}: {kind}", hint=hint) from None
    if depth(value) > MAX_DEPTH:
        raise error(f"{what}: JSON nested deeper than {MAX_DEPTH} levels (limit)", hint=hint)
    return value


def kind_of(value: object) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_number(value: object) -> bool:
    """A finite JSON number (never a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Fields:
    """Typed reads of one JSON object; every failure names ``where`` and the dotted field path."""

    __slots__ = ("data", "error", "path", "where")

    def __init__(self, data: object, where: str, *, path: str = "", error: type[Error] = NetworkError) -> None:
        self.where = where
        self.path = path
        self.error = error
        if not isinstance(data, dict):
            self._fail(path or "(top level)", "an object", data)
        self.data: Mapping[str, Any] = data

    # ---------------------------------------------------------------- internals
    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _fail(self, name: str, expected: str, value: object) -> NoReturn:
        raise self.error(
            f"{self.where}: field {name}: expected {expected}, got {kind_of(value)}",
            hint="the server answered something other than its documented shape; check that the "
            "address points at the service itself; nothing was passed",
        )

    def fail(self, key: str, message: str) -> NoReturn:
        """Raise for field ``key`` with a free-form ``message``."""
        raise self.error(f"{self.where}: field {self._name(key)}: {message}")

    # ---------------------------------------------------------------- reads
    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str):
            self._fail(self._name(key), "a string", value)
        return value

    def opt_text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self._fail(self._name(key), "a string", value)
        return value

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= MAX_INT_DIGITS:
            return int(value)  # MLflow's REST answers send int64 fields as strings
        if not isinstance(value, int) or isinstance(value, bool):
            self._fail(self._name(key), "an integer", value)
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.integer(key)

    def number(self, key: str) -> float:
        value = self.data.get(key)
        if not isinstance(value, (int, float)) or not is_number(value):
            self._fail(self._name(key), "a finite number", value)
        return float(value)

    def opt_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.number(key)

    def flag(self, key: str, default: bool | None = None) -> bool:
        value = self.data.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            self._fail(self._name(key), "a boolean", value)
        return value

    def obj(self, key: str) -> Fields:
        value = self.data.get(key)
        if not isinstance(value, dict):
            self._fail(self._name(key), "an object", value)
        return Fields(value, self.where, path=self._name(key), error=self.error)

    def opt_obj(self, key: str) -> Fields:
        """The object at ``key``, or an empty one when it is absent or null."""
        value = self.data.get(key)
        if value is None:
            return Fields({}, self.where, path=self._name(key), error=self.error)
        return self.obj(key)

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self._fail(self._name(key), "a list", value)
        return value

    def objs(self, key: str) -> list[Fields]:
        """The list at ``key`` (absent: empty), each item an object."""
        values = self.items(key)
        return [Fields(item, self.where, path=f"{self._name(key)}[{i}]", error=self.error)
                for i, item in enumerate(values)]

    def texts(self, key: str) -> list[str]:
        values = self.items(key)
        for i, item in enumerate(values):
            if not isinstance(item, str):
                self._fail(f"{self._name(key)}[{i}]", "a string", item)
        return [str(item) for item in values]

    def tags(self, key: str = "tags") -> dict[str, str]:
        """MLflow's tag list ``[{key, value}]`` (or an object of strings) as a dict of strings."""
        value = self.data.get(key)
        if value is None:
            return {}
        if isinstance(value, dict):
            out: dict[str, str] = {}
            for name, item in value.items():
                if not isinstance(item, str):
                    self._fail(f"{self._name(key)}.{name}", "a string", item)
                out[name] = item
            return out
        result: dict[str, str] = {}
        for item in self.objs(key):
            result[item.text("key")] = item.opt_text("value", "") or ""
        return result
