"""The manifest: an in-toto Statement v1 with one subject per regular file.

The manifest's digest is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8),
and ``mlgate seal`` writes exactly those bytes, so ``sha256sum manifest.json`` agrees.
Parsing validates everything before any file is hashed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate.errors import InvalidInputError
from mlgate.integrity.tree import display
from mlgate.jsonvalue import MAX_DEPTH, depth

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlgate.dev/manifest/v1"
MAX_MANIFEST_BYTES = 256 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_INT_DIGITS = 40


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_name(name: object) -> str | None:
    """Why ``name`` is not a safe relative POSIX path, or None when it is."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if "\x00" in name:
        return "name contains a NUL character"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or name.startswith("\\"):
        return "absolute path"
    if "\\" in name:
        return "backslash in path (names are POSIX paths)"
    parts = name.split("/")
    if ".." in parts:
        return "'..' in path"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


@dataclass(frozen=True)
class Manifest:
    subjects: Mapping[str, str]  # name -> sha256 hex
    total_bytes: int
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, subjects: Mapping[str, str], total_bytes: int, *, follow_internal_symlinks: bool) -> Manifest:
        params = {
            "algorithm": "sha256",
            "digest": "plain SHA-256 of each whole file",
            "empty_directories": "ignored",
            "file_names": "utf-8, POSIX separators, relative to the sealed directory",
            "symlinks": "follow-internal" if follow_internal_symlinks else "refused",
        }
        return cls(dict(sorted(subjects.items())), total_bytes, params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(self.subjects.items())],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "files": len(self.subjects),
                "bytes": self.total_bytes,
                "hashing": dict(self.parameters),
            },
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def digest(self) -> str:
        return sha256_hex(self.canonical())

    @classmethod
    def parse(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        """Validate and load a manifest; every problem is :class:`InvalidInputError` (exit 2)."""

        def bad(why: str) -> InvalidInputError:
            return InvalidInputError(f"{source}: {why}", hint=_HINT)

        doc = _decode(data, source)
        if not isinstance(doc, dict):
            raise bad("top level must be a JSON object")
        if doc.get("_type") != STATEMENT_TYPE:
            raise bad(f"_type must be {STATEMENT_TYPE!r}")
        if doc.get("predicateType") != PREDICATE_TYPE:
            raise bad(f"predicateType must be {PREDICATE_TYPE!r}")
        subjects = _subjects(doc.get("subject"), bad)
        predicate = doc.get("predicate")
        if not isinstance(predicate, dict):
            raise bad("predicate must be an object")
        files, total = predicate.get("files"), predicate.get("bytes")
        if not isinstance(files, int) or isinstance(files, bool) or files != len(subjects):
            raise bad(f"predicate.files must equal the number of subjects ({len(subjects)})")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise bad("predicate.bytes must be a non-negative integer")
        params = predicate.get("hashing", {})
        if not isinstance(params, dict) or params.get("algorithm", "sha256") != "sha256":
            raise bad("predicate.hashing.algorithm must be 'sha256'")
        return cls(subjects, total, params)


_HINT = "regenerate the manifest with `mlgate seal`; a manifest is never edited by hand"


class _Refused(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (limit {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(text: str) -> Any:
    raise _Refused(f"the non-finite number {text}")


def _decode(data: bytes, source: str) -> Any:
    """The JSON value in ``data``: UTF-8, at most :data:`MAX_DEPTH` deep, integers bounded."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidInputError(f"{source}: larger than {MAX_MANIFEST_BYTES >> 20} MiB", hint=_HINT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{source}: not UTF-8 (byte {exc.start})", hint=_HINT) from None
    try:
        doc = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", hint=_HINT
        ) from None
    except _Refused as exc:
        raise InvalidInputError(f"{source}: refused {exc}", hint=_HINT) from None
    except RecursionError:
        raise InvalidInputError(f"{source}: JSON nested too deeply (limit {MAX_DEPTH} levels)", hint=_HINT) from None
    if depth(doc, limit=MAX_DEPTH) > MAX_DEPTH:
        raise InvalidInputError(f"{source}: JSON nested too deeply (limit {MAX_DEPTH} levels)", hint=_HINT)
    return doc


def _subjects(raw: object, bad: Callable[[str], InvalidInputError]) -> dict[str, str]:
    """``{name: sha256}`` of the statement's subjects, each name safe and each digest well-formed."""
    if not isinstance(raw, list):
        raise bad("subject must be a list")
    subjects: dict[str, str] = {}
    for i, subject in enumerate(raw):
        where = f"subject[{i}]"
        if not isinstance(subject, dict):
            raise bad(f"{where} must be an object")
        name = subject.get("name")
        why = check_name(name)
        if why or not isinstance(name, str):
            raise bad(f"{where}.name {name!r:.200}: {why}")
        digest = subject.get("digest")
        value = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(value, str) or not _SHA256.match(value):
            raise bad(f"{where} ({display(name)}): digest.sha256 must be 64 lowercase hex characters")
        if name in subjects:
            raise bad(f"{where}: duplicate name {name!r}")
        subjects[name] = value
    return subjects


@dataclass(frozen=True)
class Comparison:
    """What differs between a manifest and a directory's actual digests."""

    changed: list[tuple[str, str, str]]  # (name, expected, actual)
    missing: list[tuple[str, str]]  # (name, expected)
    extra: list[tuple[str, str]]  # (name, actual)
    checked: int

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> Comparison:
    changed = [(n, d, actual[n]) for n, d in sorted(expected.items()) if n in actual and actual[n] != d]
    missing = [(n, d) for n, d in sorted(expected.items()) if n not in actual]
    extra = [(n, d) for n, d in sorted(actual.items()) if n not in expected]
    return Comparison(changed, missing, extra, checked=len(actual))
