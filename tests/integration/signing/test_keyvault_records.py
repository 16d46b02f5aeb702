"""Evidence and ledger entries signed with a Key Vault key (real azure-keyvault-keys and azure-identity).

The loopback Key Vault holds the private key; mlgate asks it to sign each ledger entry and the
evidence statement, and verifies with the key's public JWK from the vault or its PEM. A vault that
fails while a ledger entry is being signed leaves the ledger as it was (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.errors import EXIT_UNEVALUATED, Error
from mlgate.evidence import attestation
from mlgate.governed.evidence import check_signed
from mlgate.ledger import Draft, open_ledger
from mlgate.signing.keys import SignatureInvalid, load_public_key, load_signer
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import apply, managed_env
from tests.unit.evidence.test_signed_evidence import evidence

pytestmark = pytest.mark.integration


@pytest.fixture
def vault_key(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, Path]:
    apply(monkeypatch, managed_env(azure))
    azure.add_key("ledger-signing")
    public = tmp_path / "kv.pub.pem"
    public.write_bytes(azure.public_pem("ledger-signing"))
    return f"azure-keyvault://{azure.vault_url.removeprefix('https://')}/keys/ledger-signing", public


def append(path: Path, key: str, i: int) -> None:
    open_ledger(f"file:{path}", sign=key).append(Draft(event="approved", model=f"models:/m/{i}", key=f"k{i}",
                                                       approvers=[{"name": "Ana"}]))


def test_ledger_signed_in_the_vault_verifies_with_its_jwk_and_its_pem(
        azure: FakeAzure, vault_key: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, public = vault_key
    path = tmp_path / "ledger.jsonl"
    for i in (1, 2):
        append(path, key, i)
    signs = [h for h in azure.hits if h.server == "vault" and h.path.endswith("/sign")]
    assert len(signs) == 2 and all(json.loads(h.body)["alg"] == "ES256" for h in signs)
    for trusted in (key, str(public)):
        assert main(["audit", "verify", "--no-anchors", "--ledger", f"file:{path}", "--public-key", trusted]) == 0
    out = capsys.readouterr().out
    assert "2 signed entries from seq 1, signed by Key Vault key" in out
    assert f"signed by PEM public key {public}" in out


@pytest.mark.parametrize("status", [403, 429, 503])
def test_vault_failing_while_an_entry_is_signed_appends_nothing(
        azure: FakeAzure, vault_key: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        status: int) -> None:
    monkeypatch.setattr("mlgate.secrets.keyvault.RETRIES", 1)
    path = tmp_path / "ledger.jsonl"
    append(path, vault_key[0], 1)
    before = path.read_bytes()
    azure.sign_status = status
    azure.retry_after = "0"
    with pytest.raises(Error) as caught:
        append(path, vault_key[0], 2)
    assert caught.value.exit_code == EXIT_UNEVALUATED
    assert path.read_bytes() == before


def test_evidence_signed_in_the_vault(azure: FakeAzure, vault_key: tuple[str, Path], tmp_path: Path) -> None:
    key, public = vault_key
    pack = evidence()
    envelope = tmp_path / "evidence.dsse.json"
    envelope.write_bytes(attestation.sign(pack, load_signer(key)))
    for trusted in (load_public_key(key), load_public_key(str(public))):
        check_signed(pack, path="evidence.json", signature=str(envelope), key=trusted)
    azure.add_key("another")
    with pytest.raises(SignatureInvalid, match="does not verify"):
        check_signed(pack, path="evidence.json", signature=str(envelope), key=load_public_key(
            key.replace("ledger-signing", "another")))
