"""`mlgate verify`: re-hash a directory and compare it with the sealed manifest."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import command_parser

if TYPE_CHECKING:
    from mlgate.integrity import Comparison
    from mlgate.integrity.manifest import Manifest

HELP = "re-hash DIR and compare it with the sealed manifest"
DESCRIPTION = """\
Re-hash exactly the files under DIR and compare them with the sealed manifest (a file, or
the manifest recorded on an MLflow model version). Exit 0 on an exact match; otherwise
exit 1 listing every changed, missing and extra file with expected and actual digests,
then a one-line summary. The manifest is validated before any file is hashed: a malformed
one is exit 2. An unreadable file is exit 3, never a pass.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "verify", help=HELP, description=DESCRIPTION)
    parser.add_argument("directory", metavar="DIR", help="the directory about to be deployed")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", metavar="FILE", help="the manifest written by `mlgate seal`")
    source.add_argument("--model", metavar="REF", help="use the manifest recorded on this MLflow model version")
    parser.add_argument(
        "--follow-internal-symlinks", action="store_true",
        help="hash the target of symlinks that stay inside DIR instead of refusing them",
    )
    return parser


def read_manifest(path: str) -> Manifest:
    """The manifest file at ``path``: read non-blocking and bounded (regular files only), then validated."""
    from mlgate.errors import InvalidInputError
    from mlgate.files import read_bounded
    from mlgate.integrity.manifest import MAX_MANIFEST_BYTES, Manifest

    data = read_bounded(path, MAX_MANIFEST_BYTES, what="manifest")
    try:
        return Manifest.parse(data, source=path)
    except InvalidInputError as exc:  # the manifest file is at fault: the CI annotation points at it
        exc.source_file = exc.source_file or path
        raise


def run(args: argparse.Namespace) -> int:
    from mlgate.console import out
    from mlgate.errors import UsageError
    from mlgate.integrity import describe, verify_directory
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    version = None
    if args.manifest:
        manifest = read_manifest(args.manifest)
    elif args.model:
        from mlgate.lineage.artifacts import load_sealed_manifest

        version, manifest = load_sealed_manifest(args.model)
    else:
        raise UsageError("verify needs --manifest FILE or --model REF",
                         hint="mlgate verify DIR --manifest manifest.json")
    tolerated = None
    with platform.group(f"mlgate verify: hash {len(manifest.subjects)} file(s) and compare with the seal"):
        result = verify_directory(args.directory, manifest, follow_internal_symlinks=args.follow_internal_symlinks,
                                  ci=platform.is_ci)
        if version is not None:
            from mlgate.lineage.artifacts import REGISTERED_MODEL_META, without_download_marker

            result, dropped = without_download_marker(args.directory, version, manifest, result)
            if dropped:
                tolerated = REGISTERED_MODEL_META
                out(f"tolerated {REGISTERED_MODEL_META}: written by MLflow's client when downloading the model")
        lines = describe(result, manifest.digest)
        for line in lines:
            out(line)
    if platform.is_ci:
        platform.summary(summary_markdown(args, manifest.digest, result, tolerated))
    if not result.ok:
        platform.annotate("error", f"mlgate verify: {lines[-1]}")
        return 1
    return 0


def summary_markdown(args: argparse.Namespace, digest: str, result: Comparison, tolerated: str | None) -> str:
    """The step summary: the verdict, what was compared with what, and every differing file."""
    from mlgate.evidence.markdown import cell, folded_table

    source = f"the manifest sealed on `{cell(args.model)}`" if args.model else f"`{cell(args.manifest)}`"
    differing = len(result.changed) + len(result.missing) + len(result.extra)
    head = (f"## mlgate verify: ✅ {result.checked} files match the seal" if result.ok else
            f"## mlgate verify: ❌ MISMATCH — {len(result.changed)} changed, {len(result.missing)} missing, "
            f"{len(result.extra)} extra")
    lines = [head, "", f"`{cell(args.directory)}` against {source} (manifest `sha256:{cell(digest)}`).", ""]
    if tolerated:
        lines += [f"Tolerated `{tolerated}`: the file MLflow's client writes on download, naming this version "
                  "(the gate tolerates exactly the same).", ""]
    if differing:
        rows = [["changed", f"`{cell(n)}`", e, a] for n, e, a in result.changed]
        rows += [["missing", f"`{cell(n)}`", e, ""] for n, e in result.missing]
        rows += [["extra", f"`{cell(n)}`", "", a] for n, a in result.extra]
        lines += folded_table(["", "file", "sealed sha256", "found sha256"], rows, what="differing files")
        lines.append("Nothing that differs from the seal may be deployed: re-run from the sealed files.")
    return "\n".join(lines) + "\n"
