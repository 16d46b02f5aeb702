"""Sigstore bundle v0.3 with a DSSE envelope: the signature file ``model_signing`` writes and reads (``model.sig``).

::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": HEX SHA-256 OF THE PEM PUBLIC KEY}, "tlogEntries": []},
     "dsseEnvelope": {"payload": BASE64 STATEMENT, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": BASE64 DER ECDSA P-256/SHA-256 OVER THE PAE, "keyid": ""}]}}

Key signing writes no transparency-log entry (``tlogEntries`` is empty, as in model_signing's
``sign key``). Reading checks, in order: the JSON, the media type, the key hint against the
trusted key, the envelope (:func:`mlgate.signing.dsse.verify_envelope`); each failure is
:class:`~mlgate.signing.keys.SignatureInvalid` (exit 1) naming the file, what was expected and
what was found.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from mlgate.errors import Error
from mlgate.jsonvalue import Fields, parse_json
from mlgate.signing.dsse import PAYLOAD_TYPE_INTOTO, sign_envelope, verify_envelope
from mlgate.signing.keys import SignatureInvalid

if TYPE_CHECKING:
    from mlgate.integrity.manifest import Manifest
    from mlgate.signing.keys import PublicKey, Signer

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGNATURE_NAME = "model.sig"  # model_signing's default file name
MAX_BUNDLE_BYTES = (256 << 20) * 4 // 3 + (1 << 20)  # a base64 manifest of mlgate's largest, and room
_HINT = "sign the model again (mlgate seal DIR -o manifest.json --sign KEY) and pass that signature file"


def make_bundle(payload: bytes, signer: Signer) -> bytes:
    """The bundle's bytes: compact JSON in model_signing's key order."""
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": signer.hint}, "tlogEntries": []},
        "dsseEnvelope": sign_envelope(payload, signer, PAYLOAD_TYPE_INTOTO),
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


def default_signature_path(manifest_path: str | None) -> str:
    """``model.sig`` beside the manifest (the current directory without one)."""
    folder = os.path.dirname(os.path.abspath(manifest_path)) if manifest_path else os.getcwd()
    return os.path.join(folder, SIGNATURE_NAME)


def read_signature_file(path: str, key: PublicKey) -> bytes:
    """The bytes of the signature file ``path``; a missing one refuses (exit 1): a trusted key needs a signature."""
    from mlgate.files import read_bounded

    if not os.path.lexists(path):
        raise SignatureInvalid(f"expected a signature by {key.description} (hint {key.hint[:16]}...) at {path}, "
                               "found no file", hint=_HINT)
    try:
        return read_bounded(path, MAX_BUNDLE_BYTES, what="signature")
    except Error as exc:
        raise SignatureInvalid(exc.message, hint=exc.hint or _HINT) from None


def verify_bundle(data: bytes, key: PublicKey, *, source: str) -> bytes:
    """The signed statement (payload bytes) of the bundle ``data`` once it verifies with ``key``."""
    try:
        value = parse_json(data, what=source, error=SignatureInvalid, hint=_HINT)
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"{exc.message} (expected a Sigstore bundle)", hint=_HINT) from None
    bundle = Fields(value, source, error=SignatureInvalid)
    media = bundle.opt_text("mediaType")
    if media != BUNDLE_MEDIA_TYPE:
        shown = repr(media[:80]) if media is not None else "none"
        raise SignatureInvalid(f"{source}: field mediaType: expected {BUNDLE_MEDIA_TYPE!r}, found {shown}",
                               hint="pass the Sigstore bundle mlgate or model_signing wrote (model.sig)")
    material = bundle.obj("verificationMaterial")
    hint = material.opt_obj("publicKey").opt_text("hint")
    if hint and hint.lower() != key.hint:
        raise SignatureInvalid(
            f"{source}: signed by the key with hint {hint[:64]}, expected the trusted {key.description} "
            f"(hint {key.hint})", hint="the model was signed with another key: pass that key's public key if you "
            "trust it, or sign again with the trusted one")
    if not bundle.has("dsseEnvelope"):
        raise SignatureInvalid(f"{source}: field dsseEnvelope: expected a DSSE envelope, found none",
                               hint="mlgate verifies key-signed bundles with a DSSE envelope (model_signing's "
                               "sign key / sign certificate)")
    return verify_envelope(bundle.raw("dsseEnvelope"), key, payload_type=PAYLOAD_TYPE_INTOTO,
                           source=f"{source}: dsseEnvelope")


def signed_manifest(data: bytes, key: PublicKey, *, source: str) -> Manifest:
    """The manifest a verified bundle signs (a model-signing v1.0 or mlgate statement); else exit 1."""
    from mlgate.integrity.manifest import Manifest

    payload = verify_bundle(data, key, source=source)
    try:
        return Manifest.parse(payload, source=f"{source}: the signed statement")
    except Error as exc:
        raise SignatureInvalid(f"{exc.message} (expected a model-signing v1.0 statement)",
                               hint="the signature is valid but signs something other than a model manifest; "
                               "pass the model's own signature file") from None
