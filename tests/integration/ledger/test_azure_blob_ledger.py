"""The append-blob ledger against Azurite: chaining, idempotency, tampering, concurrent writers."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest

from mlgate.cli import main
from mlgate.ledger import Draft, TamperedError, open_ledger
from mlgate.ledger.azure_blob import AzureBlobLedger

from .conftest import Azurite

pytestmark = pytest.mark.integration


def draft(i: int, who: str = "w", key: str | None = None) -> Draft:
    return Draft(
        event="approved",
        model=f"models:/m/{i}",
        stage="production",
        actor=who,
        approvers=[{"name": who, "comment": f"entry {i}", "source": "local"}],
        run_url=f"https://ci.example/{who}/{i}",
        key=key,
    )


@pytest.fixture
def spec(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite.spec(f"c{uuid.uuid4().hex[:12]}", "ledger.jsonl")


def test_append_chain_and_verify(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = open_ledger(spec)
    assert isinstance(ledger, AzureBlobLedger)
    assert not ledger.exists()
    for i in range(1, 4):
        entry, created = ledger.append(draft(i))
        assert created and entry.seq == i
    assert ledger.verify().entries == 3
    assert main(["audit", "verify", "--ledger", spec, "--no-anchors"]) == 0
    assert "3 entries, chain intact" in capsys.readouterr().out


def test_same_key_is_not_appended_twice(spec: str) -> None:
    ledger = open_ledger(spec)
    first, _ = ledger.append(draft(1, key="run-1"))
    again, created = ledger.append(draft(1, key="run-1"))
    assert not created and again.hash == first.hash
    assert ledger.verify().entries == 1


def test_tampered_blob_is_detected(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = open_ledger(spec)
    assert isinstance(ledger, AzureBlobLedger)
    for i in range(1, 4):
        ledger.append(draft(i))
    data = ledger.blob.download_blob().readall()
    ledger.blob.delete_blob()
    ledger.blob.create_append_blob()
    ledger.blob.append_block(data.replace(b"entry 2", b"entry 7"))
    with pytest.raises(TamperedError, match="line 2"):
        ledger.verify()
    assert main(["audit", "verify", "--ledger", spec, "--no-anchors"]) == 1
    assert "line 2 (seq 2)" in capsys.readouterr().err


def _recorder(connection: str, spec: str, who: str, count: int, barrier: Any) -> None:
    import os

    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection
    ledger = open_ledger(spec)
    barrier.wait(30)
    for i in range(count):
        ledger.append(draft(i, who))


def test_two_concurrent_recorders_neither_lose_nor_fork(azurite: Azurite, spec: str) -> None:
    open_ledger(spec).append(draft(0, "setup"))  # create the container and blob first
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    count = 12
    procs = [
        ctx.Process(target=_recorder, args=(azurite.connection_string, spec, who, count, barrier))
        for who in ("pipeline-a", "pipeline-b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ledger = open_ledger(spec)
    result = ledger.verify()
    assert result.entries == 1 + 2 * count
    actors = [e.actor for e in ledger.entries()]
    assert actors.count("pipeline-a") == count and actors.count("pipeline-b") == count
    assert len({(e.actor, e.model) for e in ledger.entries()}) == 1 + 2 * count


def test_unreachable_store_is_exit_3_and_key_never_printed(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from .conftest import DEV_KEY, _free_port

    port = _free_port()  # nothing listens here
    dead = Azurite(port)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", dead.connection_string)
    code = main(["audit", "verify", "--ledger", dead.spec("c", "ledger.jsonl"), "--no-anchors"])
    captured = capsys.readouterr()
    assert code == 3
    assert "could not read the ledger" in captured.err
    assert DEV_KEY not in captured.err + captured.out


def test_reads_in_ranges_and_ignores_appends_made_while_reading(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlgate.ledger.azure_blob as module

    ledger = open_ledger(spec)
    for i in range(1, 4):
        ledger.append(draft(i))
    monkeypatch.setattr(module, "_RANGE", 97)  # lines straddle range boundaries
    stream = ledger.lines()
    first = next(stream)
    ledger.append(draft(4))  # a pipeline appends while an auditor reads
    rest = list(stream)
    from mlgate.ledger.base import verify_lines

    assert verify_lines([first, *rest]).entries == 3  # the blob as it was when reading started
    assert ledger.verify().entries == 4
