"""`seal --sign` and `verify --public-key` through the CLI: what is written, and every hostile signature refused.

Each refusal is exit 1 and names the file, what was expected and what was found; a seal that
cannot be signed writes nothing at all.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.cli import main
from mlgate.signing import dsse
from mlgate.signing.keys import load_signer

from .conftest import KeyPair, make_pair


def sealed(model: Path, keys: KeyPair, folder: Path, *extra: str) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    manifest = folder / "manifest.json"
    assert main(["seal", str(model), "-o", str(manifest), "--sign", str(keys.private), *extra]) == 0
    return manifest, folder / "model.sig"


def verify(model: Path, signature: Path, public: Path, *extra: str) -> int:
    return main(["verify", str(model), "--signature", str(signature), "--public-key", str(public), *extra])


def refused(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err
    return err


def test_seal_writes_manifest_and_bundle(model: Path, keys: KeyPair, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    manifest, sig = sealed(model, keys, tmp_path / "out")
    out = capsys.readouterr().out
    bundle = json.loads(sig.read_bytes())
    assert list(bundle) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    assert hint == load_signer(str(keys.private)).hint and f"(hint {hint})" in out
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == manifest.read_bytes()  # the manifest is the signed statement
    assert verify(model, sig, keys.public) == 0
    assert main(["verify", str(model), "--manifest", str(manifest), "--public-key", str(keys.public)]) == 0


def test_missing_signature_is_refused(model: Path, keys: KeyPair, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", str(model), "-o", str(tmp_path / "manifest.json")]) == 0
    capsys.readouterr()
    assert main(["verify", str(model), "--manifest", str(tmp_path / "manifest.json"),
                 "--public-key", str(keys.public)]) == 1
    refused(capsys, "expected a signature by PEM public key", f"at {tmp_path / 'model.sig'}, found no file")


def test_truncated_bundle(model: Path, keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, sig = sealed(model, keys, tmp_path / "out")
    sig.write_bytes(sig.read_bytes()[:200])
    assert verify(model, sig, keys.public) == 1
    refused(capsys, str(sig), "not valid JSON", "expected a Sigstore bundle")


def test_wrong_media_type(model: Path, keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, sig = sealed(model, keys, tmp_path / "out")
    bundle = json.loads(sig.read_bytes())
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    sig.write_text(json.dumps(bundle))
    assert verify(model, sig, keys.public) == 1
    refused(capsys, "field mediaType: expected 'application/vnd.dev.sigstore.bundle.v0.3+json', found "
            "'application/vnd.dev.sigstore.bundle+json;version=0.1'")


def test_wrong_payload_type(model: Path, keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, sig = sealed(model, keys, tmp_path / "out")
    bundle = json.loads(sig.read_bytes())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"] = dsse.sign_envelope(payload, load_signer(str(keys.private)), "application/json")
    sig.write_text(json.dumps(bundle))
    assert verify(model, sig, keys.public) == 1
    refused(capsys, "field payloadType: expected 'application/vnd.in-toto+json', found 'application/json'")


def test_signature_over_another_statement(model: Path, keys: KeyPair, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The envelope of another model's seal, its payload swapped in: the signature no longer covers it."""
    _, sig = sealed(model, keys, tmp_path / "out")
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "x.bin").write_bytes(b"another model")
    other_manifest, _ = sealed(other, keys, tmp_path / "other-out")
    bundle = json.loads(sig.read_bytes())
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(other_manifest.read_bytes()).decode()
    sig.write_text(json.dumps(bundle))
    assert verify(other, sig, keys.public) == 1
    refused(capsys, "dsseEnvelope: the signature does not verify with PEM public key")


def test_manifest_that_is_not_the_signed_one(model: Path, keys: KeyPair, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = sealed(model, keys, tmp_path / "out")
    (model / "MLmodel").write_text("edited after signing\n")
    assert main(["seal", str(model), "-o", str(manifest)]) == 0  # re-sealed, unsigned, over the signed manifest
    capsys.readouterr()
    assert main(["verify", str(model), "--manifest", str(manifest), "--public-key", str(keys.public)]) == 1
    refused(capsys, f"{manifest} is not the manifest", "signs: expected sha256:", ", found sha256:")


def test_key_hint_mismatch(model: Path, keys: KeyPair, other_keys: KeyPair, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    _, sig = sealed(model, keys, tmp_path / "out")
    assert verify(model, sig, other_keys.public) == 1
    theirs = load_signer(str(keys.private)).hint
    refused(capsys, f"signed by the key with hint {theirs}", "expected the trusted PEM public key")


def test_hint_rewritten_to_the_trusted_key_still_fails(model: Path, keys: KeyPair, other_keys: KeyPair,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, sig = sealed(model, keys, tmp_path / "out")
    bundle = json.loads(sig.read_bytes())
    bundle["verificationMaterial"]["publicKey"]["hint"] = load_signer(str(other_keys.private)).hint
    sig.write_text(json.dumps(bundle))
    assert verify(model, sig, other_keys.public) == 1
    refused(capsys, "the signature does not verify with PEM public key")


def test_p384_keys_are_refused_as_configuration(model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    p384 = make_pair(tmp_path / "keys384", "p384", ec.SECP384R1())
    out = tmp_path / "out"
    out.mkdir()
    assert main(["seal", str(model), "-o", str(out / "manifest.json"), "--sign", str(p384.private)]) == 2
    refused(capsys, "expected an ECDSA P-256 (secp256r1) key, found an elliptic-curve key on secp384r1")
    assert list(out.iterdir()) == []
    (out / "model.sig").write_text("{}")
    assert verify(model, out / "model.sig", p384.public) == 2
    refused(capsys, "secp384r1")


def test_failure_to_sign_leaves_nothing(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert main(["seal", str(model), "-o", str(out / "manifest.json"), "--sign", str(out / "broken.pem")]) == 2
    refused(capsys, "does not load")
    assert sorted(p.name for p in out.iterdir()) == ["broken.pem"]


def test_signature_flag_rules(model: Path, keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", str(model), "--signature", str(tmp_path / "x.sig")]) == 2
    refused(capsys, "--signature needs --sign KEY")
    assert main(["verify", str(model), "--signature", str(tmp_path / "x.sig")]) == 2
    refused(capsys, "--signature needs --public-key")
    assert main(["verify", str(model), "--public-key", str(keys.public)]) == 2
    refused(capsys, "verify --public-key needs --signature FILE")
    assert main(["seal", str(model), "--shard-size", "1MiB"]) == 2
    refused(capsys, "--shard-size applies to --serialization shards only")
    assert main(["seal", str(model), "--serialization", "shards", "--shard-size", "12"]) == 2
    refused(capsys, "--shard-size 12 is out of range")


def test_encrypted_key_password_never_printed(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"right-canary-77")))
    monkeypatch.setenv("MLGATE_SIGNING_KEY_PASSWORD", "wrong-canary-31")
    assert main(["-v", "seal", str(model), "-o", str(tmp_path / "m.json"), "--sign", str(path)]) == 2
    err = refused(capsys, "does not load")
    assert "canary" not in err
    monkeypatch.setenv("MLGATE_SIGNING_KEY_PASSWORD", "right-canary-77")
    assert main(["seal", str(model), "-o", str(tmp_path / "m.json"), "--sign", str(path)]) == 0
    captured = capsys.readouterr()
    assert "canary" not in captured.out + captured.err
    body = "".join(path.read_text().splitlines()[1:-1])
    assert body[:32] not in (tmp_path / "model.sig").read_text()


def test_legacy_manifest_still_verifies(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest in mlgate's first layout (one subject per file) keeps verifying."""
    from mlgate.integrity.hashing import hash_entries
    from mlgate.integrity.manifest import Manifest
    from mlgate.integrity.tree import scan_tree

    entries = scan_tree(model)
    legacy = Manifest.build(hash_entries(entries), sum(e.size for e in entries), follow_internal_symlinks=False)
    path = tmp_path / "legacy.json"
    path.write_bytes(legacy.canonical())
    assert json.loads(path.read_bytes())["predicateType"] == "https://mlgate.dev/manifest/v1"
    assert main(["verify", str(model), "--manifest", str(path)]) == 0
    (model / "a.b").write_text("changed")
    assert main(["verify", str(model), "--manifest", str(path)]) == 1
    assert "changed  a.b" in capsys.readouterr().out
