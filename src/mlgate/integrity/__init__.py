"""Artifact integrity: scan a model directory safely, hash it in parallel, compare with a manifest.

The two calls other modules use are :func:`seal_directory` and :func:`verify_directory`.
"""

from __future__ import annotations

import os

from mlgate.integrity.hashing import hash_tree
from mlgate.integrity.manifest import Comparison, Manifest, compare
from mlgate.integrity.progress import Progress
from mlgate.integrity.tree import display, scan_tree

__all__ = ["Comparison", "Manifest", "describe", "seal_directory", "verify_directory"]


def _digests(directory: str | os.PathLike[str], *, follow_internal_symlinks: bool, ci: bool) -> tuple[
    dict[str, str], int
]:
    """``{name: sha256}`` and the total of the bytes hashed (each file's bytes held still while read)."""
    entries = scan_tree(directory, follow_internal_symlinks=follow_internal_symlinks)
    with Progress(sum(e.size for e in entries), ci=ci) as progress:
        hashed = hash_tree(entries, advance=progress.advance)
    return {name: digest for name, (digest, _) in hashed.items()}, sum(size for _, size in hashed.values())


def seal_directory(
    directory: str | os.PathLike[str], *, follow_internal_symlinks: bool = False, ci: bool = False
) -> Manifest:
    """Hash every regular file under ``directory`` into a manifest."""
    digests, total = _digests(directory, follow_internal_symlinks=follow_internal_symlinks, ci=ci)
    return Manifest.build(digests, total, follow_internal_symlinks=follow_internal_symlinks)


def verify_directory(
    directory: str | os.PathLike[str], manifest: Manifest, *, follow_internal_symlinks: bool = False,
    ci: bool = False,
) -> Comparison:
    """Re-hash ``directory`` and compare it with ``manifest``."""
    digests, _ = _digests(directory, follow_internal_symlinks=follow_internal_symlinks, ci=ci)
    return compare(manifest.subjects, digests)


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
