"""`mlgate gate --sign` then `mlgate record --evidence-key` against a real MLflow server.

The gate writes evidence.dsse.json beside evidence.json; record verifies it with the gate's public
key and refuses (exit 1) evidence altered after signing, a signature by another key, a truncated
envelope and a missing one. The ledger entries of both steps are signed with the ledger key.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.evidence.pack import DIGEST_KEY, digest
from tests.unit.ledger.test_signed_ledger import CANARY, UnavailableSigner, keypair

from .conftest import build_model, write_tree

pytestmark = pytest.mark.integration


@pytest.fixture
def gated(tracking: str, policy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    built = build_model(tracking, tmp_path / "src", f"signed-{uuid.uuid4().hex[:8]}")
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    gate_key, gate_public = keypair(tmp_path, "gate")
    ledger_key, ledger_public = keypair(tmp_path, "ledger")
    ledger = f"file:{tmp_path / 'ledger.jsonl'}"
    art = write_tree(tmp_path / "artifacts", built.files)
    code = main(["gate", built.ref, "--artifacts", str(art), "--policy", str(policy_file), "--evidence-dir",
                 "evidence", "--platform", "local", "--stage", "production", "--sign", str(gate_key),
                 "--ledger", ledger, "--ledger-key", str(ledger_key)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "evidence signature: evidence/evidence.dsse.json (signed by PEM key" in printed
    return {"ref": built.ref, "gate_public": gate_public, "ledger": ledger, "ledger_key": ledger_key,
            "ledger_public": ledger_public, "tmp": tmp_path}


def record(g: dict[str, object], *extra: str) -> int:
    return main(["record", str(g["ref"]), "--platform", "local", "--ledger", str(g["ledger"]),
                 "--ledger-key", str(g["ledger_key"]), "--evidence-key", str(g["gate_public"]),
                 "--approver", "Ana Approver", "--approver", "Bo Reviewer", "--comment", "reviewed", *extra])


def test_signed_evidence_is_recorded_and_both_entries_are_signed(gated: dict[str, object],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    statement = json.loads(Path("evidence/evidence.dsse.json").read_text())
    assert statement["payloadType"] == "application/vnd.in-toto+json"
    assert record(gated) == 0, capsys.readouterr().err
    assert main(["audit", "verify", "--ledger", str(gated["ledger"]), "--public-key",
                 str(gated["ledger_public"])]) == 0
    out = capsys.readouterr().out
    assert "2 signed entries from seq 1" in out  # gated + approved
    lines = [json.loads(x) for x in Path(str(gated["tmp"]), "ledger.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines] == ["gated", "approved"]
    assert lines[0]["details"]["evidence_signed_by"] == lines[1]["details"]["evidence_signed_by"]


def test_evidence_altered_after_signing_is_refused(gated: dict[str, object],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = Path("evidence/evidence.json")
    doc = json.loads(path.read_text())
    doc["requirements"]["approvals"]["min_approvers"] = 1  # loosen, then re-digest so the pack is self-consistent
    doc[DIGEST_KEY] = digest(doc)
    path.write_text(json.dumps(doc))
    assert record(gated) == 1
    err = capsys.readouterr().err
    assert "evidence/evidence.json is not the evidence that was signed" in err


def test_signature_by_another_key_truncated_or_missing_is_refused(gated: dict[str, object],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, other_public = keypair(Path(str(gated["tmp"])), "other")
    assert main(["record", str(gated["ref"]), "--platform", "local", "--ledger", str(gated["ledger"]),
                 "--evidence-key", str(other_public), "--approver", "Ana", "--approver", "Bo",
                 "--comment", "x"]) == 1
    assert "does not verify" in capsys.readouterr().err
    envelope = Path("evidence/evidence.dsse.json")
    data = envelope.read_bytes()
    envelope.write_bytes(data[: len(data) // 3])
    assert record(gated) == 1
    assert "evidence/evidence.dsse.json" in capsys.readouterr().err
    shutil.move(str(envelope), "elsewhere.json")
    assert record(gated) == 1
    assert "found no signature at evidence/evidence.dsse.json" in capsys.readouterr().err
    assert record(gated, "--evidence-signature", "elsewhere.json") == 1  # still the truncated one
    assert record(gated, "--evidence-signature", "elsewhere.json", "--evidence-key", "") == 2  # needs a key


def test_unsigned_gate_removes_a_stale_signature_and_a_failed_key_writes_nothing(
        gated: dict[str, object], policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(gated["ref"]), "--policy", str(policy_file), "--evidence-dir", "evidence",
                 "--platform", "local", "--stage", "production"]) == 0
    assert not Path("evidence/evidence.dsse.json").exists()
    bogus = Path("bogus.pem")
    bogus.write_text(f"-----BEGIN EC PRIVATE KEY-----\n{CANARY}\n-----END EC PRIVATE KEY-----\n")
    shutil.rmtree("evidence")
    assert main(["gate", str(gated["ref"]), "--policy", str(policy_file), "--evidence-dir", "evidence",
                 "--platform", "local", "--sign", str(bogus)]) == 2
    streams = capsys.readouterr()
    assert CANARY not in streams.out + streams.err
    assert not Path("evidence").exists()


def test_a_signing_failure_writes_no_evidence_and_exits_3(gated: dict[str, object], policy_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from mlgate.signing import keys

    real = keys.load_signer
    monkeypatch.setattr(keys, "load_signer", lambda spec, **options: UnavailableSigner(real(spec)))
    shutil.rmtree("evidence")
    gate_key = Path(str(gated["tmp"])) / "gate.pem"
    assert main(["gate", str(gated["ref"]), "--policy", str(policy_file), "--evidence-dir", "evidence",
                 "--platform", "local", "--stage", "production", "--sign", str(gate_key)]) == 3
    assert "503" in capsys.readouterr().err
    assert not Path("evidence").exists()
