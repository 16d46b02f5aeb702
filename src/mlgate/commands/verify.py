"""`mlgate verify`: re-hash a directory and compare it with the sealed manifest."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import command_parser

if TYPE_CHECKING:
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
    from mlgate.files import read_bounded
    from mlgate.integrity.manifest import MAX_MANIFEST_BYTES, Manifest

    return Manifest.parse(read_bounded(path, MAX_MANIFEST_BYTES, what="manifest"), source=path)


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
    result = verify_directory(args.directory, manifest, follow_internal_symlinks=args.follow_internal_symlinks,
                              ci=platform.is_ci)
    if version is not None:
        from mlgate.lineage.artifacts import REGISTERED_MODEL_META, without_download_marker

        result, dropped = without_download_marker(args.directory, version, manifest, result)
        if dropped:
            out(f"tolerated {REGISTERED_MODEL_META}: written by MLflow's client when downloading the model")
    lines = describe(result, manifest.digest)
    for line in lines:
        out(line)
    if not result.ok:
        platform.annotate("error", f"mlgate verify: {lines[-1]}")
        return 1
    return 0
