"""Key Vault keys for signing: ``azure-keyvault://VAULT/keys/NAME[/VERSION]``; the private key never leaves the vault.

* The key is read once (``GET /keys/NAME[/VERSION]``): its public JWK must be ``EC``/``EC-HSM`` on
  ``P-256``, and its full identifier (with the version) is the one every signature then uses, so the
  hint in a bundle and the key that signed it cannot drift apart when a new version is rotated in.
* Signing is Key Vault's ``sign`` operation (``POST /keys/NAME/VERSION/sign``, ``ES256`` over the
  SHA-256 digest of the message) through ``azure-keyvault-keys``' ``CryptographyClient``. The raw
  ``R||S`` answer (64 bytes) is converted to DER and checked against the public key before use.
* The credential is the one ``mlgate secrets`` uses (:mod:`mlgate.secrets.credentials`), and every
  request goes through the same :class:`~mlgate.secrets.azure_http.GuardedTransport`: only to the
  vault's origin, answers bounded and checked field by field before the SDK reads them.
* 403, 429 (after azure-core's bounded retries), 5xx, network and credential failures are
  :class:`~mlgate.signing.keys.SigningError` (exit 3) naming the key, the identity and the fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mlgate import redact
from mlgate.errors import Error, UsageError
from mlgate.signing.keys import KEYVAULT_SCHEME, KeyConfigError, PublicKey, SignatureInvalid, SigningError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlgate.secrets.credentials import IdentityOptions
    from mlgate.secrets.keyvault import Vault

KEY_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
KEY_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")
ROLE = "Key Vault Crypto User"
SPEC_HINT = "write the key as azure-keyvault://VAULT/keys/NAME or azure-keyvault://VAULT/keys/NAME/VERSION"


@dataclass(frozen=True)
class KeyRef:
    """Which Key Vault key: the vault, the key name, and the version (``None``: the current one)."""

    vault: Vault
    name: str
    version: str | None

    def describe(self, version: str | None = None) -> str:
        version = version or self.version
        vault = urlsplit(self.vault.url).netloc if self.vault.loopback else self.vault.name
        return f"Key Vault key {vault}/{self.name}" + (f"/{version}" if version else "")


def parse_key_spec(spec: str) -> KeyRef:
    """``azure-keyvault://VAULT/keys/NAME[/VERSION]``; ``VAULT`` a vault name or a host[:port]."""
    from mlgate.secrets.keyvault import parse_vault

    text = spec.strip()
    if not text.lower().startswith(KEYVAULT_SCHEME):
        raise KeyConfigError("a Key Vault key must start with azure-keyvault://", hint=SPEC_HINT)
    rest = text[len(KEYVAULT_SCHEME):]
    if "?" in rest or "#" in rest or "@" in rest:
        raise KeyConfigError("the Key Vault key carries a query, fragment or user name (not shown)", hint=SPEC_HINT)
    parts = rest.split("/")
    if len(parts) not in (3, 4) or parts[1] != "keys":
        raise KeyConfigError(f"the Key Vault key {text!r} is not VAULT/keys/NAME[/VERSION]", hint=SPEC_HINT)
    host, name = parts[0], unquote(parts[2])
    version = unquote(parts[3]) if len(parts) == 4 and parts[3] else None
    if not KEY_NAME.match(name):
        raise KeyConfigError(f"the Key Vault key name {name!r} is not valid",
                             hint="key names are 1-127 letters, digits and dashes")
    if version is not None and not KEY_VERSION.match(version):
        raise KeyConfigError(f"the Key Vault key version {version!r} is not valid",
                             hint="a key version is the 32 hex digits Key Vault assigned; or leave it out")
    try:
        vault = parse_vault(f"https://{host}" if ("." in host or ":" in host) else host)
    except UsageError as exc:
        raise KeyConfigError(exc.message, hint=exc.hint) from None
    return KeyRef(vault=vault, name=name, version=version)


# -- the shape of Key Vault's key answers --------------------------------------------------------------------

def _check_kid(ref: KeyRef, fields: Any, key: str) -> None:
    """``fields[key]`` is the identifier of a version of this very key: https://VAULT/keys/NAME/VERSION."""
    kid = fields.text(key)
    try:
        parts = urlsplit(kid)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        same_vault = parts.scheme == "https" and (parts.netloc.lower() == urlsplit(ref.vault.url).netloc)
    except ValueError:
        segments, same_vault = [], False
    if not (same_vault and len(segments) == 3 and segments[0] == "keys" and segments[1].lower() == ref.name.lower()
            and KEY_VERSION.match(segments[2])):
        fields.fail(key, f"expected the identifier of a version of key {ref.name!r} in {ref.vault.url}, found "
                    f"{kid[:120]!r}")


def _check_answer(ref: KeyRef, url: str, value: Any) -> None:
    from mlgate.jsonvalue import Fields

    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    if len(segments) == 4 and segments[0] == "keys" and segments[3] == "sign":
        answer = Fields(value, f"the answer of {ref.vault.url} to sign with key {ref.name!r}", error=SigningError)
        _check_kid(ref, answer, "kid")
        answer.text("value")
    elif len(segments) in (2, 3) and segments[0] == "keys":
        bundle = Fields(value, f"the answer of {ref.vault.url} for key {ref.name!r}", error=SigningError)
        jwk = bundle.obj("key")
        _check_kid(ref, jwk, "kid")
        jwk.text("kty")
        for name in ("crv", "x", "y"):
            jwk.opt_text(name)
        jwk.texts("key_ops")
        bundle.opt_obj("attributes").flag("enabled", default=True)


def _guarded_transport(ref: KeyRef) -> Any:
    from mlgate.errors import NetworkError
    from mlgate.secrets.azure_http import Guard, GuardedTransport
    from mlgate.secrets.keyvault import CONNECT_TIMEOUT, READ_TIMEOUT

    guard = Guard.of(f"Key Vault {ref.vault.url}", [ref.vault.url], NetworkError,
                     lambda url, value: _check_answer(ref, url, value), redirects=True)
    return GuardedTransport(guard, connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)


def _client_options(ref: KeyRef) -> dict[str, Any]:
    from mlgate.secrets.azure_http import SameOriginRedirectPolicy
    from mlgate.secrets.keyvault import RETRIES, BoundedRetryPolicy

    return {
        "verify_challenge_resource": not ref.vault.loopback,
        "transport": _guarded_transport(ref),
        "redirect_policy": SameOriginRedirectPolicy(),
        "retry_policy": BoundedRetryPolicy(retry_total=RETRIES, retry_status=RETRIES, retry_backoff_factor=0.5,
                                           retry_backoff_max=20, timeout=120),
    }


# -- errors ------------------------------------------------------------------------------------------------

def _status_error(exc: Any, ref: KeyRef, identity: str, operation: str) -> Error:
    from mlgate.secrets.keyvault import RETRIES, _error_body, _short

    status = exc.status_code
    code, inner, message = _error_body(exc)
    detail = f" ({code}{'/' + inner if inner else ''})" if code else ""
    key = ref.describe()
    if status == 404:
        return KeyConfigError(f"{key} was not found in {ref.vault.url}{detail}",
                              hint="check the vault, the key name and the version; a deleted key must be recovered")
    if status == 403:
        return SigningError(f"{identity} may not {operation} {key}{detail}" + (f": {_short(message, 160)}"
                                                                             if message else ""),
                            hint=f"grant {identity} the '{ROLE}' role on the key or vault (Azure RBAC), or the "
                            "get and sign key permissions in its access policy; nothing was signed")
    if status == 429:
        return SigningError(f"Key Vault {ref.vault.url} kept throttling the request to {operation} {key} "
                            f"(HTTP 429) after {RETRIES} retries", hint="re-run later; nothing was signed")
    if status == 401:
        return SigningError(f"Key Vault {ref.vault.url} did not accept the token of {identity}{detail}",
                            hint="the identity's tenant must be the vault's tenant; check --tenant-id")
    return SigningError(f"Key Vault {ref.vault.url} answered HTTP {status} to {operation} {key}{detail}"
                        + (f": {_short(message, 160)}" if message else ""),
                        hint="re-run later; if it persists, check the vault's health; nothing was signed")


def _translate(exc: Exception, ref: KeyRef, identity: str, operation: str) -> Error:
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    if isinstance(exc, (KeyConfigError, SigningError, SignatureInvalid)):
        return exc
    if isinstance(exc, Error):  # credential, guard and network errors: could not sign (exit 3)
        return SigningError(exc.message, hint=exc.hint)
    if isinstance(exc, ValueError) and "challenge" in str(exc).lower():
        return SigningError(f"{ref.vault.url} answered with an authentication challenge for another domain; no "
                            "token was sent", hint="pass the vault's real host name in the key")
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _status_error(exc, ref, identity, operation)
    if isinstance(exc, ClientAuthenticationError):
        return SigningError(f"could not get an Azure token as {identity} to {operation} {ref.describe()}",
                            hint="check the identity's setup and re-run with -v to see which credential was used")
    if isinstance(exc, AzureError):
        return SigningError(f"could not {operation} {ref.describe()} ({type(exc).__name__})",
                            hint="check the network between this agent and the vault; nothing was signed")
    if isinstance(exc, (ValueError, TypeError, KeyError)):  # the SDK could not read what the vault answered
        return SigningError(f"Key Vault {ref.vault.url} answered out of shape to {operation} {ref.describe()} "
                            f"({type(exc).__name__})", hint="pass the vault's own address; nothing was signed")
    raise exc


# -- keys --------------------------------------------------------------------------------------------------

def _text(value: object) -> str:
    """An SDK enum's value (``KeyType.ec`` -> ``EC``) or a plain string."""
    return str(getattr(value, "value", value) or "")


def _jwk_public_key(ref: KeyRef, jwk: Any, description: str) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    kty, crv = _text(jwk.kty), _text(jwk.crv)
    if kty not in ("EC", "EC-HSM"):
        raise KeyConfigError(f"{description}: expected an EC key on P-256, found key type {kty or 'none'}",
                             hint="create the key with: az keyvault key create --kty EC --curve P-256")
    if crv != "P-256":
        raise KeyConfigError(f"{description}: expected an ECDSA P-256 key, found curve {crv or 'none'}",
                             hint="create the key with: az keyvault key create --kty EC --curve P-256")
    x, y = jwk.x, jwk.y
    if not isinstance(x, bytes) or not isinstance(y, bytes) or len(x) != 32 or len(y) != 32:
        raise SigningError(f"the answer of {ref.vault.url} for key {ref.name!r}: field key.x/key.y: expected two "
                           "32-byte coordinates", hint="the vault answered out of shape; nothing was signed")
    try:
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1())
        return numbers.public_key()
    except ValueError:
        raise SigningError(f"the answer of {ref.vault.url} for key {ref.name!r}: the point (key.x, key.y) is not "
                           "on P-256", hint="the vault answered out of shape; nothing was signed") from None


@dataclass
class _Session:
    ref: KeyRef
    credential: Any
    identity: str

    def close(self) -> None:
        self.credential.close()


def _mask(token: str) -> None:
    redact.register(token)


def _session(ref: KeyRef, identity: IdentityOptions | None, environ: Mapping[str, str] | None) -> _Session:
    from mlgate.secrets.credentials import IdentityOptions, ObservedCredential, choose

    try:
        choice = choose(identity or IdentityOptions(), environ, on_id_token=_mask)
    except Error as exc:
        raise SigningError(exc.message, hint=exc.hint) from None
    return _Session(ref, ObservedCredential(choice.credential), choice.identity)


def _fetch_key(session: _Session) -> Any:
    from azure.keyvault.keys import KeyClient

    ref = session.ref
    try:
        with KeyClient(ref.vault.url, session.credential, **_client_options(ref)) as client:
            return client.get_key(ref.name, ref.version)
    except Exception as exc:
        raise _translate(exc, ref, session.identity, "read") from None


def _version_of(key_id: str | None) -> str | None:
    segments = [s for s in urlsplit(key_id or "").path.split("/") if s]
    return segments[2] if len(segments) >= 3 else None


def load_keyvault_public_key(spec: str, *, identity: IdentityOptions | None = None,
                             environ: Mapping[str, str] | None = None) -> PublicKey:
    """The public key of a Key Vault key (its JWK), to verify with."""
    ref = parse_key_spec(spec)
    session = _session(ref, identity, environ)
    try:
        key = _fetch_key(session)
    finally:
        session.close()
    description = ref.describe(_version_of(key.id))
    return PublicKey.of(_jwk_public_key(ref, key.key, description), description)


class KeyVaultSigner:
    """Signs with Key Vault's ``sign`` operation; holds the public key, never the private one."""

    def __init__(self, session: _Session, key: Any) -> None:
        from azure.keyvault.keys.crypto import CryptographyClient

        self._session = session
        self._ref = session.ref
        self.description = self._ref.describe(_version_of(key.id))
        self._public = PublicKey.of(_jwk_public_key(self._ref, key.key, self.description), self.description)
        self.hint = self._public.hint
        self._client = CryptographyClient(key, session.credential, **_client_options(self._ref))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public.key

    def sign(self, data: bytes) -> bytes:
        from azure.keyvault.keys.crypto import SignatureAlgorithm
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        digest = hashlib.sha256(data).digest()
        try:
            raw = self._client.sign(SignatureAlgorithm.es256, digest).signature
        except Exception as exc:
            raise _translate(exc, self._ref, self._session.identity, "sign with") from None
        if not isinstance(raw, bytes) or len(raw) != 64:
            raise SigningError(f"{self.description}: the sign answer is {len(raw) if isinstance(raw, bytes) else 0} "
                               "bytes, not the 64 of an ES256 R||S signature",
                               hint="the vault answered out of shape; nothing was signed")
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            self._public.verify(der, data)
        except SignatureInvalid:
            raise SigningError(f"{self.description}: the vault's signature does not verify with the key's own public "
                               "key", hint="the vault answered something other than a signature by this key; "
                               "nothing was signed") from None
        return der

    def close(self) -> None:
        self._client.close()
        self._session.close()

    def __repr__(self) -> str:
        return f"KeyVaultSigner({self.description})"


def load_keyvault_signer(spec: str, *, identity: IdentityOptions | None = None,
                         environ: Mapping[str, str] | None = None) -> KeyVaultSigner:
    """A signer for the Key Vault key ``spec`` names (its public key read once, here)."""
    ref = parse_key_spec(spec)
    session = _session(ref, identity, environ)
    try:
        key = _fetch_key(session)
        return KeyVaultSigner(session, key)
    except BaseException:
        session.close()
        raise
