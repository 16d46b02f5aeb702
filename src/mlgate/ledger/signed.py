"""Signed ledger entries: the recording identity's signature on every entry it appends.

A signed entry carries ``sig``: ``{"keyid": HINT, "sig": BASE64}``, where HINT is the hex SHA-256
of the signer's public key PEM (as ``verificationMaterial.publicKey.hint`` in a model signature)
and the signature is ECDSA P-256 / SHA-256 (DER) over the DSSE pre-authentication encoding of
:data:`PAYLOAD_TYPE` and the canonical JSON of the entry without ``hash`` and ``sig``. The
``hash`` is computed afterwards and covers the ``sig`` too, so the next entry's ``prev`` (which
its own signature covers) pins this signature: every signature is a signed checkpoint of the
whole chain up to and including its entry.

Verification with a trusted key (:class:`Trust`): every entry after ``unsigned_until`` (0: all of
them; the last seq written before signing began, for a ledger that predates it) must carry a
signature with the key's hint, and the *last* signature must verify. That one check covers every
entry before it: changing any byte of an earlier entry breaks the hash chain unless every later
entry is re-hashed, which changes the last entry's ``prev`` and so what its signature covers. So
verification costs one ECDSA verification, not one per entry; only when it fails is the ledger
read again, verifying each signature, to name the first entry whose signature fails.

Appending with a signer (:class:`HeadCheck`) first verifies the signature of the entry it chains
onto, so an honest writer never signs onto a rewritten chain; appending onto an unsigned last
entry is refused when an earlier entry is signed (signatures stripped, or an unsigned writer).

What a signature cannot show: entries removed from the end (the anchors in MLflow and exports
kept elsewhere do), and a ledger whose signatures were all stripped, when the auditor does not
pin where signing began (``--unsigned-until``; by default every entry must be signed).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate.integrity.manifest import canonical_json
from mlgate.ledger.base import (
    SIG_KEY,
    Entry,
    TamperedError,
    VerifyResult,
    parse_line,
    verify_lines,
)

if TYPE_CHECKING:
    from mlgate.signing.keys import PublicKey, Signer

PAYLOAD_TYPE = "application/vnd.mlgate.ledger-entry.v1+json"
_MARKER = b'"' + SIG_KEY.encode() + b'":{"keyid":'  # how a signed entry's canonical line spells its sig member


def signed_message(body: Mapping[str, Any]) -> bytes:
    """The bytes an entry's signature is over: PAE(PAYLOAD_TYPE, entry without hash and sig)."""
    from mlgate.signing.dsse import pae

    return pae(PAYLOAD_TYPE, canonical_json({k: v for k, v in body.items() if k not in ("hash", SIG_KEY)}))


def sign_body(body: Mapping[str, Any], signer: Signer) -> dict[str, str]:
    """The ``sig`` member for the entry ``body`` (raises the signer's SigningError: exit 3, nothing written)."""
    der = signer.sign(signed_message(body))
    return {"keyid": signer.hint, "sig": base64.b64encode(der).decode("ascii")}


def signature_problem(entry: Entry, key: PublicKey) -> str | None:
    """None when ``entry`` is signed by ``key`` and its signature verifies; else what is wrong."""
    from mlgate.signing.keys import SignatureInvalid

    if entry.signature is None:
        return f"not signed (expected a signature by {key.description}, hint {key.hint})"
    keyid, encoded = entry.signature
    if keyid != key.hint:
        return f"signed by the key with hint {keyid[:80]}, expected {key.description} (hint {key.hint})"
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "its signature is not base64"
    try:
        key.verify(der, signed_message(entry.data))
    except SignatureInvalid:
        return (f"its signature does not verify with {key.description} (hint {key.hint}): the entry, or one "
                "before it, was changed after it was signed")
    return None


@dataclass(frozen=True)
class Trust:
    """The key every entry after ``unsigned_until`` must be signed by."""

    key: PublicKey
    unsigned_until: int = 0

    def checker(self) -> Checker:
        return Checker(self)


class Checker:
    """One verification pass: presence and key of each signature as the lines stream, the last one at the end."""

    def __init__(self, trust: Trust) -> None:
        self.trust = trust
        self.count = 0
        self.first: int | None = None
        self.last: tuple[Entry, int] | None = None

    def see(self, entry: Entry, line: int) -> None:
        trust = self.trust
        if entry.seq <= trust.unsigned_until:
            return
        if entry.signature is None:
            began = (f"signing began at seq {self.first}" if self.first is not None
                     else f"every entry after seq {trust.unsigned_until} must be signed")
            raise TamperedError(
                f"line {line} (seq {entry.seq}): not signed by {trust.key.description} (hint {trust.key.hint}); "
                f"{began}. Entries written before signing began: pass --unsigned-until SEQ (the last of them)",
                line=line, seq=entry.seq,
            )
        if entry.signature[0] != trust.key.hint:
            raise TamperedError(f"line {line} (seq {entry.seq}): {signature_problem(entry, trust.key)}",
                                line=line, seq=entry.seq)
        self.count += 1
        if self.first is None:
            self.first = entry.seq
        self.last = (entry, line)

    def finish(self) -> tuple[int, int | None]:
        """Verify the last signature (it covers every entry before it); return (signed entries, first signed seq)."""
        if self.last is not None:
            entry, line = self.last
            problem = signature_problem(entry, self.trust.key)
            if problem is not None:
                raise LastSignatureBad(f"line {line} (seq {entry.seq}): {problem}", line=line, seq=entry.seq)
        return self.count, self.first


class LastSignatureBad(TamperedError):
    """The last signature does not verify (:func:`verify_signed` then names the first entry that fails)."""


def first_bad_signature(lines: Iterable[bytes], trust: Trust) -> TamperedError | None:
    """Verify every signature after ``trust.unsigned_until``; the error for the first that fails (or None)."""
    for number, raw in enumerate(lines, start=1):
        entry = parse_line(raw, line=number)
        if entry.seq <= trust.unsigned_until:
            continue
        problem = signature_problem(entry, trust.key)
        if problem is not None:
            return TamperedError(f"line {number} (seq {entry.seq}): {problem}", line=number, seq=entry.seq)
    return None


def verify_signed(
    open_lines: Callable[[], Iterable[bytes]],
    *,
    anchors: Mapping[int, Iterable[tuple[str, str]]] | None = None,
    trust: Trust,
) -> VerifyResult:
    """:func:`verify_lines` with ``trust``; when the last signature fails, read again to name the first bad entry."""
    try:
        return verify_lines(open_lines(), anchors=anchors, trust=trust)
    except LastSignatureBad as exc:
        first = first_bad_signature(open_lines(), trust)
        raise (first or exc) from None


def public_key_of(signer: Signer) -> PublicKey:
    """The signer's own public key, to verify what it signed before."""
    from mlgate.signing.keys import PublicKey

    return PublicKey(key=signer.public_key(), hint=signer.hint, description=signer.description)


class HeadCheck:
    """The lines of an append's snapshot, watched for a signed entry; :meth:`check` vets the entry appended onto."""

    def __init__(self, lines: Iterable[bytes], signer: Signer) -> None:
        self._lines = lines
        self.signer = signer
        self.signed_seen: tuple[int, bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        for number, raw in enumerate(self._lines, start=1):
            if self.signed_seen is None and _MARKER in raw:
                self.signed_seen = (number, raw)
            yield raw

    def check(self, last: Entry | None, *, location: str) -> None:
        """Refuse (exit 1, nothing appended) to sign onto a last entry that is not signed by this key."""
        if last is None:
            return
        hint = "run `mlgate audit verify --public-key ...` on the ledger, restore it from a trusted copy and " \
               "investigate who wrote it; nothing was appended"
        if last.signature is None:
            if self.signed_seen is None:
                return  # an unsigned ledger: signing begins with this entry
            number, raw = self.signed_seen
            earlier = parse_line(raw, line=number)
            if earlier.signature is not None:
                error = TamperedError(
                    f"{location}: will not sign onto the last entry (seq {last.seq}): it is not signed, but seq "
                    f"{earlier.seq} is (signatures were stripped, or a writer without the key appended)",
                    line=0, seq=last.seq,
                )
                error.hint = hint
                raise error
            return
        problem = signature_problem(last, public_key_of(self.signer))
        if problem is not None:
            error = TamperedError(f"{location}: will not sign onto the last entry (seq {last.seq}): {problem}",
                                  line=0, seq=last.seq)
            error.hint = hint
            raise error
