"""Keys and models for the signing suites: P-256 PEM key pairs made here, small model directories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def make_pair(folder: Path, name: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(private, public)


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return make_pair(tmp_path / "keys", "signing")


@pytest.fixture
def other_keys(tmp_path: Path) -> KeyPair:
    return make_pair(tmp_path / "keys", "other")


def make_model(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "weights" / "model.safetensors").write_bytes(bytes(range(256)) * 9000)  # 2.2 MiB: 3 shards of 1 MiB
    (root / "weights" / "empty.bin").write_bytes(b"")
    (root / "a.b").write_text("sorts after 'a/' in model_signing's order, before it as a string")
    (root / "a").mkdir()
    (root / "a" / "z.txt").write_text("z")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "my-model")


# The loopback Key Vault of the secrets suite (TLS, real azure-identity and azure-keyvault-* SDKs).
from tests.integration.secrets.conftest import azure, ca_bundle, fake_azure_server  # noqa: E402

__all__ = ["KeyPair", "azure", "ca_bundle", "fake_azure_server", "make_model", "make_pair"]


@pytest.fixture(autouse=True)
def _fresh_key_challenges() -> None:
    """azure-keyvault-keys caches Key Vault's challenge per process; each test starts like a fresh CLI."""
    from azure.keyvault.keys._shared import http_challenge_cache

    http_challenge_cache.clear()
