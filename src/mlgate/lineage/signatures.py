"""The signature of a seal, kept on the model version like the manifest.

``seal --model REF --sign KEY`` stores the Sigstore bundle's bytes next to the manifest, at
``<manifest dir>/<manifest sha256>.sig`` (content addressed like the manifest), and tags the
version with ``mlgate.signature.sha256`` (the bundle's SHA-256), ``mlgate.signature.uri`` and
``mlgate.signature.key_hint`` (the signing key's hint), all before the manifest digest tag, so a
torn seal is never trusted. A fetched bundle is only used when its digest equals the tag, and its
signed statement must be the manifest the version is sealed with.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import TYPE_CHECKING

from mlgate.signing.keys import SignatureInvalid
from mlgate.tags import SIGNATURE_KEY as TAG_KEY
from mlgate.tags import SIGNATURE_SHA256 as TAG_SHA256
from mlgate.tags import SIGNATURE_URI as TAG_URI

if TYPE_CHECKING:
    from mlgate.integrity.manifest import Manifest
    from mlgate.lineage.artifacts import ModelFiles
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.lineage.records import ModelVersion
    from mlgate.signing.keys import PublicKey

__all__ = ["TAG_KEY", "TAG_SHA256", "TAG_URI", "check_version_signature", "load_signed_manifest", "store_signature"]


def store_signature(where: ModelFiles, manifest: Manifest, bundle: bytes, hint: str) -> dict[str, str]:
    """Upload the bundle next to the manifest; the tags that record it (set them before the digest tag)."""
    from mlgate.lineage.artifacts import MANIFEST_DIR

    store = where.manifest_store or where.store
    uri = store.put(f"{MANIFEST_DIR}/{manifest.digest}.sig", bundle)
    return {TAG_URI: uri, TAG_SHA256: hashlib.sha256(bundle).hexdigest(), TAG_KEY: hint}


def _fetch(client: MlflowClient, version: ModelVersion, key: PublicKey) -> tuple[bytes, str]:
    from mlgate.lineage.artifacts import _SHA256
    from mlgate.lineage.mlflow import NotFound
    from mlgate.signing.bundle import MAX_BUNDLE_BYTES
    from mlgate.stores.interface import Missing, open_store, split_location

    label = f"models:/{version.label}"
    expected = f"a signature by {key.description} (hint {key.hint[:16]}...)"
    digest = version.tags.get(TAG_SHA256, "").strip()
    uri = version.tags.get(TAG_URI, "").strip()
    if not digest or not uri:
        raise SignatureInvalid(f"{label}: expected {expected}, found none recorded (no {TAG_SHA256} tag)",
                               hint=f"seal it signed: mlgate seal --model {label} --sign KEY")
    if not _SHA256.match(digest):
        raise SignatureInvalid(f"{label}: tag {TAG_SHA256} is not a SHA-256 digest")
    directory, name = split_location(uri)
    store = open_store(directory, client, what=f"the seal signature of {label}") if name else None
    if store is None:
        raise SignatureInvalid(f"{label}: {TAG_URI} does not point into an artifact store mlgate reads",
                               hint="re-seal it signed with `mlgate seal --model --sign`")
    try:
        data = store.read(name, max_bytes=MAX_BUNDLE_BYTES)
    except (NotFound, Missing):
        raise SignatureInvalid(f"{label}: expected {expected} at {uri}, found no file",
                               hint="the store was altered after sealing; investigate before releasing") from None
    found = hashlib.sha256(data).hexdigest()
    if found != digest:
        raise SignatureInvalid(f"{label}: the stored signature does not match its tag: expected sha256:{digest}, "
                               f"found sha256:{found}", hint="the signature was replaced after sealing; investigate")
    return data, uri


def check_version_signature(client: MlflowClient, version: ModelVersion, manifest: Manifest,
                            keys: list[PublicKey]) -> str:
    """Refuse (exit 1) unless the version's recorded signature verifies with one of ``keys`` and signs ``manifest``.

    Returns the line saying who signed it.
    """
    from mlgate.signing.bundle import signed_manifest

    problems: list[SignatureInvalid] = []
    for key in keys:
        try:
            data, uri = _fetch(client, version, key)
            signed = signed_manifest(data, key, source=f"the seal signature of models:/{version.label} ({uri})")
        except SignatureInvalid as exc:
            problems.append(exc)
            continue
        if signed.digest != manifest.digest:
            raise SignatureInvalid(f"models:/{version.label}: the signature signs manifest sha256:{signed.digest}, "
                                   f"expected the sealed sha256:{manifest.digest}",
                                   hint="the seal was replaced after signing; investigate before releasing")
        return f"signature verified: models:/{version.label} signed by {key.description}; manifest " \
               f"sha256:{manifest.digest}"
    if len(problems) == 1:
        raise problems[0]
    raise SignatureInvalid("no trusted key verifies the signature: " + "; ".join(p.message for p in problems),
                           hint=problems[0].hint if problems else None)


def load_signed_manifest(ref: str, args: argparse.Namespace) -> tuple[ModelVersion, Manifest, str]:
    """``ref``'s version, its sealed manifest, once the recorded signature verifies with ``--public-key``."""
    from mlgate.commands._signing import load_public_key
    from mlgate.lineage.artifacts import load_manifest
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    key = load_public_key(args.public_key, args)
    client = MlflowClient.from_env()
    version = client.resolve(ModelRef.parse(ref))
    manifest = load_manifest(client, version)
    return version, manifest, check_version_signature(client, version, manifest, [key])
