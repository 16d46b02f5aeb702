"""Signed evidence: ``evidence.json`` as an in-toto Statement v1 in a DSSE envelope (``evidence.dsse.json``).

The statement (``payloadType`` ``application/vnd.in-toto+json``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "models:/NAME/VERSION", "digest": {"sha256": MANIFEST_SHA256}},   # when sealed
                 {"name": "evidence.json", "digest": {"sha256": SHA256_OF_THE_FILE_BYTES}}],
     "predicateType": "https://mlgate.dev/evidence/v1",
     "predicate": {...the evidence document, evidence_sha256 included...}}

One signature (ECDSA P-256 / SHA-256, DER, over the DSSE pre-authentication encoding), its
``keyid`` the hex SHA-256 of the signer's public key PEM (the ``hint`` of a model signature).
:func:`verify` checks the envelope with a trusted key and that its predicate *is* the evidence
being recorded; every failure is :class:`mlgate.signing.keys.SignatureInvalid` (exit 1) naming
the file and what was expected and found.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mlgate.evidence.pack import Evidence
from mlgate.integrity.manifest import canonical_json
from mlgate.jsonvalue import Fields, parse_json

if TYPE_CHECKING:
    from mlgate.signing.keys import PublicKey, Signer

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlgate.dev/evidence/v1"
SIGNATURE_NAME = "evidence.dsse.json"  # written beside evidence.json
MAX_ENVELOPE_BYTES = 96 << 20  # the evidence (at most 64 MiB to `record`) base64-encoded, and a little


def statement(evidence: Evidence) -> dict[str, Any]:
    """The in-toto statement over ``evidence`` (subjects: the sealed manifest, the evidence.json bytes)."""
    subjects: list[dict[str, Any]] = []
    if evidence.manifest_sha256:
        digest = evidence.manifest_sha256.lower().removeprefix("sha256:")
        subjects.append({"name": f"models:/{evidence.model.name}/{evidence.model.version}",
                         "digest": {"sha256": digest}})
    subjects.append({"name": "evidence.json", "digest": {"sha256": hashlib.sha256(evidence.to_json()).hexdigest()}})
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": dict(evidence.document)}


def sign(evidence: Evidence, signer: Signer) -> bytes:
    """The bytes of ``evidence.dsse.json`` (the signer's SigningError propagates: exit 3, nothing written)."""
    from mlgate.signing.dsse import sign_envelope

    envelope = sign_envelope(canonical_json(statement(evidence)), signer)
    for signature in _signatures(envelope):
        signature["keyid"] = signer.hint  # not covered by the signature: which key to verify with
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _signatures(envelope: dict[str, object]) -> list[dict[str, object]]:
    items = envelope.get("signatures")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def verify(data: bytes, evidence: Evidence, key: PublicKey, *, source: str, evidence_path: str) -> None:
    """Refuse (exit 1) unless ``data`` is an envelope signed by ``key`` over exactly ``evidence``."""
    from mlgate.signing.dsse import verify_envelope
    from mlgate.signing.keys import SignatureInvalid

    hint = f"pass the {SIGNATURE_NAME} that `mlgate gate --sign` wrote with this evidence.json"
    envelope = parse_json(data, what=source, error=SignatureInvalid, hint=hint)
    payload = verify_envelope(envelope, key, source=source)
    fields = Fields(parse_json(payload, what=f"{source}: payload", error=SignatureInvalid),
                    f"{source}: statement", error=SignatureInvalid)
    for name, expected in (("_type", STATEMENT_TYPE), ("predicateType", PREDICATE_TYPE)):
        found = fields.raw(name)
        if found != expected:
            raise SignatureInvalid(f"{source}: statement {name} is {str(found)[:200]!r}, expected {expected!r}",
                                   hint=hint)
    predicate = fields.raw("predicate")
    if not isinstance(predicate, dict) or canonical_json(predicate) != canonical_json(dict(evidence.document)):
        signed = predicate.get("evidence_sha256") if isinstance(predicate, dict) else None
        raise SignatureInvalid(
            f"{evidence_path} is not the evidence that was signed: {source} signs evidence sha256 "
            f"{str(signed)[:80]}, {evidence_path} is sha256 {evidence.sha256}",
            hint="record the evidence.json written with this signature by the same `mlgate gate --sign` run",
        )
