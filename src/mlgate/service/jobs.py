"""A job's payload as it waits in the state store: JSON, sealed with AES-256-GCM.

An Azure DevOps job carries the check's ``AuthToken`` (the callback needs it, and another
replica may be the one to send it), so no payload is ever stored in clear: each is sealed with a
key derived (HKDF-SHA256) from the protocol's own secret -- the Azure DevOps shared key, or the
GitHub webhook secret -- which every replica already holds. During a rotation both the current
and the previous secret open a payload; a new one is always sealed with the current secret. The
job's replay key is the associated data, so a payload cannot be moved onto another job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlgate.errors import EvaluationError
from mlgate.jsonvalue import Fields, parse_json

FORMAT = 1
_INFO = b"mlgate serve job payload v1"


class SealError(EvaluationError):
    """A stored payload could not be opened (rotated-out secret, damaged or foreign message)."""


@dataclass(frozen=True)
class SealKey:
    key_id: str  # 16 hex digits naming the derived key (not the secret), so a reader picks the right one
    aead: AESGCM

    @classmethod
    def derive(cls, secret: str) -> SealKey:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))
        return cls(hashlib.sha256(b"key id:" + raw).hexdigest()[:16], AESGCM(raw))

    def __repr__(self) -> str:
        return f"SealKey({self.key_id})"


class Sealer:
    """Seals with the first key, opens with any of them (current first, then the previous)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a sealer needs at least one secret")
        self._keys = [SealKey.derive(secret) for secret in secrets]

    def seal(self, key: str, payload: dict[str, object]) -> str:
        nonce = os.urandom(12)
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        current = self._keys[0]
        box = current.aead.encrypt(nonce, data, key.encode("utf-8"))
        return json.dumps({"v": FORMAT, "kid": current.key_id, "n": _b64(nonce), "c": _b64(box)})

    def open(self, key: str, sealed: str) -> Fields:
        envelope = Fields(parse_json(sealed, what="a stored job", error=SealError), "a stored job", error=SealError)
        if envelope.integer("v") != FORMAT:
            raise SealError(f"a stored job has format {envelope.integer('v')}, this service reads {FORMAT}")
        kid = envelope.text("kid")
        match = next((k for k in self._keys if k.key_id == kid), None)
        if match is None:
            raise SealError(
                "a stored job was sealed with a secret this replica does not hold",
                hint="keep the previous secret configured (…_PREVIOUS) until the queue has drained",
            )
        try:
            data = match.aead.decrypt(_unb64(envelope.text("n")), _unb64(envelope.text("c")), key.encode("utf-8"))
        except (InvalidTag, ValueError, binascii.Error):
            raise SealError("a stored job failed its integrity check (damaged, or not this job's)") from None
        return Fields(parse_json(data, what="a stored job's payload", error=SealError), "a stored job's payload",
                      error=SealError)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
