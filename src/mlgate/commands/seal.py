"""`mlgate seal`: hash every file of a model directory into a manifest."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from mlgate.commands._common import command_parser

HELP = "hash every file under DIR into a manifest (in-toto Statement v1)"
DESCRIPTION = """\
Hash every regular file under DIR (SHA-256, in parallel, streaming) into an in-toto
Statement v1 manifest and print the manifest's digest. Subjects are sorted and the JSON is
canonical, so the same files always give the same manifest; each subject's digest is the
plain SHA-256 of the file (sha256sum agrees).

Refused (exit 1): symlinks leaving DIR, symlinks inside DIR (unless
--follow-internal-symlinks), FIFOs, sockets, devices, file names that are not UTF-8.
Exit 3 when a file cannot be read.

With --model, the version's artifacts are read from MLflow instead and the manifest is
recorded on that model version.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "seal", help=HELP, description=DESCRIPTION)
    parser.add_argument("directory", metavar="DIR", nargs="?", help="the model directory to seal")
    parser.add_argument(
        "-o", "--output", metavar="FILE",
        help="write the manifest here (default: standard output); written only once hashing succeeded",
    )
    parser.add_argument("--model", metavar="REF", help="seal this MLflow model version and record the manifest on it")
    parser.add_argument("--force", action="store_true",
                        help="with --model: re-seal a version already sealed with different content (recorded)")
    parser.add_argument(
        "--follow-internal-symlinks", action="store_true",
        help="hash the target of symlinks that stay inside DIR instead of refusing them",
    )
    parser.add_argument("--ledger", metavar="SPEC",
                        help="with --model: also append a `sealed` entry to this audit ledger (see `mlgate audit`); "
                        "off unless given here or in MLGATE_LEDGER")
    return parser


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step, so a failure never leaves a truncated file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from mlgate.console import err, out
    from mlgate.errors import UsageError
    from mlgate.integrity import seal_directory
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    if args.model:
        from mlgate.commands._seal_model import seal_model

        return seal_model(args, platform)
    if not args.directory:
        raise UsageError("seal needs a directory (or --model REF)", hint="mlgate seal DIR -o manifest.json")
    manifest = seal_directory(args.directory, follow_internal_symlinks=args.follow_internal_symlinks,
                              ci=platform.is_ci)
    data = manifest.canonical()
    summary = (f"sealed {len(manifest.subjects)} files ({manifest.total_bytes} bytes): "
               f"manifest sha256:{manifest.digest}")
    if args.output:
        try:
            write_atomically(args.output, data)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
        out(summary + f" -> {args.output}")
    else:
        out(data.decode("utf-8"))
        err(summary)
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
    return 0
