"""`mlgate verify`: re-hash a directory and compare it with the sealed manifest."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import command_parser, mlflow_alias
from mlgate.commands._signing import add_identity_options

if TYPE_CHECKING:
    from mlgate.integrity import Comparison
    from mlgate.integrity.manifest import Manifest
    from mlgate.lineage.records import ModelVersion

HELP = "re-hash DIR and compare it with the sealed (and signed) manifest"
DESCRIPTION = """\
Re-hash exactly the files under DIR and compare them with the sealed manifest (a file, or
the manifest recorded on an MLflow model version). Exit 0 on an exact match; otherwise
exit 1 listing every changed, missing and extra file with expected and actual digests,
then a one-line summary. The manifest is validated before any file is hashed: a malformed
one is exit 2. An unreadable file is exit 3, never a pass.

Both manifest layouts are read: OpenSSF model-signing v1.0 (files or shards, re-hashed the
way the manifest records) and mlgate's earlier one-subject-per-file layout.

With --public-key (the key you trust: a PEM public key, or azure-keyvault://VAULT/keys/NAME
whose public key is read from Key Vault), the manifest comes from the signed statement in
--signature (default: model.sig beside --manifest), a bundle written by `mlgate seal --sign`
or `model_signing sign key`. A missing, malformed or wrong signature refuses (exit 1) naming
what was expected and what was found; with --manifest too, it must be the signed one.

With --model REF and --gated-alias ALIAS (the deploy templates pass the gate's alias,
`candidate`), the version must still carry ALIAS: the environment's approval check judged
models:/NAME@ALIAS, so a version that lost the alias to a later run's passing gate was not the
one the approver saw, and verify refuses (exit 1) naming both versions.
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
    parser.add_argument("--public-key", metavar="KEY",
                        help="the trusted key: a PEM public key file or azure-keyvault://VAULT/keys/NAME[/VERSION]; "
                        "a signature by it is then required")
    parser.add_argument("--signature", metavar="FILE",
                        help="with --public-key: the Sigstore bundle (default: model.sig beside --manifest)")
    parser.add_argument("--gated-alias", metavar="ALIAS", type=mlflow_alias,
                        help="with --model: refuse unless the version still carries this alias (the one the "
                        "environment's approval check judged, e.g. candidate), so the deployed version is the one "
                        "the approver saw")
    add_identity_options(parser)
    return parser


def signed_manifest(args: argparse.Namespace) -> tuple[Manifest, str]:
    """The manifest of the verified signature, and a line saying who signed it (exit 1 when it does not verify)."""
    from mlgate.commands._signing import load_public_key
    from mlgate.errors import UsageError
    from mlgate.signing.bundle import default_signature_path, read_signature_file
    from mlgate.signing.bundle import signed_manifest as from_bundle
    from mlgate.signing.keys import SignatureInvalid

    if not (args.signature or args.manifest):
        raise UsageError("verify --public-key needs --signature FILE (or --manifest, to look for model.sig beside "
                         "it)", hint="mlgate verify DIR --signature model.sig --public-key pub.pem")
    key = load_public_key(args.public_key, args)
    path = str(args.signature or default_signature_path(args.manifest))
    manifest = from_bundle(read_signature_file(path, key), key, source=path)
    if args.manifest:
        given = read_manifest(args.manifest)
        if given.digest != manifest.digest:
            raise SignatureInvalid(f"{args.manifest} is not the manifest {path} signs: expected sha256:"
                                   f"{manifest.digest}, found sha256:{given.digest}",
                                   hint="pass the manifest and the signature written by the same seal")
    return manifest, f"signature verified: {path} signed by {key.description}; manifest sha256:{manifest.digest}"


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
    if args.signature and not args.public_key:
        raise UsageError("--signature needs --public-key (the key you trust to have signed it)",
                         hint="mlgate verify DIR --signature model.sig --public-key pub.pem")
    if args.gated_alias and not args.model:
        raise UsageError("--gated-alias needs --model REF (the model version about to be deployed)",
                         hint="mlgate verify DIR --model models:/NAME/VERSION --gated-alias candidate")
    if args.public_key and args.model:
        from mlgate.lineage.signatures import load_signed_manifest

        version, manifest, line = load_signed_manifest(args.model, args)
        out(line)
    elif args.public_key:
        manifest, line = signed_manifest(args)
        out(line)
    elif args.manifest:
        manifest = read_manifest(args.manifest)
    elif args.model:
        from mlgate.lineage.artifacts import load_sealed_manifest

        version, manifest = load_sealed_manifest(args.model)
    else:
        raise UsageError("verify needs --manifest FILE, --model REF or --public-key KEY --signature FILE",
                         hint="mlgate verify DIR --manifest manifest.json")
    if version is not None and args.gated_alias:
        out(still_gated(version, args.gated_alias))
    tolerated = None
    with platform.group(f"mlgate verify: hash {manifest.files} file(s) and compare with the seal"):
        result = verify_directory(args.directory, manifest, follow_internal_symlinks=args.follow_internal_symlinks,
                                  ci=platform.is_ci)
        if version is not None:
            from mlgate.lineage.artifacts import REGISTERED_MODEL_META, without_download_marker

            result, dropped = without_download_marker(args.directory, version, manifest, result)
            if dropped:
                tolerated = REGISTERED_MODEL_META
                out(f"tolerated {REGISTERED_MODEL_META}: written by MLflow's client when downloading the model")
        if manifest.serialization is not None and manifest.serialization.ignore_paths:
            out("not compared (ignore_paths of the manifest): " + ", ".join(manifest.serialization.ignore_paths))
        lines = describe(result, manifest.digest)
        for line in lines:
            out(line)
    if platform.is_ci:
        platform.summary(summary_markdown(args, manifest.digest, result, tolerated))
    if not result.ok:
        platform.annotate("error", f"mlgate verify: {lines[-1]}")
        return 1
    return 0


def still_gated(version: ModelVersion, alias: str) -> str:
    """The line saying ``version`` still carries ``alias``; RefusedError (exit 1) when it does not."""
    from mlgate.errors import RefusedError
    from mlgate.lineage.mlflow import MlflowClient, NotFound

    if alias in version.aliases:
        return f"gated alias: models:/{version.name}@{alias} -> version {version.version} (the version deployed)"
    try:
        now = f"version {MlflowClient.from_env().get_model_version_by_alias(version.name, alias).version}"
    except NotFound:
        now = "no version"
    raise RefusedError(
        f"models:/{version.name}@{alias} points at {now}, not at version {version.version} which this run deploys: "
        f"the approval check judged @{alias}, so the approver did not see this version",
        hint=f"a later run's passing gate moved @{alias}; re-run this release (gate, approval, deploy) "
             "or approve waiting runs in order before the next gate passes")


def summary_markdown(args: argparse.Namespace, digest: str, result: Comparison, tolerated: str | None) -> str:
    """The step summary: the verdict, what was compared with what, and every differing file."""
    from mlgate.evidence.markdown import cell, folded_table

    source = (f"the manifest sealed on `{cell(args.model)}`" if args.model else f"`{cell(args.manifest)}`"
              if args.manifest else f"the manifest signed in `{cell(args.signature)}`")
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
