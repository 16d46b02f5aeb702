"""Both directions with the real ``model_signing`` package: its bundles verify with mlgate, mlgate's with it.

model_signing's Python API is the one its ``sign key`` / ``verify key`` commands call; it reads and
writes the same ``model.sig`` files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from model_signing import hashing, signing, verifying

from mlgate.cli import main

from .conftest import KeyPair

MIB = 1 << 20


def ms_sign(model: Path, keys: KeyPair, signature: Path, *, shard_size: int | None = None) -> None:
    config = signing.Config().use_elliptic_key_signer(private_key=keys.private)
    if shard_size:
        config.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=shard_size))
    config.sign(model, signature)


def ms_verify(model: Path, public: Path, signature: Path) -> None:
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, signature)


def payload(signature: Path) -> dict[str, object]:
    bundle = json.loads(signature.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


def test_model_signing_bundle_verifies_with_mlgate(model: Path, keys: KeyPair, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sig = tmp_path / "model.sig"
    ms_sign(model, keys, sig)
    assert main(["verify", str(model), "--signature", str(sig), "--public-key", str(keys.public)]) == 0
    out = capsys.readouterr().out
    assert f"signature verified: {sig} signed by PEM public key {keys.public}" in out
    assert "verified: 5 files match" in out
    (model / "weights" / "model.safetensors").write_bytes(b"poisoned")
    assert main(["verify", str(model), "--signature", str(sig), "--public-key", str(keys.public)]) == 1
    assert "changed  weights/model.safetensors" in capsys.readouterr().out


def test_mlgate_bundle_verifies_with_model_signing(model: Path, keys: KeyPair, tmp_path: Path) -> None:
    manifest = tmp_path / "out" / "manifest.json"
    manifest.parent.mkdir()
    assert main(["seal", str(model), "-o", str(manifest), "--sign", str(keys.private)]) == 0
    sig = tmp_path / "out" / "model.sig"
    ms_verify(model, keys.public, sig)
    (model / "a" / "z.txt").write_text("changed")
    with pytest.raises(ValueError, match=r"Hash mismatch for 'a/z\.txt'"):
        ms_verify(model, keys.public, sig)


def test_same_statement_as_model_signing(model: Path, keys: KeyPair, tmp_path: Path) -> None:
    """Same resources, same order, same subject digest: mlgate's statement is model_signing's, canonical."""
    sig = tmp_path / "ms.sig"
    ms_sign(model, keys, sig)
    theirs = payload(sig)
    manifest = tmp_path / "manifest.json"
    assert main(["seal", str(model), "-o", str(manifest)]) == 0
    ours = json.loads(manifest.read_bytes())
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]  # type: ignore[index]
    names = [r["name"] for r in ours["predicate"]["resources"]]
    assert names.index("a/z.txt") < names.index("a.b")  # path components, not string order
    digest = hashlib.sha256((model / "weights" / "model.safetensors").read_bytes()).hexdigest()
    assert {"name": "weights/model.safetensors", "algorithm": "sha256", "digest": digest} in \
        ours["predicate"]["resources"]


def test_shards_both_directions(model: Path, keys: KeyPair, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    theirs = tmp_path / "ms-shards.sig"
    ms_sign(model, keys, theirs, shard_size=MIB)
    assert main(["verify", str(model), "--signature", str(theirs), "--public-key", str(keys.public)]) == 0
    assert "verified: 6 files match" in capsys.readouterr().out  # resources: 3 shards and 3 small files
    ours_dir = tmp_path / "ours"
    ours_dir.mkdir()
    assert main(["seal", str(model), "-o", str(ours_dir / "manifest.json"), "--sign", str(keys.private),
                 "--serialization", "shards", "--shard-size", "1MiB"]) == 0
    statement = payload(ours_dir / "model.sig")
    assert statement["predicate"] == payload(theirs)["predicate"] | {  # type: ignore[operator]
        "serialization": statement["predicate"]["serialization"]}  # type: ignore[index]
    assert statement["predicate"]["serialization"] == {  # type: ignore[index]
        "method": "shards", "hash_type": "sha256", "shard_size": MIB, "allow_symlinks": False}
    names = [r["name"] for r in statement["predicate"]["resources"]]  # type: ignore[index]
    assert [n for n in names if n.startswith("weights/model")] == [
        "weights/model.safetensors:0:1048576", "weights/model.safetensors:1048576:2097152",
        "weights/model.safetensors:2097152:2304000"]
    ms_verify(model, keys.public, ours_dir / "model.sig")
    with (model / "weights" / "model.safetensors").open("r+b") as handle:
        handle.seek(1_500_000)
        handle.write(b"X")
    assert main(["verify", str(model), "--signature", str(ours_dir / "model.sig"),
                 "--public-key", str(keys.public)]) == 1
    assert "changed  weights/model.safetensors:1048576:2097152" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Hash mismatch"):
        ms_verify(model, keys.public, ours_dir / "model.sig")


def test_model_signing_refuses_mlgate_bundle_for_another_key(model: Path, keys: KeyPair, other_keys: KeyPair,
                                                            tmp_path: Path) -> None:
    assert main(["seal", str(model), "-o", str(tmp_path / "manifest.json"), "--sign", str(keys.private)]) == 0
    with pytest.raises(ValueError, match="Key mismatch"):
        ms_verify(model, other_keys.public, tmp_path / "model.sig")


def test_signature_inside_the_model_is_ignored_by_both(model: Path, keys: KeyPair,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", str(model), "--sign", str(keys.private), "--signature", str(model / "model.sig"),
                 "-o", str(model / "manifest.json")]) == 0
    statement = payload(model / "model.sig")
    assert statement["predicate"]["serialization"]["ignore_paths"] == ["manifest.json", "model.sig"]  # type: ignore[index]
    ms_verify(model, keys.public, model / "model.sig")
    assert main(["verify", str(model), "--signature", str(model / "model.sig"), "--public-key",
                 str(keys.public)]) == 0
    assert "not compared (ignore_paths of the manifest): manifest.json, model.sig" in capsys.readouterr().out
