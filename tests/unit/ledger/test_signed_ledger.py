"""Signed ledger entries: every entry the recording identity appends is signed; a rewrite without the key fails.

The attack these tests replay is the one a signature exists for: someone who can write the ledger
store (and MLflow) but has no key rewrites entries, re-hashes the whole chain so it links again,
and hands the result to `mlgate audit verify --public-key`, which must refuse naming the first
entry that was changed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.cli import main
from mlgate.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import Draft, TamperedError, open_ledger
from mlgate.ledger.base import GENESIS, entry_hash, parse_line, verify_lines
from mlgate.ledger.file import FileLedger
from mlgate.ledger.signed import PAYLOAD_TYPE, Trust, signed_message, verify_signed
from mlgate.signing.dsse import pae
from mlgate.signing.keys import Signer, load_public_key

CANARY = "CANARY-PRIVATE-KEY-MATERIAL"


def keypair(directory: Path, name: str = "key") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def record(ledger_path: Path, key: Path | None, count: int, *, start: int = 0) -> None:
    ledger = open_ledger(f"file:{ledger_path}", sign=str(key) if key else None)
    for i in range(start, start + count):
        ledger.append(Draft(event="approved", model=f"models:/m/{i + 1}", stage="production", actor="ci",
                            approvers=[{"name": "Ana Approver", "comment": "ok"}], key=f"k{i}"))


def rechain(lines: list[dict[str, object]]) -> bytes:
    """Re-link and re-hash every entry (what an attacker with write access but no key can do)."""
    out, prev = [], GENESIS
    for entry in lines:
        entry = {k: v for k, v in entry.items() if k != "hash"}
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
        out.append(canonical_json(entry) + b"\n")
    return b"".join(out)


def entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in path.read_bytes().splitlines()]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keypair(tmp_path)


def verify(path: Path, public: Path, *extra: str) -> int:
    return main(["audit", "verify", "--ledger", f"file:{path}", "--no-anchors", "--public-key", str(public), *extra])


def test_signed_entries_verify_and_the_format_is_documented(tmp_path: Path, keys: tuple[Path, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 3)
    trusted = load_public_key(str(keys[1]))
    for raw in path.read_bytes().splitlines(keepends=True):
        entry = parse_line(raw, line=1)
        assert entry.signature is not None
        keyid, sig = entry.signature
        assert keyid == trusted.hint
        body = {k: v for k, v in json.loads(raw).items() if k not in ("hash", "sig")}
        trusted.verify(base64.b64decode(sig), pae(PAYLOAD_TYPE, canonical_json(body)))  # the documented message
        assert signed_message(entry.data) == pae(PAYLOAD_TYPE, canonical_json(body))
        assert entry.hash == entry_hash(json.loads(raw))  # the hash covers the sig too
    assert verify(path, keys[1]) == EXIT_OK
    out = capsys.readouterr().out
    assert "3 signed entries from seq 1" in out and trusted.hint in out
    assert verify_lines(path.read_bytes().splitlines(keepends=True)).entries == 3  # readable without a key


def test_rewritten_and_rehashed_chain_is_refused_naming_the_first_changed_entry(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 5)
    forged = entries(path)
    forged[2]["approvers"] = [{"name": "Mallory", "comment": "ok", "id": None, "time": None, "source": None,
                               "identities": []}]
    path.write_bytes(rechain(forged))
    assert verify_lines(path.read_bytes().splitlines(keepends=True)).entries == 5  # the chain itself links
    assert main(["audit", "verify", "--ledger", f"file:{path}", "--no-anchors"]) == EXIT_OK  # unsigned check: fooled
    capsys.readouterr()
    assert verify(path, keys[1]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "line 3 (seq 3)" in err and "does not verify" in err


def unsigned_append(path: Path, i: int) -> None:
    """An entry appended by a writer without the key, as a bypass of mlgate would write it."""
    last = json.loads(path.read_bytes().splitlines()[-1])
    body = {**{k: v for k, v in last.items() if k not in ("hash", "sig")}, "seq": last["seq"] + 1,
            "prev": last["hash"], "key": f"k{i}", "model": f"models:/m/{i + 1}"}
    body["hash"] = entry_hash(body)
    with path.open("ab") as stream:
        stream.write(canonical_json(body) + b"\n")


def test_stripped_signatures_and_unsigned_entries_after_signing_began_are_refused(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 3)
    stripped = [{k: v for k, v in e.items() if k != "sig"} for e in entries(path)]
    path.write_bytes(rechain(stripped))
    assert verify(path, keys[1]) == EXIT_REFUSED
    assert "line 1 (seq 1): not signed" in capsys.readouterr().err
    # an unsigned writer appending after signing began
    path2 = tmp_path / "ledger2.jsonl"
    record(path2, keys[0], 2)
    unsigned_append(path2, 2)
    assert verify(path2, keys[1]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "line 3 (seq 3): not signed" in err and "signing began at seq 1" in err


def test_old_unsigned_ledger_stays_readable_and_signing_can_begin(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, None, 2)
    assert main(["audit", "verify", "--ledger", f"file:{path}", "--no-anchors"]) == EXIT_OK
    record(path, keys[0], 2, start=2)  # signing begins on an unsigned ledger
    capsys.readouterr()
    assert verify(path, keys[1]) == EXIT_REFUSED  # by default every entry must be signed
    assert "--unsigned-until" in capsys.readouterr().err
    assert verify(path, keys[1], "--unsigned-until", "2") == EXIT_OK
    assert "2 signed entries from seq 3, the 2 before it covered by its signature" in capsys.readouterr().out
    # the unsigned prefix is covered: changing it (and re-hashing) breaks the first signature
    forged = entries(path)
    forged[0]["actor"] = "mallory"
    path.write_bytes(rechain(forged))
    assert verify(path, keys[1], "--unsigned-until", "2") == EXIT_REFUSED
    assert "line 3 (seq 3)" in capsys.readouterr().err


def test_another_key_is_named_expected_and_found(tmp_path: Path, keys: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    other_private, other_public = keypair(tmp_path, "other")
    path = tmp_path / "ledger.jsonl"
    record(path, other_private, 2)
    assert verify(path, keys[1]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "line 1 (seq 1): signed by the key with hint " + load_public_key(str(other_public)).hint in err
    assert "expected PEM public key" in err and load_public_key(str(keys[1])).hint in err


def test_a_writer_never_signs_onto_a_rewritten_chain(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 3)
    forged = entries(path)
    forged[1]["actor"] = "mallory"
    path.write_bytes(rechain(forged))
    before = path.read_bytes()
    with pytest.raises(TamperedError, match=r"will not sign onto the last entry \(seq 3\)"):
        record(path, keys[0], 1, start=3)
    assert path.read_bytes() == before  # nothing appended
    # nor onto an unsigned entry appended after signed ones
    path2 = tmp_path / "ledger2.jsonl"
    record(path2, keys[0], 1)
    unsigned_append(path2, 1)
    with pytest.raises(TamperedError, match="it is not signed, but seq 1 is"):
        record(path2, keys[0], 1, start=2)


def test_mlgate_never_appends_unsigned_onto_a_signed_ledger(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from mlgate.errors import UsageError

    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 1)
    before = path.read_bytes()
    with pytest.raises(UsageError, match=r"is signed \(its last entry, seq 1, by the key with hint"):
        record(path, None, 1, start=1)
    assert path.read_bytes() == before


def test_events_without_a_key_option_sign_with_the_variable(tmp_path: Path, keys: tuple[Path, Path],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from mlgate.governed.events import append_event
    from mlgate.platforms.base import CIContext

    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("MLGATE_LEDGER_KEY", str(keys[0]))
    append_event(f"file:{path}", "sealed", name="m", version="1", ci=CIContext(platform="local"),
                 details={"manifest_sha256": "ab" * 32}, fingerprint="f")
    [entry] = [parse_line(raw, line=1) for raw in path.read_bytes().splitlines(keepends=True)]
    assert entry.signature is not None and entry.signature[0] == load_public_key(str(keys[1])).hint
    assert verify(path, keys[1]) == EXIT_OK


def test_tampered_signature_fields_are_refused(tmp_path: Path, keys: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 2)
    for bad in ({"keyid": 1, "sig": "x"}, "a string", {"keyid": "a", "sig": "b", "extra": 1}):
        forged = entries(path)
        forged[1]["sig"] = bad
        path.write_bytes(rechain(forged))
        assert verify(path, keys[1]) == EXIT_REFUSED
        assert "line 2 (seq 2): field sig" in capsys.readouterr().err
    forged = entries(path)
    forged[1]["sig"] = {"keyid": load_public_key(str(keys[1])).hint, "sig": "not base64!"}
    path.write_bytes(rechain(forged))
    assert verify(path, keys[1]) == EXIT_REFUSED
    assert "not base64" in capsys.readouterr().err


def test_export_checks_signatures_and_the_export_verifies_offline(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, out = tmp_path / "ledger.jsonl", tmp_path / "export.jsonl"
    record(path, keys[0], 3)
    assert main(["audit", "export", "--ledger", f"file:{path}", "--no-anchors", "-o", str(out),
                 "--public-key", str(keys[1])]) == EXIT_OK
    assert main(["audit", "verify", "--file", str(out), "--no-anchors", "--public-key", str(keys[1])]) == EXIT_OK
    lines = out.read_bytes().splitlines(keepends=True)
    header, body = lines[0], [json.loads(x) for x in lines[1:]]
    body[1]["actor"] = "mallory"
    rehashed = rechain(body)
    head = json.loads(header)
    head["head"]["hash"] = json.loads(rehashed.splitlines()[-1])["hash"]
    out.write_bytes(canonical_json(head) + b"\n" + rehashed)
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(out), "--no-anchors", "--public-key", str(keys[1])]) == EXIT_REFUSED
    assert "line 3 (seq 2)" in capsys.readouterr().err  # the file's line (after the header)
    forged = entries(path)
    forged[0]["actor"] = "mallory"
    path.write_bytes(rechain(forged))
    target = tmp_path / "never.jsonl"
    assert main(["audit", "export", "--ledger", f"file:{path}", "--no-anchors", "-o", str(target),
                 "--public-key", str(keys[1])]) == EXIT_REFUSED
    assert not target.exists()


def test_verification_costs_one_signature_and_names_the_first_bad_on_failure(
        tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.signing.keys import PublicKey

    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 6)
    trust = Trust(load_public_key(str(keys[1])))
    calls = []
    original = PublicKey.verify
    monkeypatch.setattr(PublicKey, "verify", lambda self, sig, data: (calls.append(1), original(self, sig, data))[1])
    result = FileLedger(path).verify(trust=trust)
    assert (result.entries, result.signed, result.signed_from, len(calls)) == (6, 6, 1, 1)
    forged = entries(path)
    forged[3]["stage"] = "staging"
    path.write_bytes(rechain(forged))
    with pytest.raises(TamperedError, match=r"line 4 \(seq 4\)"):
        verify_signed(FileLedger(path).lines, trust=trust)


def test_bad_key_options_are_usage_errors_and_never_print_key_material(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 1)
    assert verify(path, keys[0]) == EXIT_USAGE  # a private key where the public one belongs
    bogus = tmp_path / "bogus.pem"
    bogus.write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n")
    assert main(["audit", "verify", "--ledger", f"file:{path}", "--no-anchors", "--public-key", str(bogus)]) \
        == EXIT_USAGE
    with pytest.raises(Exception) as caught:
        record(path, bogus, 1, start=1)
    assert CANARY not in str(caught.value)
    assert main(["audit", "verify", "--ledger", f"file:{path}", "--no-anchors", "--unsigned-until", "x"]) \
        == EXIT_USAGE
    streams = capsys.readouterr()
    assert CANARY not in streams.out + streams.err
    assert private_bytes_absent(keys[0], streams.out + streams.err + path.read_text())


def private_bytes_absent(private: Path, text: str) -> bool:
    body = "".join(private.read_text().splitlines()[1:-1])
    return body[10:50] not in text


class UnavailableSigner:
    """A signer whose key store answers 503 (what a Key Vault outage looks like to the ledger)."""

    def __init__(self, real: Signer) -> None:
        self.real = real

    @property
    def hint(self) -> str:
        return self.real.hint

    @property
    def description(self) -> str:
        return "Key Vault key kv/keys/ledger/1"

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.real.public_key()

    def sign(self, data: bytes) -> bytes:
        from mlgate.signing.keys import SigningError

        raise SigningError("Key Vault kv answered 503 to sign with key ledger", hint="retry later")


def test_a_signing_failure_appends_nothing(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from mlgate.errors import EXIT_UNEVALUATED, Error
    from mlgate.signing.keys import load_signer

    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 1)
    before = path.read_bytes()
    ledger = open_ledger(f"file:{path}")
    ledger.signer = UnavailableSigner(load_signer(str(keys[0])))
    with pytest.raises(Error) as caught:
        ledger.append(Draft(event="approved", model="models:/m/9", key="k9"))
    assert caught.value.exit_code == EXIT_UNEVALUATED and "503" in caught.value.message
    assert path.read_bytes() == before


def test_audit_show_answers_only_from_a_ledger_that_verifies(tmp_path: Path, keys: tuple[Path, Path],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "ledger.jsonl"
    record(path, keys[0], 2)
    forged = entries(path)
    forged[0]["actor"] = "mallory"
    path.write_bytes(rechain(forged))
    code = main(["audit", "show", "models:/m/1", "--ledger", f"file:{path}", "--public-key", str(keys[1])])
    assert code == EXIT_REFUSED
    assert "line 1 (seq 1)" in capsys.readouterr().err
