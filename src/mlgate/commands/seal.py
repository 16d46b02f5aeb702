"""`mlgate seal`: hash every file of a model directory into a manifest."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import add_ledger_option, command_parser

if TYPE_CHECKING:
    from mlgate.integrity.manifest import Manifest
    from mlgate.lineage.artifacts import ModelFiles
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.lineage.records import ModelVersion
    from mlgate.platforms.base import Platform

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
    add_ledger_option(parser, purpose="with --model: also append a `sealed` entry to this audit ledger "
                      "(see `mlgate audit`); off unless given here or in MLGATE_LEDGER")
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.console import err, out
    from mlgate.errors import UsageError
    from mlgate.files import write_atomically
    from mlgate.integrity import seal_directory
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    if args.model:
        return seal_model(args, platform)
    if not args.directory:
        raise UsageError("seal needs a directory (or --model REF)", hint="mlgate seal DIR -o manifest.json")
    with platform.group(f"mlgate seal: hash the files under {args.directory}"):
        manifest = seal_directory(args.directory, follow_internal_symlinks=args.follow_internal_symlinks,
                                  ci=platform.is_ci)
    data = manifest.canonical()
    summary = (f"sealed {len(manifest.subjects)} files ({manifest.total_bytes} bytes): "
               f"manifest sha256:{manifest.digest}")
    if args.output:
        write_atomically(args.output, data)
        out(summary + f" -> {args.output}")
    else:
        out(data.decode("utf-8"))
        err(summary)
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
    return 0


# ---------------------------------------------------------------------------- seal --model
# `seal --model REF` streams the version's files from the MLflow artifact store, hashes them while
# downloading, stores the manifest next to the model files and tags the version (see
# mlgate.lineage.artifacts for where and why). Re-sealing a version already sealed with different
# content is refused (exit 1) unless --force, which is itself recorded in the mlgate.resealed tag.
# With a DIR too, DIR must hold exactly the registered files.


def seal_model(args: argparse.Namespace, platform: Platform) -> int:
    from mlgate.console import out
    from mlgate.errors import RefusedError
    from mlgate.files import write_atomically
    from mlgate.integrity import describe, verify_directory
    from mlgate.lineage import artifacts
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    client = MlflowClient.from_env()
    version = client.resolve(ModelRef.parse(args.model))
    with platform.group(f"mlgate seal: hash {args.model} from the artifact store"):
        manifest, where = artifacts.seal_from_store(client, version, ci=platform.is_ci)
    if args.directory:
        local = verify_directory(args.directory, manifest, follow_internal_symlinks=args.follow_internal_symlinks,
                                 ci=platform.is_ci)
        if not local.ok:
            for line in describe(local, manifest.digest):
                out(line)
            raise RefusedError(f"{args.directory} does not hold the files registered as {version.label}",
                               hint="seal the registered model itself (omit DIR), or register these files")
    previous = artifacts.recorded_digest(version)
    if previous == manifest.digest:
        _keep_seal(client, version, manifest, where)
    else:
        _write_seal(client, version, manifest, where, previous=previous, force=args.force, platform=platform)
    if args.ledger:
        from mlgate.governed.events import append_event

        append_event(args.ledger, "sealed", name=version.name, version=version.version, ci=platform.context(),
                  details={"manifest_sha256": manifest.digest, "files": len(manifest.subjects),
                           "bytes": manifest.total_bytes, "resealed_from": previous if previous != manifest.digest
                           else None},
                  fingerprint=manifest.digest)
    if args.output:
        write_atomically(args.output, manifest.canonical())
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
    return 0


def _keep_seal(client: MlflowClient, version: ModelVersion, manifest: Manifest, where: ModelFiles) -> None:
    """Already sealed with this content: only store the manifest again when its location tag is gone."""
    from mlgate.console import out
    from mlgate.lineage import artifacts

    if not version.tags.get(artifacts.TAG_URI):
        uri = artifacts.store_manifest(client, where, manifest)
        client.set_model_version_tag(version.name, version.version, artifacts.TAG_URI, uri)
    out(f"already sealed: models:/{version.label} manifest sha256:{manifest.digest} ({len(manifest.subjects)} files, "
        f"{manifest.total_bytes} bytes)")


def _write_seal(
    client: MlflowClient, version: ModelVersion, manifest: Manifest, where: ModelFiles, *,
    previous: str | None, force: bool, platform: Platform,
) -> None:
    """Store the manifest and tag the version (the digest tag last, so a torn seal is never trusted)."""
    import datetime
    import json

    from mlgate.console import err, out
    from mlgate.errors import RefusedError
    from mlgate.lineage import artifacts

    label = f"models:/{version.label}"
    if previous and not force:
        raise RefusedError(
            f"{label} is already sealed with different content: sealed sha256:{previous}, "
            f"the artifact store now gives sha256:{manifest.digest}",
            hint="the registered files changed after sealing; investigate. Re-seal only on purpose with "
            "--force (recorded on the version)",
        )
    ctx = platform.context()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    uri = artifacts.store_manifest(client, where, manifest)
    tags = {artifacts.TAG_URI: uri, artifacts.TAG_FILES: str(len(manifest.subjects)),
            artifacts.TAG_BYTES: str(manifest.total_bytes), artifacts.TAG_SEALED_AT: now,
            artifacts.TAG_SEALED_BY: ctx.requester or "unknown"}
    if previous:
        record = {"previous_sha256": previous, "new_sha256": manifest.digest, "at": now,
                  "by": ctx.requester or "unknown", "run_url": ctx.run_url}
        tags[artifacts.TAG_RESEALED] = json.dumps(record, sort_keys=True)
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)
    if previous:
        err(f"warning: re-sealed {label} with --force (was sha256:{previous}); recorded in tag "
            f"{artifacts.TAG_RESEALED}")
    client.set_model_version_tag(version.name, version.version, artifacts.TAG_SHA256, manifest.digest)
    out(f"sealed {label}: {len(manifest.subjects)} files ({manifest.total_bytes} bytes), "
        f"manifest sha256:{manifest.digest} -> {uri}")
