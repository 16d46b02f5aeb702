"""DSSE envelopes (Dead Simple Signing Envelope v1): sign a payload, check an untrusted envelope.

The signature covers the pre-authentication encoding (:func:`pae`) of the payload type and the
payload, never the JSON of the envelope, so re-serialising an envelope cannot change what was
signed. The envelope's shape is the one model_signing writes inside its Sigstore bundle::

    {"payload": BASE64, "payloadType": "application/vnd.in-toto+json",
     "signatures": [{"sig": BASE64 DER ECDSA, "keyid": ""}]}

Spec: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from mlgate.errors import Error
from mlgate.jsonvalue import Fields
from mlgate.signing.keys import SignatureInvalid

if TYPE_CHECKING:
    from mlgate.signing.keys import PublicKey, Signer

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"
MAX_SIGNATURE_BYTES = 512  # a DER P-256 signature is at most 72 bytes


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 SP LEN(type) SP type SP LEN(payload) SP payload`` (lengths in bytes, decimal ASCII)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload: bytes, signer: Signer, payload_type: str = PAYLOAD_TYPE_INTOTO) -> dict[str, object]:
    """A DSSE envelope of ``payload`` with one signature by ``signer`` (``keyid`` empty, as model_signing)."""
    signature = signer.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
    }


def _decode(value: str, *, source: str, field: str) -> bytes:
    """Standard base64 (padding optional; URL-safe letters accepted, as DSSE allows both)."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(f"{source}: field {field}: expected base64, found text that does not decode",
                               hint="the signature file is damaged or was edited; sign the model again") from None


def _fields(envelope: object, source: str) -> Fields:
    try:
        return Fields(envelope, source, error=SignatureInvalid)
    except Error as exc:
        raise SignatureInvalid(f"{exc.message} (expected a DSSE envelope)",
                               hint="pass the signature file mlgate seal --sign or model_signing wrote") from None


def verify_envelope(envelope: object, key: PublicKey, *, payload_type: str = PAYLOAD_TYPE_INTOTO,
                    source: str) -> bytes:
    """The payload of ``envelope`` once its one signature verifies with ``key`` over the PAE.

    ``envelope`` is untrusted parsed JSON; every failure raises :class:`SignatureInvalid` naming
    ``source`` (a file, a tag) and what was expected and found.
    """
    fields = _fields(envelope, source)
    found_type = fields.opt_text("payloadType")
    if found_type != payload_type:
        shown = repr(found_type[:80]) if found_type is not None else "none"
        raise SignatureInvalid(f"{source}: field payloadType: expected {payload_type!r}, found {shown}",
                               hint="this envelope signs another kind of document; pass the right signature file")
    payload = _decode(fields.text("payload"), source=source, field="payload")
    signatures = fields.objs("signatures")
    if len(signatures) != 1:
        raise SignatureInvalid(f"{source}: field signatures: expected exactly one signature, found {len(signatures)}",
                               hint="mlgate and model_signing write one signature per envelope")
    sig_text = signatures[0].text("sig")
    if len(sig_text) > MAX_SIGNATURE_BYTES * 2:
        raise SignatureInvalid(f"{source}: field signatures[0].sig: {len(sig_text)} characters, far longer than "
                               "an ECDSA P-256 signature", hint="the signature file is damaged or was edited")
    signature = _decode(sig_text, source=source, field="signatures[0].sig")
    if not signature:
        raise SignatureInvalid(f"{source}: field signatures[0].sig: expected a signature, found an empty one",
                               hint="sign the model again")
    try:
        key.verify(signature, pae(payload_type, payload))
    except SignatureInvalid as exc:
        raise SignatureInvalid(f"{source}: {exc.message}", hint=exc.hint) from None
    return payload
