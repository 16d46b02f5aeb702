"""Signing primitives: PEM keys, key hints, DSSE envelopes; every hostile envelope is refused naming the field."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mlgate.errors import EXIT_REFUSED, EXIT_USAGE
from mlgate.signing import dsse
from mlgate.signing.keys import (
    PASSWORD_VARIABLE,
    KeyConfigError,
    PublicKey,
    SignatureInvalid,
    key_hint,
    load_public_key,
    load_signer,
)


def write_key(path: Path, key: object, *, password: bytes | None = None) -> Path:
    assert isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def write_public(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.fixture
def p256(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    return write_key(tmp_path / "key.pem", key), write_public(tmp_path / "pub.pem", key)


def test_hint_is_sha256_of_the_pem_public_key(p256: tuple[Path, Path]) -> None:
    private, public = p256
    signer = load_signer(str(private))
    trusted = load_public_key(str(public))
    assert signer.hint == trusted.hint == hashlib.sha256(public.read_bytes()).hexdigest()
    assert signer.description == f"PEM key {private}"
    assert key_hint(signer.public_key()) == signer.hint


def test_envelope_round_trip_and_shape(p256: tuple[Path, Path]) -> None:
    signer, trusted = load_signer(str(p256[0])), load_public_key(str(p256[1]))
    envelope = dsse.sign_envelope(b'{"x": 1}', signer)
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == dsse.PAYLOAD_TYPE_INTOTO
    assert envelope["signatures"] == [{"sig": envelope["signatures"][0]["sig"], "keyid": ""}]  # type: ignore[index]
    assert dsse.verify_envelope(json.loads(json.dumps(envelope)), trusted, source="model.sig") == b'{"x": 1}'


def test_pae_is_dsse_v1() -> None:
    assert dsse.pae("t", b"hello") == b"DSSEv1 1 t 5 hello"
    assert dsse.pae(dsse.PAYLOAD_TYPE_INTOTO, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "


def _signed(p256: tuple[Path, Path], payload: bytes = b"{}") -> tuple[dict[str, object], PublicKey]:
    return dsse.sign_envelope(payload, load_signer(str(p256[0]))), load_public_key(str(p256[1]))


def _refused(envelope: object, key: PublicKey, **kwargs: str) -> str:
    with pytest.raises(SignatureInvalid) as caught:
        dsse.verify_envelope(envelope, key, source="model.sig", **kwargs)
    assert caught.value.exit_code == EXIT_REFUSED
    assert caught.value.message.startswith("model.sig")
    return caught.value.message


def test_wrong_payload_type_names_expected_and_found(p256: tuple[Path, Path]) -> None:
    envelope, key = _signed(p256)
    envelope["payloadType"] = "text/plain"
    message = _refused(envelope, key)
    assert "expected 'application/vnd.in-toto+json'" in message and "found 'text/plain'" in message


def test_payload_type_is_signed_too(p256: tuple[Path, Path]) -> None:
    envelope, key = _signed(p256)
    assert "found 'application/vnd.in-toto+json'" in _refused(envelope, key, payload_type="application/vnd.other+json")
    envelope["payloadType"] = "application/vnd.other+json"
    assert "does not verify" in _refused(envelope, key, payload_type="application/vnd.other+json")


def test_swapped_payload_does_not_verify(p256: tuple[Path, Path]) -> None:
    envelope, key = _signed(p256, b'{"subject": "a"}')
    envelope["payload"] = base64.b64encode(b'{"subject": "b"}').decode()
    assert "does not verify with PEM public key" in _refused(envelope, key)


def test_other_key_does_not_verify(p256: tuple[Path, Path], tmp_path: Path) -> None:
    envelope, _ = _signed(p256)
    other = write_public(tmp_path / "other.pem", ec.generate_private_key(ec.SECP256R1()))
    assert "does not verify" in _refused(envelope, load_public_key(str(other)))


@pytest.mark.parametrize("damage", [
    lambda e: e.pop("payload"),
    lambda e: e.update(payload="%%%not base64%%%"),
    lambda e: e.update(signatures=[]),
    lambda e: e.update(signatures=[e["signatures"][0], e["signatures"][0]]),
    lambda e: e.update(signatures=[{"sig": ""}]),
    lambda e: e.update(signatures=[{"sig": "QUJD"}]),
    lambda e: e.update(signatures=[{"sig": "A" * 5000}]),
    lambda e: e.update(signatures="MEUCIQ"),
])
def test_malformed_envelopes_are_refused(p256: tuple[Path, Path], damage: object) -> None:
    envelope, key = _signed(p256)
    damage(envelope)  # type: ignore[operator]
    _refused(envelope, key)


@pytest.mark.parametrize("value", [None, [], "text", 3])
def test_not_an_object(p256: tuple[Path, Path], value: object) -> None:
    _, key = _signed(p256)
    assert "expected a DSSE envelope" in _refused(value, key)


def test_p384_and_rsa_keys_are_refused(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    for spec, loader in ((write_key(tmp_path / "k384.pem", p384), load_signer),
                         (write_public(tmp_path / "p384.pem", p384), load_public_key),
                         (write_key(tmp_path / "rsa.pem", rsa.generate_private_key(65537, 2048)), load_signer)):
        with pytest.raises(KeyConfigError) as caught:
            loader(str(spec))
        assert caught.value.exit_code == EXIT_USAGE
        assert "expected an ECDSA P-256 (secp256r1) key, found" in caught.value.message
        assert str(spec) in caught.value.message
    with pytest.raises(KeyConfigError, match="secp384r1"):
        load_public_key(str(tmp_path / "p384.pem"))


def test_wrong_kind_of_pem_file(p256: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = p256
    with pytest.raises(KeyConfigError, match="holds no private key"):
        load_signer(str(public))
    with pytest.raises(KeyConfigError, match="holds a private key, not a public key"):
        load_public_key(str(private))
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(KeyConfigError, match="not a PEM file"):
        load_signer(str(tmp_path / "junk.pem"))
    with pytest.raises(KeyConfigError, match="no such file"):
        load_public_key(str(tmp_path / "missing.pem"))
    (tmp_path / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyConfigError, match="does not load"):
        load_signer(str(tmp_path / "broken.pem"))


def test_encrypted_key_takes_its_password_from_the_environment(tmp_path: Path) -> None:
    path = write_key(tmp_path / "enc.pem", ec.generate_private_key(ec.SECP256R1()), password=b"canary-pw-4411")
    with pytest.raises(KeyConfigError, match="encrypted and no password") as caught:
        load_signer(str(path), environ={})
    assert PASSWORD_VARIABLE in (caught.value.hint or "")
    with pytest.raises(KeyConfigError, match="does not load") as wrong:
        load_signer(str(path), environ={PASSWORD_VARIABLE: "wrong-canary-9"})
    assert "wrong-canary-9" not in wrong.value.diagnostics()
    assert load_signer(str(path), environ={PASSWORD_VARIABLE: "canary-pw-4411"}).hint


def test_no_key_material_in_repr_or_errors(p256: tuple[Path, Path]) -> None:
    signer = load_signer(str(p256[0]))
    body = "".join(p256[0].read_text().splitlines()[1:-1])
    assert body[:40] not in repr(signer)
    envelope, key = _signed(p256)
    envelope["payload"] = "@@"
    assert body[:40] not in _refused(envelope, key)


def test_empty_spec_is_a_usage_error() -> None:
    with pytest.raises(KeyConfigError):
        load_signer("  ")
    with pytest.raises(KeyConfigError):
        load_public_key("")


@pytest.mark.parametrize(("spec", "url", "name", "version"), [
    ("azure-keyvault://myvault/keys/seal", "https://myvault.vault.azure.net", "seal", None),
    ("azure-keyvault://myvault.vault.azure.net/keys/seal/0123abcd", "https://myvault.vault.azure.net", "seal",
     "0123abcd"),
    ("azure-keyvault://127.0.0.1:8443/keys/k-1/", "https://127.0.0.1:8443", "k-1", None),
])
def test_key_vault_specs(spec: str, url: str, name: str, version: str | None) -> None:
    from mlgate.signing.keyvault import parse_key_spec

    ref = parse_key_spec(spec)
    assert (ref.vault.url, ref.name, ref.version) == (url, name, version)


@pytest.mark.parametrize("spec", [
    "azure-keyvault://myvault/secrets/seal",
    "azure-keyvault://myvault/keys/",
    "azure-keyvault://myvault/keys/a_b",
    "azure-keyvault://myvault/keys/seal/v/extra",
    "azure-keyvault://user:pw@myvault/keys/seal",
    "azure-keyvault://myvault/keys/seal?sig=canary",
    "azure-keyvault://x/keys/seal",
])
def test_bad_key_vault_specs(spec: str) -> None:
    from mlgate.signing.keyvault import parse_key_spec

    with pytest.raises(KeyConfigError) as caught:
        parse_key_spec(spec)
    assert caught.value.exit_code == EXIT_USAGE
    assert "pw" not in caught.value.diagnostics().replace("VAULT", "")
    assert "canary" not in caught.value.diagnostics()
