"""Signing keys: a PEM file or an Azure Key Vault key; ECDSA P-256 with SHA-256, as OpenSSF model-signing uses.

A key is named by a *spec*:

``PATH``
    a PEM file: a private key (PKCS#8 or SEC1 "EC PRIVATE KEY") to sign, a public key
    (SubjectPublicKeyInfo) to verify. An encrypted private key takes its password from
    :data:`PASSWORD_VARIABLE`.
``azure-keyvault://VAULT/keys/NAME[/VERSION]``
    a Key Vault key (``VAULT`` is a vault name, or a host such as ``NAME.vault.azure.net``).
    Signing calls Key Vault's ``sign`` operation: the private key never leaves the vault.
    Verifying reads the key's public JWK. See :mod:`mlgate.signing.keyvault`.

Every key is P-256: any other curve (P-384 included) is refused with exit 2, because the
bundles mlgate writes and checks say ECDSA P-256 / SHA-256 and nothing else.

The key *hint* is the hex SHA-256 of the public key's PEM SubjectPublicKeyInfo bytes, exactly
as model_signing computes ``verificationMaterial.publicKey.hint``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mlgate import redact
from mlgate.errors import Error, EvaluationError, RefusedError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

KEYVAULT_SCHEME = "azure-keyvault://"
PASSWORD_VARIABLE = "MLGATE_SIGNING_KEY_PASSWORD"  # noqa: S105 (the variable's name, not a value)
CURVE = "secp256r1"  # P-256
MAX_PEM_BYTES = 64 * 1024


class SigningError(EvaluationError):
    """Could not sign or fetch a key (exit 3): Key Vault 403/429/5xx, unreachable, answered out of shape."""


class SignatureInvalid(RefusedError):
    """A signature is missing, malformed or does not verify (exit 1): the message says expected vs found."""


class KeyConfigError(UsageError):
    """A bad key spec, a key that is not P-256, an unreadable or wrong kind of PEM file (exit 2)."""


class Signer(Protocol):
    """Something that makes DER ECDSA P-256 / SHA-256 signatures; see :func:`load_signer`."""

    @property
    def hint(self) -> str:
        """Hex SHA-256 of the public key's PEM (SubjectPublicKeyInfo) bytes."""
        ...

    @property
    def description(self) -> str:
        """Safe to print: ``PEM key FILE`` / ``Key Vault key VAULT/NAME/VERSION``."""
        ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """A DER ECDSA P-256 / SHA-256 signature over ``data`` (the message itself, not its digest)."""
        ...


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key as PEM SubjectPublicKeyInfo (what ``openssl ec -pubout`` writes)."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """model_signing's ``verificationMaterial.publicKey.hint``: hex SHA-256 of :func:`public_pem`."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def check_curve(key: object, where: str) -> None:
    """Refuse (exit 2) anything but an elliptic-curve P-256 key, naming ``where`` and what it is."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        if key.curve.name == CURVE:
            return
        found = f"an elliptic-curve key on {key.curve.name} ({key.curve.key_size} bits)"
    else:
        found = f"a key of type {type(key).__name__.lstrip('_')}"
    raise KeyConfigError(f"{where}: expected an ECDSA P-256 (secp256r1) key, found {found}",
                         hint="make one with: openssl ecparam -name prime256v1 -genkey -noout -out key.pem "
                         "(or a Key Vault key of type EC, curve P-256)")


@dataclass(frozen=True)
class PublicKey:
    """A trusted P-256 public key, its model_signing hint, and a printable description."""

    key: ec.EllipticCurvePublicKey
    hint: str
    description: str

    @classmethod
    def of(cls, key: ec.EllipticCurvePublicKey, description: str) -> PublicKey:
        check_curve(key, description)
        return cls(key=key, hint=key_hint(key), description=description)

    def verify(self, signature_der: bytes, data: bytes) -> None:
        """Raise :class:`SignatureInvalid` unless ``signature_der`` is this key's signature over ``data``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            self.key.verify(signature_der, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise SignatureInvalid(
                f"the signature does not verify with {self.description} (hint {self.hint[:16]}...)",
                hint="the signed content was changed after signing, or it was signed with another key; "
                "re-seal and sign with the trusted key",
            ) from None


@dataclass(frozen=True)
class PemSigner:
    """A P-256 private key read from a PEM file (the embedded default; ``mlgate demo`` makes one)."""

    private_key: ec.EllipticCurvePrivateKey
    description: str
    hint: str

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:  # never the key itself
        return f"PemSigner({self.description})"


def is_keyvault(spec: str) -> bool:
    return spec.strip().lower().startswith(KEYVAULT_SCHEME)


def _read_pem(path: str, what: str) -> bytes:
    from mlgate.files import read_bounded

    try:
        data = read_bounded(path, MAX_PEM_BYTES, what=what)
    except Error as exc:
        raise KeyConfigError(exc.message, hint=exc.hint or "check the path") from None
    if b"-----BEGIN" not in data:
        raise KeyConfigError(f"{what} {path}: not a PEM file (no -----BEGIN line)",
                             hint="pass a PEM key file; convert a DER key with: openssl ec -inform DER -in KEY")
    return data


def _password(environ: Mapping[str, str] | None) -> bytes | None:
    env = os.environ if environ is None else environ
    value = env.get(PASSWORD_VARIABLE) or ""
    if not value:
        return None
    redact.register(value)
    return value.encode()


def load_pem_signer(path: str, *, password: bytes | None = None,
                    environ: Mapping[str, str] | None = None) -> PemSigner:
    """The P-256 private key in the PEM file ``path``; exit 2 when it is anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    what = "signing key"
    data = _read_pem(path, what)
    if b"PRIVATE KEY-----" not in data:
        raise KeyConfigError(f"{what} {path}: holds no private key (a public key or certificate?)",
                             hint="--sign takes the private key; the public key is what verifiers are given")
    secret = password if password is not None else _password(environ)
    try:
        key: Any = serialization.load_pem_private_key(data, secret)
    except TypeError:
        raise KeyConfigError(f"{what} {path}: the key is encrypted and no password was given" if secret is None
                             else f"{what} {path}: the key is not encrypted, but a password was given",
                             hint=f"set {PASSWORD_VARIABLE} to the key's password, or leave it unset for a "
                             "key that has none") from None
    except ValueError:
        raise KeyConfigError(f"{what} {path}: the PEM private key does not load (damaged, unsupported, or a "
                             "wrong password)", hint=f"check the file and {PASSWORD_VARIABLE}") from None
    except Exception:  # cryptography raises its own UnsupportedAlgorithm for exotic keys
        raise KeyConfigError(f"{what} {path}: unsupported private key type",
                             hint="use an ECDSA P-256 key") from None
    check_curve(key, f"{what} {path}")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return PemSigner(private_key=key, description=f"PEM key {path}", hint=key_hint(key.public_key()))


def load_pem_public_key(path: str) -> PublicKey:
    """The P-256 public key in the PEM file ``path``; exit 2 when it is anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    what = "public key"
    data = _read_pem(path, what)
    if b"PRIVATE KEY-----" in data:
        raise KeyConfigError(f"{what} {path}: holds a private key, not a public key",
                             hint="give verifiers only the public key: openssl ec -in key.pem -pubout -out pub.pem")
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyConfigError(f"{what} {path}: the PEM public key does not load (damaged or not SubjectPublicKeyInfo)",
                             hint="export it with: openssl ec -in key.pem -pubout -out pub.pem") from None
    except Exception:
        raise KeyConfigError(f"{what} {path}: unsupported public key type", hint="use an ECDSA P-256 key") from None
    check_curve(key, f"{what} {path}")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return PublicKey.of(key, f"PEM public key {path}")


def load_signer(spec: str, **options: Any) -> Signer:
    """The signer ``spec`` names: a PEM private key path, or ``azure-keyvault://VAULT/keys/NAME[/VERSION]``.

    Options: ``password`` (bytes, PEM only; default :data:`PASSWORD_VARIABLE`), ``environ``, and for
    Key Vault ``identity`` (a :class:`mlgate.secrets.credentials.IdentityOptions`).
    """
    spec = spec.strip()
    if not spec:
        raise KeyConfigError("the signing key is empty", hint="pass a PEM private key file or azure-keyvault://...")
    if is_keyvault(spec):
        from mlgate.signing.keyvault import load_keyvault_signer

        return load_keyvault_signer(spec, identity=options.get("identity"), environ=options.get("environ"))
    return load_pem_signer(spec, password=options.get("password"), environ=options.get("environ"))


def load_public_key(spec: str, **options: Any) -> PublicKey:
    """The trusted key ``spec`` names: a PEM public key path, or ``azure-keyvault://...`` (its public JWK).

    Options for Key Vault: ``identity`` (:class:`~mlgate.secrets.credentials.IdentityOptions`), ``environ``.
    """
    spec = spec.strip()
    if not spec:
        raise KeyConfigError("the public key is empty", hint="pass a PEM public key file or azure-keyvault://...")
    if is_keyvault(spec):
        from mlgate.signing.keyvault import load_keyvault_public_key

        return load_keyvault_public_key(spec, identity=options.get("identity"), environ=options.get("environ"))
    return load_pem_public_key(spec)
