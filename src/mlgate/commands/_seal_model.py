"""Sealing and verifying against an MLflow model version (`seal --model`, `verify --model`).

`seal --model REF` streams the version's files from the MLflow artifact store, hashes them while
downloading, stores the manifest next to the model files and tags the version (see
:mod:`mlgate.lineage.artifacts` for where and why). Re-sealing a version already sealed with
different content is refused (exit 1) unless ``--force``, which is itself recorded in the
``mlgate.resealed`` tag. With a DIR too, DIR must hold exactly the registered files.
"""

from __future__ import annotations

import argparse

from mlgate.integrity.manifest import Manifest
from mlgate.platforms.base import Platform


def seal_model(args: argparse.Namespace, platform: Platform) -> int:
    import datetime
    import json

    from mlgate.commands.seal import write_atomically
    from mlgate.console import err, out
    from mlgate.errors import RefusedError, UsageError
    from mlgate.integrity import describe, verify_directory
    from mlgate.lineage import artifacts
    from mlgate.lineage.chain import tag_map
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    ref = ModelRef.parse(args.model)
    client = MlflowClient.from_env()
    version = client.resolve(ref)
    name, number = str(version["name"]), str(version["version"])
    manifest, where = artifacts.seal_from_store(client, version, ci=platform.is_ci)
    if args.directory:
        local = verify_directory(args.directory, manifest, follow_internal_symlinks=args.follow_internal_symlinks,
                                 ci=platform.is_ci)
        if not local.ok:
            for line in describe(local, manifest.digest):
                out(line)
            raise RefusedError(f"{args.directory} does not hold the files registered as {name}/{number}",
                               hint="seal the registered model itself (omit DIR), or register these files")
    previous = artifacts.recorded_digest(version)
    label = f"models:/{name}/{number}"
    if previous == manifest.digest:
        uri = tag_map(version).get(artifacts.TAG_URI)
        if not uri:
            uri = artifacts.store_manifest(client, where, manifest)
            client.set_model_version_tag(name, number, artifacts.TAG_URI, uri)
        out(f"already sealed: {label} manifest sha256:{manifest.digest} ({len(manifest.subjects)} files, "
            f"{manifest.total_bytes} bytes)")
    else:
        if previous and not args.force:
            raise RefusedError(
                f"{label} is already sealed with different content: sealed sha256:{previous}, "
                f"the artifact store now gives sha256:{manifest.digest}",
                hint="the registered files changed after sealing; investigate. Re-seal only on purpose with "
                "--force (recorded on the version)",
            )
        ctx = platform.context()
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        uri = artifacts.store_manifest(client, where, manifest)
        client.set_model_version_tag(name, number, artifacts.TAG_URI, uri)
        client.set_model_version_tag(name, number, artifacts.TAG_FILES, str(len(manifest.subjects)))
        client.set_model_version_tag(name, number, artifacts.TAG_BYTES, str(manifest.total_bytes))
        client.set_model_version_tag(name, number, artifacts.TAG_SEALED_AT, now)
        client.set_model_version_tag(name, number, artifacts.TAG_SEALED_BY, ctx.requester or "unknown")
        if previous:
            record = {"previous_sha256": previous, "new_sha256": manifest.digest, "at": now,
                      "by": ctx.requester or "unknown", "run_url": ctx.run_url}
            client.set_model_version_tag(name, number, artifacts.TAG_RESEALED, json.dumps(record, sort_keys=True))
            err(f"warning: re-sealed {label} with --force (was sha256:{previous}); recorded in tag "
                f"{artifacts.TAG_RESEALED}")
        client.set_model_version_tag(name, number, artifacts.TAG_SHA256, manifest.digest)
        out(f"sealed {label}: {len(manifest.subjects)} files ({manifest.total_bytes} bytes), "
            f"manifest sha256:{manifest.digest} -> {uri}")
    if args.ledger:
        from mlgate.governed.events import append_event

        append_event(args.ledger, "sealed", name=name, version=number, ci=platform.context(),
                  details={"manifest_sha256": manifest.digest, "files": len(manifest.subjects),
                           "bytes": manifest.total_bytes, "resealed_from": previous if previous != manifest.digest
                           else None},
                  fingerprint=manifest.digest)
    if args.output:
        try:
            write_atomically(args.output, manifest.canonical())
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from exc
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
    return 0


def load_sealed_manifest(ref: str) -> Manifest:
    """The manifest recorded on ``ref``'s model version, checked against its digest tag."""
    from mlgate.lineage import artifacts
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    client = MlflowClient.from_env()
    return artifacts.load_manifest(client, client.resolve(ModelRef.parse(ref)))
