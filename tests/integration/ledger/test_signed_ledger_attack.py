"""The attack a signed ledger exists for, against a real MLflow and Azurite.

`mlgate record` signs each entry with the recording identity's key. The attacker can write the
ledger store (a file, the Azure append blob) and MLflow, but has no key: they change who approved,
re-hash the whole chain so it links again, and move every `mlgate.ledger.head` tag to the new
hashes. Without a key `audit verify` cannot tell (the chain and the anchors agree); with
`--public-key` it refuses (exit 1) naming the first entry that was changed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import open_ledger
from mlgate.ledger.azure_blob import AzureBlobLedger
from mlgate.ledger.base import GENESIS, entry_hash
from tests.integration.governed.helpers import CI_VARS, Registered, register, write_evidence
from tests.unit.ledger.test_signed_ledger import keypair

from .conftest import Azurite

pytestmark = pytest.mark.integration


def forge(data: bytes) -> tuple[bytes, dict[int, str]]:
    """Every approver replaced by Mallory, the chain re-linked and re-hashed; returns the new hashes by seq."""
    out, prev, hashes = [], GENESIS, {}
    for raw in data.splitlines():
        entry = {k: v for k, v in json.loads(raw).items() if k != "hash"}
        if entry["approvers"]:
            entry["approvers"] = [{**a, "name": "Mallory"} for a in entry["approvers"]]
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
        hashes[entry["seq"]] = prev
        out.append(canonical_json(entry) + b"\n")
    return b"".join(out), hashes


def move_anchors(uri: str, model: Registered, hashes: dict[int, str]) -> None:
    """Point every mlgate.ledger.head tag at the forged entry of the same seq (write access to MLflow)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    for version in model.versions:
        seq = int(client.get_model_version(model.name, version).tags["mlgate.ledger.head"].split(":")[0])
        client.set_model_version_tag(model.name, version, "mlgate.ledger.head", f"{seq}:{hashes[seq]}")


def recorded(uri: str, tmp: Path, spec: str, key: Path) -> Registered:
    model = register(uri, 2)
    for i in range(2):
        write_evidence(tmp / "evidence" / "evidence.json", model.name, model.versions[i])
        assert main(["record", model.ref(i), "--platform", "local", "--ledger", spec, "--ledger-key", str(key),
                     "--approver", "Ana Approver", "--comment", "reviewed"]) == 0
    return model


@pytest.fixture
def world(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in CI_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return tmp_path


def attack(uri: str, spec: str, model: Registered, public: Path, read: Callable[[], bytes],
           write: Callable[[bytes], None], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--ledger", spec, "--public-key", str(public), "--require-anchors"]) == 0
    assert "2 signed entries from seq 1" in capsys.readouterr().out
    forged, hashes = forge(read())
    write(forged)
    move_anchors(uri, model, hashes)
    # without the key the rewrite is consistent: chain intact, both anchors match
    assert main(["audit", "verify", "--ledger", spec, "--require-anchors"]) == 0
    assert "2 anchor(s) on model versions match" in capsys.readouterr().out
    assert main(["audit", "verify", "--ledger", spec, "--public-key", str(public)]) == 1
    err = capsys.readouterr().err
    assert "line 1 (seq 1)" in err and "does not verify" in err
    export = Path("export.jsonl")
    assert main(["audit", "export", "--ledger", spec, "-o", str(export), "--public-key", str(public)]) == 1
    assert not export.exists()
    # and the next legitimate record will not sign onto the forged chain
    assert main(["record", model.ref(1), "--platform", "local", "--ledger", spec,
                 "--ledger-key", str(public.with_name("key.pem")), "--approver", "Ana Approver",
                 "--comment", "again"]) == 1
    assert "will not sign onto the last entry (seq 2)" in capsys.readouterr().err
    assert read() == forged


def test_file_ledger_rewritten_with_mlflow_is_refused(world: Path, mlflow_server: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    private, public = keypair(world)
    path = world / "ledger.jsonl"
    model = recorded(mlflow_server, world, f"file:{path}", private)
    capsys.readouterr()
    attack(mlflow_server, f"file:{path}", model, public, path.read_bytes, path.write_bytes, capsys)


def test_blob_ledger_rewritten_with_mlflow_is_refused(world: Path, mlflow_server: str, azurite: Azurite,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    spec = azurite.spec(f"c{uuid.uuid4().hex[:12]}", "ledger.jsonl")
    private, public = keypair(world)
    model = recorded(mlflow_server, world, spec, private)
    capsys.readouterr()
    ledger = open_ledger(spec)
    assert isinstance(ledger, AzureBlobLedger)

    def read() -> bytes:
        return bytes(ledger.blob.download_blob().readall())

    def write(data: bytes) -> None:  # the store's own API, as someone with write access uses it
        ledger.blob.delete_blob()
        ledger.blob.create_append_blob()
        ledger.blob.append_block(data)

    attack(mlflow_server, spec, model, public, read, write, capsys)
