"""A file larger than one range is read as parallel ranges (Azurite, moto) and hashed as the whole file.

The range size is made small (64 KiB) so that a 1 MiB file takes many ranges; the tests count
the range requests and the most in flight at once, compare the digest with hashlib's of the bytes
written, catch one changed byte, and refuse a file rewritten between two of its ranges.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from mlgate.stores import ranges
from mlgate.stores.interface import ArtifactStore, StoreError
from tests.integration.ledger.conftest import Azurite, azurite  # noqa: F401  (the session's emulator)
from tests.integration.stores.conftest import CONTAINER, moto_s3

RANGE = 64 << 10
WINDOW = 3
SIZE = (1 << 20) + 12_345  # 17 ranges, the last one short


@dataclass
class Counted:
    """The ranges fetched after the first request, and the most fetched at the same time."""

    calls: list[tuple[int, int]] = field(default_factory=list)
    busy: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    seen = Counted()
    original = ranges.rest_in_ranges

    def counting(name: str, first: int, size: int, fetch: ranges.Fetch, **kwargs: int | None) -> Iterator[bytes]:
        def one(offset: int, length: int) -> bytes:
            with seen.lock:
                seen.calls.append((offset, length))
                seen.busy += 1
                seen.peak = max(seen.peak, seen.busy)
            try:
                return fetch(offset, length)
            finally:
                with seen.lock:
                    seen.busy -= 1

        return original(name, first, size, one, **kwargs)

    import mlgate.stores.s3

    monkeypatch.setattr(ranges, "RANGE", RANGE)
    monkeypatch.setattr(mlgate.stores.s3, "RANGE", RANGE)
    monkeypatch.setattr(ranges, "WINDOW", WINDOW)
    monkeypatch.setattr(ranges, "rest_in_ranges", counting)
    return seen


@dataclass(frozen=True)
class Raw:
    store: ArtifactStore
    put: Callable[[str, bytes], None]  # key relative to the store's location


@pytest.fixture(params=["blob", "s3"])
def raw(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Raw]:
    if request.param == "blob":
        from azure.storage.blob import ContainerClient

        from mlgate.stores.azure_blob import open_blob_store

        emulator: Azurite = request.getfixturevalue("azurite")
        container = ContainerClient.from_connection_string(emulator.connection_string, "ranges")
        if not container.exists():
            container.create_container()
        store = open_blob_store("wasbs://ranges@devstoreaccount1.blob.core.windows.net/model",
                                {"AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string})
        yield Raw(store, lambda key, data: container.upload_blob(f"model/{key}", data, overwrite=True) and None)
        return
    from mlgate.stores.s3 import open_s3_store

    with moto_s3() as (env, s3):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        store = open_s3_store(f"s3://{CONTAINER}/model", env)
        yield Raw(store, lambda key, data: s3.put_object(Bucket=CONTAINER, Key=f"model/{key}", Body=data) and None)


def _digest(chunks: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def test_a_large_file_is_read_as_bounded_parallel_ranges_and_hashed_whole(raw: Raw, counted: Counted) -> None:
    data = os.urandom(SIZE)
    raw.put("weights.bin", data)
    assert _digest(raw.store.open("weights.bin")) == hashlib.sha256(data).hexdigest()
    expected = [(o, min(RANGE, SIZE - o)) for o in range(RANGE, SIZE, RANGE)]
    assert sorted(counted.calls) == expected  # every range after the first, each once, the last one short
    assert 1 < counted.peak <= WINDOW  # parallel, and never more than the window


def test_one_changed_byte_in_a_late_range_changes_the_digest(raw: Raw, counted: Counted) -> None:
    data = bytearray(os.urandom(SIZE))
    raw.put("weights.bin", bytes(data))
    sealed = _digest(raw.store.open("weights.bin"))
    data[SIZE - 7] ^= 0x01  # in the last, short range
    raw.put("weights.bin", bytes(data))
    assert _digest(raw.store.open("weights.bin")) != sealed
    assert _digest(raw.store.open("weights.bin")) == hashlib.sha256(data).hexdigest()


def test_a_file_rewritten_between_its_ranges_is_refused(raw: Raw, counted: Counted) -> None:
    raw.put("weights.bin", os.urandom(SIZE))
    chunks = raw.store.open("weights.bin")
    next(chunks)  # the first range; the others are asked for only from here on
    raw.put("weights.bin", os.urandom(SIZE))  # same size, another version
    with pytest.raises(StoreError, match="changed while it was read"):
        _digest(chunks)


def test_small_and_empty_files_take_one_request(raw: Raw, counted: Counted) -> None:
    raw.put("empty", b"")
    raw.put("small", b"x" * 1000)
    assert b"".join(raw.store.open("empty")) == b""
    assert b"".join(raw.store.open("small")) == b"x" * 1000
    assert counted.calls == []
