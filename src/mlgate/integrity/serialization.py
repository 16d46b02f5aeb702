"""How a model directory becomes resources: model-signing's ``files`` and ``shards`` serializations.

``files`` (the default)
    one resource per regular file, named by its POSIX path relative to the directory, whose
    digest is the plain SHA-256 of the whole file (``sha256sum`` agrees).
``shards``
    every file cut into ``shard_size`` pieces (the last one shorter), one resource per piece,
    named ``PATH:START:END`` (END excluded), each piece hashed on its own, so one large file is
    hashed on every core. An empty file has no shard, exactly as in model_signing.

The parameters are recorded in the statement (``predicate.serialization``) with model_signing's
keys (``method``, ``hash_type``, ``allow_symlinks``, ``shard_size``, ``ignore_paths``), and
verification re-hashes with the recorded ones. Resources are ordered as model_signing orders
them (by path components, then by shard start), so the subject digest of the same files is the
same in both tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlgate.errors import InvalidInputError, UsageError

FILES = "files"
SHARDS = "shards"
METHODS = (FILES, SHARDS)
HASH_TYPE = "sha256"
#: model_signing's default shard size (``hashing.Config().use_shard_serialization()``): 10**9 bytes
DEFAULT_SHARD_SIZE = 1_000_000_000
MIN_SHARD_SIZE = 1 << 20
MAX_SHARD_SIZE = 1 << 40
_SHARD = re.compile(r"^(?P<path>.+):(?P<start>0|[1-9][0-9]{0,15}):(?P<end>[1-9][0-9]{0,15})$")
_HINT = "regenerate the manifest with `mlgate seal`; a manifest is never edited by hand"


@dataclass(frozen=True)
class Serialization:
    """The recorded ``predicate.serialization`` of a model-signing v1.0 statement."""

    method: str = FILES
    allow_symlinks: bool = False
    shard_size: int | None = None
    ignore_paths: tuple[str, ...] = ()
    hash_type: str = HASH_TYPE

    @classmethod
    def of(cls, method: str = FILES, *, shard_size: int | None = None, allow_symlinks: bool = False,
           ignore_paths: Iterable[str] = ()) -> Serialization:
        """Checked construction from command-line values (exit 2 when out of range)."""
        if method not in METHODS:
            raise UsageError(f"unknown serialization {method!r}", hint="use files or shards")
        if method == SHARDS:
            size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
            if not MIN_SHARD_SIZE <= size <= MAX_SHARD_SIZE:
                raise UsageError(f"--shard-size {size} is out of range",
                                 hint=f"use {MIN_SHARD_SIZE} (1 MiB) to {MAX_SHARD_SIZE} bytes; "
                                 f"model_signing's default is {DEFAULT_SHARD_SIZE}")
            shard_size = size
        elif shard_size is not None:
            raise UsageError("--shard-size applies to --serialization shards only",
                             hint="add --serialization shards, or drop --shard-size")
        return cls(method, allow_symlinks, shard_size, tuple(sorted(set(ignore_paths))))

    @property
    def algorithm(self) -> str:
        """Each resource's ``algorithm``: ``sha256``, or model_signing's ``sha256-sharded-SIZE`` for shards."""
        return f"{self.hash_type}-sharded-{self.shard_size}" if self.method == SHARDS else self.hash_type

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type,
                               "allow_symlinks": self.allow_symlinks}
        if self.method == SHARDS:
            doc["shard_size"] = self.shard_size
        if self.ignore_paths:
            doc["ignore_paths"] = list(self.ignore_paths)
        return doc

    @classmethod
    def parse(cls, raw: object, source: str) -> Serialization:
        """``predicate.serialization`` of an untrusted statement; every problem is exit 2 naming the field."""
        def bad(field: str, why: str) -> InvalidInputError:
            return InvalidInputError(f"{source}: predicate.serialization{field}: {why}", hint=_HINT)

        if not isinstance(raw, dict):
            raise bad("", "must be an object")
        method = raw.get("method")
        if method not in METHODS:
            raise bad(".method", f"expected 'files' or 'shards', found {str(method)[:40]!r}")
        hash_type = raw.get("hash_type")
        if hash_type != HASH_TYPE:
            raise bad(".hash_type", f"expected 'sha256', found {str(hash_type)[:40]!r} (mlgate hashes with SHA-256 "
                      "only, so sha256sum agrees)")
        allow = raw.get("allow_symlinks", False)
        if not isinstance(allow, bool):
            raise bad(".allow_symlinks", "must be true or false")
        shard_size = raw.get("shard_size")
        if isinstance(shard_size, float) and shard_size.is_integer():
            shard_size = int(shard_size)  # model_signing writes it through a protobuf Struct: 1048576.0
        if method == SHARDS:
            if not isinstance(shard_size, int) or isinstance(shard_size, bool) or not 1 <= shard_size <= MAX_SHARD_SIZE:
                raise bad(".shard_size", "must be a positive integer of bytes")
        else:
            shard_size = None
        ignore = raw.get("ignore_paths", [])
        if not isinstance(ignore, list) or not all(isinstance(p, str) and p for p in ignore):
            raise bad(".ignore_paths", "must be a list of relative paths")
        for path in ignore:
            if path.startswith("/") or ".." in path.split("/") or "\x00" in path:
                raise bad(".ignore_paths", f"{path[:80]!r} is not a path inside the model directory")
        return cls(method, allow, shard_size, tuple(ignore))

    def ignored(self, name: str) -> bool:
        """``name`` (a relative POSIX path) is, or is under, one of ``ignore_paths`` (model_signing's rule)."""
        for path in self.ignore_paths:
            clean = path.rstrip("/")
            if clean in ("", "."):
                return True
            if name == clean or name.startswith(clean + "/"):
                return True
        return False


def shard_name(path: str, start: int, end: int) -> str:
    return f"{path}:{start}:{end}"


def split_shard(name: str) -> tuple[str, int, int] | None:
    """``(path, start, end)`` of a shard resource name, or ``None`` when it is not one."""
    match = _SHARD.match(name)
    if not match:
        return None
    start, end = int(match["start"]), int(match["end"])
    if start >= end:
        return None
    return match["path"], start, end


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` pieces of a file of ``size`` bytes (none for an empty file)."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


def order_key(name: str, method: str) -> tuple[Any, ...]:
    """model_signing's resource order: path components (as ``PurePosixPath`` compares), then shard start."""
    if method == SHARDS:
        parts = split_shard(name)
        if parts is not None:
            path, start, end = parts
            return (tuple(path.split("/")), start, end)
    return (tuple(name.split("/")), 0, 0)


def ordered(names: Iterable[str], method: str) -> list[str]:
    return sorted(names, key=lambda n: order_key(n, method))
