"""`mlgate seal`: hash every file of a model directory into a manifest."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import add_ledger_key_option, add_ledger_option, command_parser
from mlgate.commands._signing import KEY_FORMS, add_identity_options, add_serialization_options

if TYPE_CHECKING:
    from mlgate.integrity.manifest import Manifest
    from mlgate.lineage.artifacts import ModelFiles
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.lineage.records import ModelVersion
    from mlgate.platforms.base import Platform

HELP = "hash every file under DIR into a manifest (OpenSSF model-signing v1.0), optionally signed"
DESCRIPTION = """\
Hash every regular file under DIR (SHA-256, in parallel, streaming) into an in-toto Statement
v1 in the OpenSSF model-signing v1.0 layout and print the manifest's digest. Resources are
sorted and the JSON is canonical, so the same files always give the same manifest; with the
default files serialization each resource's digest is the plain SHA-256 of the file (sha256sum
agrees); --serialization shards hashes pieces of every file on every core instead.

--sign KEY also writes a Sigstore bundle (DSSE envelope, ECDSA P-256/SHA-256) over the
manifest to --signature (default: model.sig beside the manifest), the file `model_signing
verify key` checks. KEY is a PEM private key file, or azure-keyvault://VAULT/keys/NAME[/VERSION]
signed by Key Vault's sign operation (the private key never leaves the vault). Nothing is
written unless hashing and signing both succeeded: a failure to sign (exit 3) leaves no
unsigned manifest behind.

Refused (exit 1): symlinks leaving DIR, symlinks inside DIR (unless
--follow-internal-symlinks), FIFOs, sockets, devices, file names that are not UTF-8.
Exit 3 when a file cannot be read.

With --model, the version's artifacts are read from MLflow instead and the manifest is
recorded on that model version. With --ledger too, a `sealed` entry is appended to the audit
ledger, signed with --ledger-key KEY when given (the key is loaded before anything is sealed).
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
    add_serialization_options(parser)
    parser.add_argument("--sign", metavar="KEY", help=f"sign the manifest with this private key: {KEY_FORMS}")
    parser.add_argument("--signature", metavar="FILE",
                        help="with --sign: where the Sigstore bundle goes (default: model.sig beside the manifest)")
    add_ledger_option(parser, purpose="with --model: also append a `sealed` entry to this audit ledger "
                      "(see `mlgate audit`); off unless given here or in MLGATE_LEDGER")
    add_ledger_key_option(parser)
    add_identity_options(parser)
    return parser


def _signature_path(args: argparse.Namespace) -> str | None:
    from mlgate.errors import UsageError

    if not args.sign:
        if args.signature:
            raise UsageError("--signature needs --sign KEY", hint="mlgate seal DIR -o manifest.json --sign key.pem")
        return None
    from mlgate.signing.bundle import default_signature_path

    return str(args.signature or default_signature_path(args.output))


@dataclass(frozen=True)
class Signed:
    """A manifest's Sigstore bundle and the key that made it."""

    bundle: bytes
    description: str
    hint: str

    @property
    def who(self) -> str:
        return f"{self.description} (hint {self.hint})"


def _sign(args: argparse.Namespace, seal: Callable[[], Manifest]) -> tuple[Manifest, Signed | None]:
    """``seal()``'s manifest and, with --sign, its bundle (the key is loaded first: a bad key fails before hashing)."""
    if not args.sign:
        return seal(), None
    from mlgate.commands._signing import close, load_signer
    from mlgate.signing.bundle import make_bundle

    signer = load_signer(args.sign, args)
    try:
        manifest = seal()
        return manifest, Signed(make_bundle(manifest.canonical(), signer), signer.description, signer.hint)
    finally:
        close(signer)


def write_outputs(manifest_path: str | None, manifest: bytes, signature_path: str | None,
                  signature: bytes | None) -> None:
    """The signature, then the manifest, each atomically; a manifest that cannot be written takes the signature away."""
    import contextlib
    import os

    from mlgate.files import write_atomically

    if signature is not None and signature_path:
        write_atomically(signature_path, signature)
    if manifest_path:
        try:
            write_atomically(manifest_path, manifest)
        except BaseException:
            if signature is not None and signature_path:
                with contextlib.suppress(OSError):
                    os.unlink(signature_path)
            raise


def run(args: argparse.Namespace) -> int:
    from mlgate.commands._signing import serialization
    from mlgate.console import err, out
    from mlgate.errors import UsageError
    from mlgate.integrity import seal_directory
    from mlgate.integrity.manifest import sha256_hex
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    signature_path = _signature_path(args)
    if args.model:
        return seal_model(args, platform)
    if not args.directory:
        raise UsageError("seal needs a directory (or --model REF)", hint="mlgate seal DIR -o manifest.json")
    chosen = serialization(args, args.directory, [args.output, signature_path])
    with platform.group(f"mlgate seal: hash the files under {args.directory}"):
        manifest, signed = _sign(args, lambda: seal_directory(
            args.directory, serialization=chosen, follow_internal_symlinks=args.follow_internal_symlinks,
            ci=platform.is_ci))
    signature = signed.bundle if signed else None
    data = manifest.canonical()
    pieces = f", {len(manifest.subjects)} shards" if manifest.method == "shards" else ""
    summary = (f"sealed {manifest.files} files ({manifest.total_bytes} bytes{pieces}): "
               f"manifest sha256:{manifest.digest}")
    write_outputs(args.output, data, signature_path, signature)
    if args.output:
        out(summary + f" -> {args.output}")
    else:
        out(data.decode("utf-8"))
        err(summary)
    if signed is not None:
        (err if not args.output else out)(f"signed by {signed.who} -> {signature_path}")
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
        if signature is not None:
            platform.set_output("signature_sha256", sha256_hex(signature))
    return 0


# ---------------------------------------------------------------------------- seal --model
# `seal --model REF` streams the version's files from the MLflow artifact store, hashes them while
# downloading, stores the manifest next to the model files and tags the version (see
# mlgate.lineage.artifacts for where and why). Re-sealing a version already sealed with different
# content is refused (exit 1) unless --force, which is itself recorded in the mlgate.resealed tag.
# With a DIR too, DIR must hold exactly the registered files.


def seal_model(args: argparse.Namespace, platform: Platform) -> int:
    from mlgate.commands._signing import serialization
    from mlgate.console import out
    from mlgate.errors import RefusedError
    from mlgate.files import write_atomically
    from mlgate.integrity import describe, verify_directory
    from mlgate.lineage import artifacts
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    ledger = None
    if args.ledger:  # its signing key is loaded (and checked) before anything is recorded
        from mlgate.commands._signing import identity_options
        from mlgate.governed.events import open_event_ledger

        ledger = open_event_ledger(args.ledger, args.ledger_key, identity_options(args))
    client = MlflowClient.from_env()
    version = client.resolve(ModelRef.parse(args.model))
    chosen = serialization(args, None, [])
    located: list[ModelFiles] = []

    def seal() -> Manifest:
        manifest, where = artifacts.seal_from_store(client, version, ci=platform.is_ci, serialization=chosen)
        located.append(where)
        return manifest

    with platform.group(f"mlgate seal: hash {args.model} from the artifact store"):
        manifest, signed = _sign(args, seal)
    where = located[0]
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
        _keep_seal(client, version, manifest, where, signed)
    else:
        upgrade = previous is not None and _earlier_layout_of(client, version, manifest)
        if upgrade:
            out(f"models:/{version.label} was sealed in mlgate's earlier manifest layout with these very files "
                "and digests: re-sealing it in the model-signing v1.0 layout (recorded)")
        _write_seal(client, version, manifest, where, previous=previous, force=args.force or upgrade,
                    platform=platform, signed=signed)
    if args.ledger and ledger is not None:
        from mlgate.governed.events import append_event

        append_event(args.ledger, "sealed", name=version.name, version=version.version, ci=platform.context(),
                  details={"manifest_sha256": manifest.digest, "files": manifest.files,
                           "bytes": manifest.total_bytes, "resealed_from": previous if previous != manifest.digest
                           else None},
                  fingerprint=manifest.digest, ledger=ledger,
                  recorded=f"models:/{version.label} is sealed (manifest sha256:{manifest.digest})")
    if args.output:
        write_atomically(args.output, manifest.canonical())
    if platform.is_ci:
        platform.set_output("manifest_sha256", manifest.digest)
    return 0


def _earlier_layout_of(client: MlflowClient, version: ModelVersion, manifest: Manifest) -> bool:
    """The recorded seal is mlgate's first layout over exactly these files and digests (an upgrade, not a change)."""
    from mlgate.errors import Error
    from mlgate.lineage import artifacts

    try:
        recorded = artifacts.load_manifest(client, version)
    except Error:
        return False
    return recorded.serialization is None and manifest.method == "files" and \
        dict(recorded.subjects) == dict(manifest.subjects)


def _record_signature(client: MlflowClient, version: ModelVersion, manifest: Manifest, where: ModelFiles,
                      signed: Signed | None) -> dict[str, str]:
    """The signature tags to set (stored next to the manifest); without one, stale signature tags are removed."""
    from mlgate.lineage import signatures

    if signed is None:
        for tag in (signatures.TAG_SHA256, signatures.TAG_URI, signatures.TAG_KEY):
            if version.tags.get(tag):
                client.delete_model_version_tag(version.name, version.version, tag)
        return {}
    return signatures.store_signature(where, manifest, signed.bundle, signed.hint)


def _keep_seal(client: MlflowClient, version: ModelVersion, manifest: Manifest, where: ModelFiles,
               signed: Signed | None) -> None:
    """Already sealed with this content: store the manifest again when its location tag is gone; add a signature."""
    from mlgate.console import out
    from mlgate.lineage import artifacts

    if not version.tags.get(artifacts.TAG_URI):
        uri = artifacts.store_manifest(client, where, manifest)
        client.set_model_version_tag(version.name, version.version, artifacts.TAG_URI, uri)
    out(f"already sealed: models:/{version.label} manifest sha256:{manifest.digest} ({manifest.files} files, "
        f"{manifest.total_bytes} bytes)")
    if signed is not None:
        from mlgate.lineage import signatures

        recorded = _record_signature(client, version, manifest, where, signed)
        for key, value in recorded.items():
            client.set_model_version_tag(version.name, version.version, key, value)
        out(f"signed by {signed.who} -> {recorded[signatures.TAG_URI]}")


def _write_seal(
    client: MlflowClient, version: ModelVersion, manifest: Manifest, where: ModelFiles, *,
    previous: str | None, force: bool, platform: Platform, signed: Signed | None = None,
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
    tags = {artifacts.TAG_URI: uri, artifacts.TAG_FILES: str(manifest.files),
            artifacts.TAG_BYTES: str(manifest.total_bytes), artifacts.TAG_SEALED_AT: now,
            artifacts.TAG_SEALED_BY: ctx.requester or "unknown"}
    if previous:
        record = {"previous_sha256": previous, "new_sha256": manifest.digest, "at": now,
                  "by": ctx.requester or "unknown", "run_url": ctx.run_url}
        tags[artifacts.TAG_RESEALED] = json.dumps(record, sort_keys=True)
    signature_tags = _record_signature(client, version, manifest, where, signed)
    tags.update(signature_tags)
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)
    if previous:
        err(f"warning: re-sealed {label} with --force (was sha256:{previous}); recorded in tag "
            f"{artifacts.TAG_RESEALED}")
    client.set_model_version_tag(version.name, version.version, artifacts.TAG_SHA256, manifest.digest)
    out(f"sealed {label}: {manifest.files} files ({manifest.total_bytes} bytes), "
        f"manifest sha256:{manifest.digest} -> {uri}")
    if signed is not None:
        from mlgate.lineage import signatures

        out(f"signed by {signed.who} -> {signature_tags[signatures.TAG_URI]}")
