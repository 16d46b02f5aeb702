"""Signing with an Azure Key Vault key through the real azure-keyvault-keys SDK and azure-identity.

The loopback Key Vault (tests/integration/secrets/fake_azure.py) answers the documented keys API:
get key (the public JWK), sign (ES256 over a digest, raw R||S), and its errors. The private key
stays in the fake; mlgate only ever sees the public key and signatures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate.cli import main
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import apply, managed_env

pytestmark = pytest.mark.integration


def spec(azure: FakeAzure, name: str = "release-signing", version: str | None = None) -> str:
    host = azure.vault_url.removeprefix("https://")
    return f"azure-keyvault://{host}/keys/{name}" + (f"/{version}" if version else "")


@pytest.fixture
def vault_key(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, Path]:
    apply(monkeypatch, managed_env(azure))
    azure.add_key("release-signing", versions=2)
    public = tmp_path / "kv.pub.pem"
    public.write_bytes(azure.public_pem("release-signing"))
    return spec(azure), public


def seal(model: Path, key: str, out: Path, *extra: str) -> int:
    out.mkdir(exist_ok=True)
    return main(["seal", str(model), "-o", str(out / "manifest.json"), "--sign", key, *extra])


def test_sign_with_key_vault_verifies_with_pem_and_with_the_vault(
        azure: FakeAzure, vault_key: tuple[str, Path], model: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, public = vault_key
    assert seal(model, key, tmp_path / "out") == 0
    out = capsys.readouterr().out
    latest = azure.keys["release-signing"].versions[-1][0]
    assert f"signed by Key Vault key {azure.vault_url.removeprefix('https://')}/release-signing/{latest}" in out
    sig = tmp_path / "out" / "model.sig"
    assert main(["verify", str(model), "--signature", str(sig), "--public-key", str(public)]) == 0
    assert main(["verify", str(model), "--signature", str(sig), "--public-key", key]) == 0
    signs = [h for h in azure.hits if h.server == "vault" and h.path.endswith("/sign")]
    assert len(signs) == 1 and signs[0].path.endswith(f"/keys/release-signing/{latest}/sign")
    assert json.loads(signs[0].body)["alg"] == "ES256"


def test_pinned_version_and_model_signing_verifies(azure: FakeAzure, vault_key: tuple[str, Path], model: Path,
                                                   tmp_path: Path) -> None:
    from model_signing import verifying

    first = azure.keys["release-signing"].versions[0][0]
    assert seal(model, spec(azure, version=first), tmp_path / "out") == 0
    old = tmp_path / "old.pub.pem"
    old.write_bytes(azure.public_pem("release-signing", first))
    verifying.Config().use_elliptic_key_verifier(public_key=old).verify(model, tmp_path / "out" / "model.sig")
    assert main(["verify", str(model), "--signature", str(tmp_path / "out" / "model.sig"),
                 "--public-key", str(vault_key[1])]) == 1  # the latest version is another key


@pytest.mark.parametrize(("status", "needle"), [
    (403, "may not sign with Key Vault key"),
    (429, "kept throttling the request to sign with"),
    (500, "answered HTTP 500 to sign with"),
    (503, "answered HTTP 503 to sign with"),
])
def test_key_vault_failure_while_signing_is_exit_3_and_writes_nothing(
        azure: FakeAzure, vault_key: tuple[str, Path], model: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, status: int, needle: str) -> None:
    monkeypatch.setattr("mlgate.secrets.keyvault.RETRIES", 1)
    azure.sign_status = status
    azure.retry_after = "0"
    out = tmp_path / "out"
    assert seal(model, vault_key[0], out) == 3
    err = capsys.readouterr().err
    assert needle in err and "nothing was signed" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_missing_key_and_p384_key_are_configuration_errors(azure: FakeAzure, vault_key: tuple[str, Path],
                                                           model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert seal(model, spec(azure, "no-such-key"), tmp_path / "a") == 2
    assert "Key Vault key" in capsys.readouterr().err
    azure.add_key("p384-key", curve="P-384")
    assert seal(model, spec(azure, "p384-key"), tmp_path / "b") == 2
    assert "expected an ECDSA P-256 key, found curve P-384" in capsys.readouterr().err
    assert [list(p.iterdir()) for p in (tmp_path / "a", tmp_path / "b")] == [[], []]


def test_identity_without_get_permission(azure: FakeAzure, vault_key: tuple[str, Path], model: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    azure.system_identity.key_permissions = {"sign"}
    assert seal(model, vault_key[0], tmp_path / "out") == 3
    err = capsys.readouterr().err
    assert "may not read Key Vault key" in err and "Key Vault Crypto User" in err


def test_vault_answer_out_of_shape_is_refused(azure: FakeAzure, vault_key: tuple[str, Path], model: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.secrets.fake_azure import Raw

    kid = f"{azure.vault_url}/keys/release-signing/{azure.keys['release-signing'].versions[-1][0]}"
    body = json.dumps({"kid": kid, "value": "AAAA"}).encode()
    azure.hostile = lambda hit: Raw(200, body) if hit.path.endswith("/sign") else None
    assert seal(model, vault_key[0], tmp_path / "out") == 3
    assert "not the 64 of an ES256 R||S signature" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_no_key_material_or_token_in_any_output(azure: FakeAzure, ca_bundle: tuple[Path, Path], model: Path,
                                                tmp_path: Path) -> None:
    """A real `mlgate seal --sign azure-keyvault://...` process, success and failure: no token, header or key bytes."""
    azure.add_key("release-signing")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MLGATE_"))}
    env.update(managed_env(azure), REQUESTS_CA_BUNDLE=str(ca_bundle[0]), PYTHONPATH=os.pathsep.join(sys.path))
    outputs = []
    for status in (None, 403, 500):
        azure.sign_status = status
        run = subprocess.run([sys.executable, "-m", "mlgate", "-vv", "seal", str(model), "-o",
                              str(tmp_path / f"m{status}.json"), "--sign", spec(azure)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert run.returncode == (0 if status is None else 3), run.stderr
        outputs.append(run.stdout + run.stderr)
    written = "".join(p.read_text() for p in tmp_path.glob("*.json")) + "".join(
        p.read_text() for p in tmp_path.glob("*.sig"))
    private = azure.keys["release-signing"].versions[-1][1].private_numbers().private_value
    canaries = [azure.identity_header, *azure.access_tokens, str(private), hex(private)[2:]]
    for text in [*outputs, written]:
        for canary in canaries:
            assert canary not in text


KID = "{vault}/keys/release-signing/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("answer", "needle"), [
    ({"key": {"kid": KID, "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "key_ops": ["sign"]}},
     "expected two 32-byte coordinates"),
    ({"key": {"kid": KID, "crv": "P-256", "x": "AAAA", "y": "AAAA"}}, "field key.kty: expected a string"),
    ({"key": "not an object"}, "field key: expected an object"),
    ({"key": {"kid": KID, "kty": "RSA", "n": "AQAB", "e": "AQAB", "key_ops": ["sign"]}},
     "expected an EC key on P-256, found key type RSA"),
    ({"key": {"kid": "k", "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "key_ops": ["sign"]}},
     "field key.kid: expected the identifier of a version of key 'release-signing'"),
    ({"key": {"kid": "https://evil.example/keys/release-signing/0123abcd", "kty": "EC"}},
     "field key.kid: expected the identifier of a version of key 'release-signing'"),
])
def test_key_answers_out_of_shape(azure: FakeAzure, vault_key: tuple[str, Path], model: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], answer: dict[str, object], needle: str) -> None:
    from tests.integration.secrets.fake_azure import Raw

    body = json.dumps(answer).encode().replace(b"{vault}", azure.vault_url.encode())
    azure.hostile = lambda hit: Raw(200, body) if hit.method == "GET" and "/keys/" in hit.path and \
        hit.headers.get("authorization") else None
    code = seal(model, vault_key[0], tmp_path / "out")
    err = capsys.readouterr().err
    assert code in (2, 3) and needle in err and "Traceback" not in err, err
    assert list((tmp_path / "out").iterdir()) == []
    assert not any(h.path.endswith("/sign") for h in azure.hits)
