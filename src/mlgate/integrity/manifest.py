"""The manifest: an in-toto Statement v1, in one of two layouts.

``https://model_signing/signature/v1.0`` (what ``mlgate seal`` writes)
    OpenSSF model-signing's layout: one subject, the model directory's name, whose ``sha256`` is
    the SHA-256 of the concatenated raw resource digests in resource order; the resources
    (``name``, ``algorithm``, ``digest``) and the serialization that made them
    (:mod:`mlgate.integrity.serialization`) in the predicate. ``model_signing`` signs and
    verifies exactly this statement.
``https://mlgate.dev/manifest/v1`` (written by earlier mlgate versions; still read)
    one subject per regular file (``name``, ``digest.sha256``), the file count, total bytes and
    hashing parameters in the predicate.

In both, a file's digest is the plain SHA-256 of its bytes. The manifest's digest is the SHA-256
of its canonical JSON (sorted keys, no spaces, UTF-8), and ``mlgate seal`` writes exactly those
bytes, so ``sha256sum manifest.json`` agrees. Parsing validates everything before any file is
hashed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate.errors import InvalidInputError
from mlgate.integrity.serialization import FILES, SHARDS, Serialization, ordered, split_shard
from mlgate.integrity.tree import display

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlgate.dev/manifest/v1"  # mlgate's first layout: one subject per file
MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
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
    """Resource name -> SHA-256, how they were made, and (when known) the bytes hashed.

    ``serialization`` is ``None`` for mlgate's first layout, else the model-signing v1.0
    serialization; ``subjects`` holds file names (``files``) or ``PATH:START:END`` (``shards``).
    """

    subjects: Mapping[str, str]  # resource name -> sha256 hex
    total_bytes: int | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    serialization: Serialization | None = None
    model_name: str = ""

    @classmethod
    def build(cls, subjects: Mapping[str, str], total_bytes: int, *, follow_internal_symlinks: bool) -> Manifest:
        """mlgate's first layout (``https://mlgate.dev/manifest/v1``)."""
        params = {
            "algorithm": "sha256",
            "digest": "plain SHA-256 of each whole file",
            "empty_directories": "ignored",
            "file_names": "utf-8, POSIX separators, relative to the sealed directory",
            "symlinks": "follow-internal" if follow_internal_symlinks else "refused",
        }
        return cls(dict(sorted(subjects.items())), total_bytes, params)

    @classmethod
    def of_resources(cls, resources: Mapping[str, str], total_bytes: int | None, serialization: Serialization,
                     model_name: str) -> Manifest:
        """The model-signing v1.0 layout, resources in model_signing's order."""
        names = ordered(resources, serialization.method)
        return cls({n: resources[n] for n in names}, total_bytes, {}, serialization, model_name or "model")

    @property
    def layout(self) -> str:
        return PREDICATE_TYPE if self.serialization is None else MODEL_SIGNING_PREDICATE_TYPE

    @property
    def method(self) -> str:
        return FILES if self.serialization is None else self.serialization.method

    @property
    def files(self) -> int:
        """How many files the resources cover (a sharded file counts once)."""
        if self.method != SHARDS:
            return len(self.subjects)
        return len({(split_shard(n) or (n, 0, 0))[0] for n in self.subjects})

    @property
    def root_digest(self) -> str:
        """model_signing's subject digest: SHA-256 of the raw resource digests, in resource order."""
        hasher = hashlib.sha256()
        for digest in self.subjects.values():
            hasher.update(bytes.fromhex(digest))
        return hasher.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        if self.serialization is None:
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
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest}}],
            "predicateType": MODEL_SIGNING_PREDICATE_TYPE,
            "predicate": {
                "serialization": self.serialization.to_dict(),
                "resources": [{"name": n, "algorithm": self.serialization.algorithm, "digest": d}
                              for n, d in self.subjects.items()],
            },
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def digest(self) -> str:
        return sha256_hex(self.canonical())

    @classmethod
    def parse(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        """Validate and load a manifest of either layout; every problem is :class:`InvalidInputError` (exit 2)."""
        doc = _decode(data, source)
        return cls.from_document(doc, source=source)

    @classmethod
    def from_document(cls, doc: object, *, source: str) -> Manifest:
        def bad(why: str) -> InvalidInputError:
            return InvalidInputError(f"{source}: {why}", hint=_HINT)

        if not isinstance(doc, dict):
            raise bad("top level must be a JSON object")
        if doc.get("_type") != STATEMENT_TYPE:
            raise bad(f"_type must be {STATEMENT_TYPE!r}")
        kind = doc.get("predicateType")
        if kind == MODEL_SIGNING_PREDICATE_TYPE:
            return _model_signing(doc, source, bad)
        if kind != PREDICATE_TYPE:
            raise bad(f"predicateType must be {MODEL_SIGNING_PREDICATE_TYPE!r} or {PREDICATE_TYPE!r}, "
                      f"found {str(kind)[:80]!r}")
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


def _model_signing(doc: Mapping[str, Any], source: str, bad: Callable[[str], InvalidInputError]) -> Manifest:
    """The model-signing v1.0 statement ``doc``: one subject, the serialization, consistent resources."""
    subject = doc.get("subject")
    if not isinstance(subject, list) or len(subject) != 1 or not isinstance(subject[0], dict):
        raise bad(f"subject must hold exactly one subject (the model), found "
                  f"{len(subject) if isinstance(subject, list) else 'none'}")
    name = subject[0].get("name")
    digest = subject[0].get("digest")
    root = digest.get("sha256") if isinstance(digest, dict) else None
    if not isinstance(name, str) or not name or "\x00" in name:
        raise bad("subject[0].name must be the model's name (a non-empty string)")
    if not isinstance(root, str) or not _SHA256.match(root):
        raise bad("subject[0].digest.sha256 must be 64 lowercase hex characters")
    predicate = doc.get("predicate")
    if not isinstance(predicate, dict):
        raise bad("predicate must be an object")
    serialization = Serialization.parse(predicate.get("serialization"), source)
    resources = _resources(predicate.get("resources"), serialization, bad)
    manifest = Manifest(resources, _shard_bytes(resources) if serialization.method == SHARDS else None, {},
                        serialization, name)
    if manifest.root_digest != root:
        raise bad(f"subject[0].digest.sha256 is sha256:{root}, but the resources hash to "
                  f"sha256:{manifest.root_digest} (the statement is inconsistent)")
    return manifest


def _resources(raw: object, serialization: Serialization,
               bad: Callable[[str], InvalidInputError]) -> dict[str, str]:
    """``{name: sha256}`` of ``predicate.resources``, in the order listed (the subject digest's order)."""
    method, algorithm = serialization.method, serialization.algorithm
    if not isinstance(raw, list):
        raise bad("predicate.resources must be a list")
    resources: dict[str, str] = {}
    for i, item in enumerate(raw):
        where = f"predicate.resources[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{where} must be an object")
        name = item.get("name")
        path = name
        if method == SHARDS and isinstance(name, str):
            parts = split_shard(name)
            if parts is None:
                raise bad(f"{where}.name {name[:200]!r}: expected PATH:START:END (a shard, START < END)")
            path = parts[0]
        why = check_name(path)
        if why or not isinstance(name, str):
            raise bad(f"{where}.name {name!r:.200}: {why}")
        if item.get("algorithm") != algorithm:
            found = str(item.get("algorithm"))[:40]
            raise bad(f"{where} ({display(name)}): algorithm must be {algorithm!r}, found {found!r}")
        value = item.get("digest")
        if not isinstance(value, str) or not _SHA256.match(value):
            raise bad(f"{where} ({display(name)}): digest must be 64 lowercase hex characters")
        if name in resources:
            raise bad(f"{where}: duplicate name {name!r:.200}")
        resources[name] = value
    return resources


def _shard_bytes(resources: Mapping[str, str]) -> int:
    ends: dict[str, int] = {}
    for name in resources:
        parts = split_shard(name)
        if parts is not None:
            ends[parts[0]] = max(ends.get(parts[0], 0), parts[2])
    return sum(ends.values())


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
    """The JSON value in ``data``: UTF-8, at most :data:`mlgate.jsonvalue.MAX_DEPTH` deep, integers bounded."""
    from mlgate.jsonvalue import MAX_DEPTH, depth  # (not needed to write a manifest)

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
