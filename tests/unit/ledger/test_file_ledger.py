"""The file ledger: chaining, streaming verification, tamper detection, idempotency, export."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.ledger import Draft, TamperedError, open_ledger
from mlgate.ledger.base import GENESIS, entry_hash, verify_lines
from mlgate.ledger.export import export_ledger, verify_file
from mlgate.ledger.file import FileLedger


def draft(i: int, *, key: str | None = None) -> Draft:
    return Draft(
        event="approved",
        model=f"models:/fraud/{i}",
        stage="production",
        actor="ci-bot",
        approvers=[
            {
                "name": "Ana Müller",
                "id": "u1",
                "comment": f"ok {i} ✓",
                "time": "2026-01-01T00:00:00Z",
                "source": "local",
            }
        ],
        evidence_sha256="ab" * 32,
        run_url=f"https://ci.example/run/{i}",
        key=key,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> FileLedger:
    led = FileLedger(tmp_path / "ledger.jsonl")
    for i in range(1, 6):
        led.append(draft(i))
    return led


def test_entries_are_chained_and_hashed(ledger: FileLedger) -> None:
    entries = list(ledger.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev == before.hash
    for e in entries:
        assert e.hash == entry_hash(e.data)
    result = ledger.verify()
    assert result.entries == 5
    assert result.head is not None and result.head.hash == entries[-1].hash


def test_each_line_is_canonical_json(ledger: FileLedger) -> None:
    for raw in ledger.path.read_bytes().splitlines(keepends=True):
        data = json.loads(raw)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert raw == canonical.encode() + b"\n"
        assert {
            "seq",
            "prev",
            "time",
            "event",
            "model",
            "actor",
            "approvers",
            "evidence_sha256",
            "run_url",
            "hash",
        } <= set(data)


def test_every_one_byte_change_is_detected(ledger: FileLedger) -> None:
    original = ledger.path.read_bytes()
    assert verify_lines(original.splitlines(keepends=True)).entries == 5
    for position in range(len(original)):
        other = ord("0") if original[position] != ord("0") else ord("1")
        for replacement in {original[position] ^ 0x01, other}:
            mutated = bytearray(original)
            mutated[position] = replacement
            with pytest.raises(TamperedError):
                verify_lines(bytes(mutated).splitlines(keepends=True))


def test_deleted_byte_inserted_byte_and_swapped_lines_detected(ledger: FileLedger) -> None:
    original = ledger.path.read_bytes()
    lines = original.splitlines(keepends=True)
    for position in range(0, len(original), 7):
        with pytest.raises(TamperedError):
            verify_lines((original[:position] + original[position + 1 :]).splitlines(keepends=True))
        with pytest.raises(TamperedError):
            verify_lines((original[:position] + b" " + original[position:]).splitlines(keepends=True))
    with pytest.raises(TamperedError, match="line 2"):
        verify_lines([lines[0], lines[2], lines[1], *lines[3:]])
    with pytest.raises(TamperedError, match="line 3"):
        verify_lines([*lines[:2], *lines[3:]])


def test_first_bad_entry_is_named_on_the_cli(ledger: FileLedger, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"ok 3", b"OK 3")
    ledger.path.write_bytes(b"".join(lines))
    code = main(["audit", "verify", "--ledger", f"file:{ledger.path}", "--no-anchors"])
    captured = capsys.readouterr()
    assert code == 1
    assert "line 3 (seq 3)" in captured.err
    assert "Traceback" not in captured.err


def test_verify_ok_on_the_cli(ledger: FileLedger, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--ledger", f"file:{ledger.path}", "--no-anchors"]) == 0
    assert "5 entries, chain intact" in capsys.readouterr().out


def test_missing_ledger_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--ledger", f"file:{tmp_path / 'nope.jsonl'}", "--no-anchors"]) == 2
    assert "no ledger at" in capsys.readouterr().err


def test_rewritten_chain_is_caught_by_anchors(ledger: FileLedger) -> None:
    entries = list(ledger.entries())
    anchors = {3: [("models:/fraud/3", entries[2].hash)]}
    assert ledger.verify(anchors=anchors).anchors_checked == 1
    # rewrite entry 3 and re-chain everything after it: the chain verifies, the anchor does not
    rewritten = FileLedger(ledger.path.with_name("rewritten.jsonl"))
    for e in entries:
        d = dict(e.data)
        d_draft = Draft(
            event=d["event"],
            model=d["model"],
            stage=d["stage"],
            actor=d["actor"],
            approvers=d["approvers"] if e.seq != 3 else [],
            evidence_sha256=d["evidence_sha256"],
            run_url=d["run_url"],
            key=d["key"],
        )
        rewritten.append(d_draft)
    assert rewritten.verify().entries == 5
    with pytest.raises(TamperedError, match=r"seq 3.*anchor on models:/fraud/3"):
        rewritten.verify(anchors=anchors)
    # truncation below an anchor
    with pytest.raises(TamperedError, match="entries were removed"):
        verify_lines(ledger.path.read_bytes().splitlines(keepends=True)[:2], anchors=anchors)


def test_same_key_is_recorded_once(tmp_path: Path) -> None:
    led = FileLedger(tmp_path / "l.jsonl")
    first, created = led.append(draft(1, key="github:run/42:approved:fraud/1:production"))
    assert created
    again, created_again = led.append(draft(1, key="github:run/42:approved:fraud/1:production"))
    assert not created_again
    assert again.hash == first.hash
    led.append(draft(2, key="github:run/43:approved:fraud/2:production"))
    assert led.verify().entries == 2


def test_torn_tail_refuses_to_append(tmp_path: Path) -> None:
    led = FileLedger(tmp_path / "l.jsonl")
    led.append(draft(1))
    with led.path.open("ab") as stream:
        stream.write(b'{"seq":2')
    with pytest.raises(TamperedError, match="incomplete last line"):
        led.append(draft(2))


def _worker(path: str, start: int) -> None:
    led = FileLedger(path)
    for i in range(start, start + 15):
        led.append(draft(i))


def test_concurrent_processes_neither_lose_nor_fork(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.jsonl")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path, n * 100)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    result = FileLedger(path).verify()
    assert result.entries == 45
    models = {e.model for e in FileLedger(path).entries()}
    assert len(models) == 45


def test_export_then_verify_offline(
    ledger: FileLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export" / "audit.jsonl"
    entries = list(ledger.entries())
    export_ledger(ledger, str(out), anchors={2: [("models:/fraud/2", entries[1].hash)]})
    result, header = verify_file(str(out))
    assert result.entries == 5 and header is not None and header.entries == 5
    assert result.anchors_checked == 1
    assert main(["audit", "verify", "--file", str(out)]) == 0
    assert "1 anchor(s) checked" in capsys.readouterr().out

    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]))  # drop the last entry: the header no longer agrees
    assert main(["audit", "verify", "--file", str(out)]) == 1
    assert "entries were removed or added" in capsys.readouterr().err

    tampered = lines.copy()
    tampered[3] = tampered[3].replace(b"ok 3", b"ok 9")
    out.write_bytes(b"".join(tampered))
    assert main(["audit", "verify", "--file", str(out)]) == 1
    assert "line 4 (seq 3)" in capsys.readouterr().err


def test_export_via_cli_and_refuses_a_tampered_ledger(
    ledger: FileLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit-export.jsonl"
    assert main(["audit", "export", "--ledger", str(ledger.path), "-o", str(out), "--no-anchors"]) == 0
    assert verify_file(str(out))[0].entries == 5
    data = ledger.path.read_bytes()
    ledger.path.write_bytes(data.replace(b"ci-bot", b"ci-bad", 1))
    out2 = tmp_path / "second.jsonl"
    assert main(["audit", "export", "--ledger", str(ledger.path), "-o", str(out2), "--no-anchors"]) == 1
    assert not out2.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".second")]


def test_plain_ledger_copy_verifies_with_file(ledger: FileLedger) -> None:
    result, header = verify_file(str(ledger.path))
    assert header is None and result.entries == 5


def test_ledger_spec_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.ledger import parse_azure_blob

    monkeypatch.chdir(tmp_path)
    led = open_ledger(None)
    assert isinstance(led, FileLedger) and led.path == Path(".mlgate/ledger.jsonl")
    assert isinstance(open_ledger("file:x/y.jsonl"), FileLedger)
    assert parse_azure_blob("azure-blob://acct.blob.core.windows.net/audit/ledger.jsonl") == (
        "https://acct.blob.core.windows.net",
        "audit",
        "ledger.jsonl",
    )
    assert parse_azure_blob("azure-blob://http://127.0.0.1:10000/devstoreaccount1/c/b.jsonl") == (
        "http://127.0.0.1:10000/devstoreaccount1",
        "c",
        "b.jsonl",
    )
    from mlgate.ledger.azure_blob import AzureBlobLedger

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    blob = open_ledger("https://acct.blob.core.windows.net/audit/ledger.jsonl")
    assert isinstance(blob, AzureBlobLedger)
    assert blob.location == "azure-blob://https://acct.blob.core.windows.net/audit/ledger.jsonl"
    from mlgate.errors import UsageError

    for bad in ("azure-blob://acct.blob.core.windows.net/onlycontainer", "s3://bucket/x"):
        with pytest.raises(UsageError):
            open_ledger(bad)
    sas = "https://acct.blob.core.windows.net/c/b.jsonl?sv=2024&sig=SECRETSIGNATURE"
    with pytest.raises(UsageError) as info:
        open_ledger(sas)
    assert "SECRETSIGNATURE" not in info.value.diagnostics()


def test_mlgate_ledger_environment_default(
    ledger: FileLedger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLGATE_LEDGER", f"file:{ledger.path}")
    assert main(["audit", "verify", "--no-anchors"]) == 0
    assert f"file:{ledger.path.resolve()} verified: 5 entries" in capsys.readouterr().out
