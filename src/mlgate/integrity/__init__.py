"""Artifact integrity: scan a model directory safely, hash it in parallel, compare with a manifest.

The two calls other modules use are :func:`seal_directory` and :func:`verify_directory`.
"""

from __future__ import annotations

import os

from mlgate.integrity.hashing import hash_shards, hash_tree
from mlgate.integrity.manifest import Comparison, Manifest, compare
from mlgate.integrity.progress import Progress
from mlgate.integrity.serialization import FILES, SHARDS, Serialization
from mlgate.integrity.tree import display, scan_tree

__all__ = ["Comparison", "Manifest", "Serialization", "describe", "hash_resources", "seal_directory",
           "verify_directory"]


def hash_resources(directory: str | os.PathLike[str], serialization: Serialization, *,
                   ci: bool) -> tuple[dict[str, str], int]:
    """``{resource: sha256}`` of ``directory`` under ``serialization``, and the bytes hashed."""
    ignore = serialization.ignored if serialization.ignore_paths else None
    entries = scan_tree(directory, follow_internal_symlinks=serialization.allow_symlinks, ignore=ignore)
    total = sum(e.size for e in entries)
    with Progress(total, ci=ci) as progress:
        if serialization.method == SHARDS:
            assert serialization.shard_size is not None
            return hash_shards(entries, serialization.shard_size, advance=progress.advance), total
        hashed = hash_tree(entries, advance=progress.advance)
    return {name: digest for name, (digest, _) in hashed.items()}, sum(size for _, size in hashed.values())


def model_name(directory: str | os.PathLike[str]) -> str:
    """The model's name in the statement's subject: the directory's last component (model_signing's rule)."""
    return os.path.basename(os.path.realpath(os.fspath(directory))) or "model"


def _digests(directory: str | os.PathLike[str], *, follow_internal_symlinks: bool, ci: bool) -> tuple[
    dict[str, str], int
]:
    """``{name: sha256}`` and the total of the bytes hashed (each file's bytes held still while read)."""
    entries = scan_tree(directory, follow_internal_symlinks=follow_internal_symlinks)
    with Progress(sum(e.size for e in entries), ci=ci) as progress:
        hashed = hash_tree(entries, advance=progress.advance)
    return {name: digest for name, (digest, _) in hashed.items()}, sum(size for _, size in hashed.values())


def seal_directory(
    directory: str | os.PathLike[str], *, follow_internal_symlinks: bool = False, ci: bool = False,
    serialization: Serialization | None = None,
) -> Manifest:
    """Hash every regular file under ``directory`` into a model-signing v1.0 manifest (``files`` by default)."""
    chosen = serialization or Serialization.of(FILES, allow_symlinks=follow_internal_symlinks)
    resources, total = hash_resources(directory, chosen, ci=ci)
    return Manifest.of_resources(resources, total, chosen, model_name(directory))


def verify_directory(
    directory: str | os.PathLike[str], manifest: Manifest, *, follow_internal_symlinks: bool = False,
    ci: bool = False,
) -> Comparison:
    """Re-hash ``directory`` the way ``manifest`` records (files or shards, its ignore_paths) and compare."""
    if manifest.serialization is None:
        digests, _ = _digests(directory, follow_internal_symlinks=follow_internal_symlinks, ci=ci)
        return compare(manifest.subjects, digests)
    recorded = manifest.serialization
    follow = follow_internal_symlinks or recorded.allow_symlinks
    chosen = Serialization(recorded.method, follow, recorded.shard_size, recorded.ignore_paths)
    resources, _ = hash_resources(directory, chosen, ci=ci)
    return compare(manifest.subjects, resources)


def describe(result: Comparison, manifest_digest: str) -> list[str]:
    """Human-readable lines: every changed, missing and extra file, then a one-line summary."""
    lines = [f"changed  {display(n)}\n         expected sha256:{e}\n         actual   sha256:{a}"
             for n, e, a in result.changed]
    lines += [f"missing  {display(n)}\n         expected sha256:{e}" for n, e in result.missing]
    lines += [f"extra    {display(n)}\n         actual   sha256:{a}" for n, a in result.extra]
    expected = len(result.changed) + len(result.missing) + (result.checked - len(result.changed) - len(result.extra))
    if result.ok:
        lines.append(f"verified: {result.checked} files match manifest sha256:{manifest_digest}")
    else:
        lines.append(
            f"MISMATCH: {len(result.changed)} changed, {len(result.missing)} missing, {len(result.extra)} extra "
            f"(manifest sha256:{manifest_digest}, {expected} files expected, {result.checked} found)"
        )
    return lines
