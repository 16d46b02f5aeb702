"""`Ledger.append` holds the algorithm; a back-end is a snapshot and an append-if-unchanged primitive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlgate.errors import NetworkError
from mlgate.ledger import SCHEMES, Draft, Ledger, LedgerUnavailable, TamperedError
from mlgate.ledger.base import Conflict, Snapshot


class MemoryLedger(Ledger):
    """A whole back-end in a few lines: what a new store (S3 If-Match, a SQL table) has to write."""

    def __init__(self, conflicts: int = 0) -> None:
        self.data = b""
        self.conflicts = conflicts
        self.snapshots = 0
        self.location = "memory:test"

    def lines(self) -> Iterator[bytes]:
        yield from self.data.splitlines(keepends=True)

    def exists(self) -> bool:
        return bool(self.data)

    def snapshot(self, *, whole: bool) -> Snapshot:
        self.snapshots += 1
        lines = list(self.lines())
        return Snapshot(lines if whole else lines[-1:], len(self.data), whole=whole)

    def append_if_unchanged(self, line: bytes, snapshot: Snapshot) -> None:
        if self.conflicts:  # another writer got in first
            self.conflicts -= 1
            raise Conflict
        if len(self.data) != snapshot.size:
            raise Conflict
        self.data += line


def draft(i: int, key: str | None = None) -> Draft:
    return Draft(event="approved", model=f"models:/m/{i}", approvers=[{"name": "Ana"}], key=key)


def test_chains_and_retries_on_conflict() -> None:
    ledger = MemoryLedger(conflicts=3)
    for i in range(1, 4):
        entry, created = ledger.append(draft(i))
        assert created and entry.seq == i
    assert ledger.snapshots == 6  # three conflicts, each re-read
    assert ledger.verify().entries == 3
    assert [a.name for a in next(ledger.entries()).approvers] == ["Ana"]


def test_an_idempotency_key_reads_the_whole_ledger_and_adds_nothing_twice() -> None:
    ledger = MemoryLedger()
    first, _ = ledger.append(draft(1, key="run-1"))
    ledger.append(draft(2))
    again, created = ledger.append(draft(1, key="run-1"))
    assert not created and again == first and ledger.verify().entries == 2


def test_gives_up_after_bounded_conflicts(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlgate.ledger.base as base

    monkeypatch.setattr(base._time, "sleep", lambda seconds: None)
    with pytest.raises(LedgerUnavailable, match="after 40 conflicting writers"):
        MemoryLedger(conflicts=1000).append(draft(1))


def test_a_torn_tail_is_never_appended_to() -> None:
    ledger = MemoryLedger()
    ledger.append(draft(1))
    ledger.data = ledger.data[:-5]
    with pytest.raises(TamperedError, match="the last line: incomplete last line"):
        ledger.append(draft(2))


def test_a_draft_with_a_wrong_typed_approver_is_refused() -> None:
    with pytest.raises(ValueError, match=r"field approvers\[0\]\.name"):
        Draft(event="approved", approvers=[{"name": 3}])


def test_schemes_are_a_registry() -> None:
    assert {"file", "azure-blob", "https", "http"} <= set(SCHEMES)


def test_anchor_paging_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import responses

    import mlgate.lineage.mlflow as mlflow
    from mlgate.ledger import anchors

    pages = iter(range(10_000))
    monkeypatch.setattr(mlflow, "MAX_PAGES", 5)
    with responses.RequestsMock() as mock:
        mock.add_callback(
            "GET", "http://mlflow.test/api/2.0/mlflow/model-versions/search",
            callback=lambda request: (200, {}, f'{{"model_versions": [], "next_page_token": "t{next(pages)}"}}'),
        )
        with pytest.raises(NetworkError, match="past 5 pages"):
            anchors.search(mlflow.MlflowClient("http://mlflow.test"), "q")
