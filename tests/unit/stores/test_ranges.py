"""rest_in_ranges: in order whatever order the ranges arrive in, bounded, a short range refused, early stop."""

from __future__ import annotations

import random
import threading
import time

import pytest

from mlgate.errors import NetworkError
from mlgate.stores.ranges import rest_in_ranges

DATA = bytes(random.Random(7).randrange(256) for _ in range(10_000))


def test_ranges_arriving_out_of_order_are_yielded_in_order() -> None:
    def fetch(offset: int, length: int) -> bytes:
        time.sleep(random.random() / 200)  # later ranges often finish first
        return DATA[offset:offset + length]

    chunks = list(rest_in_ranges("f", 100, len(DATA), fetch, range_size=333, window=4))
    assert b"".join(chunks) == DATA[100:]
    assert [len(c) for c in chunks[:-1]] == [333] * (len(chunks) - 1)


def test_no_more_than_the_window_is_in_flight() -> None:
    lock, busy, peak = threading.Lock(), [0], [0]

    def fetch(offset: int, length: int) -> bytes:
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.005)
        with lock:
            busy[0] -= 1
        return DATA[offset:offset + length]

    for _ in rest_in_ranges("f", 0, len(DATA), fetch, range_size=500, window=3):
        time.sleep(0.002)
    assert 1 < peak[0] <= 3


def test_a_short_range_is_an_error_naming_the_file_and_bytes() -> None:
    def fetch(offset: int, length: int) -> bytes:
        return DATA[offset:offset + length - (1 if offset == 2000 else 0)]

    with pytest.raises(NetworkError, match=r"reading model/w\.bin: bytes 2000-2999 came back as 999 bytes"):
        list(rest_in_ranges("model/w.bin", 0, len(DATA), fetch, range_size=1000, window=2))


def test_a_consumer_that_stops_early_leaves_no_range_running() -> None:
    asked: list[int] = []

    def fetch(offset: int, length: int) -> bytes:
        asked.append(offset)
        return DATA[offset:offset + length]

    chunks = rest_in_ranges("f", 0, len(DATA), fetch, range_size=100, window=2)
    next(chunks)
    chunks.close()
    done = len(asked)
    time.sleep(0.05)
    assert len(asked) == done <= 3  # nothing fetched after the stop; never the whole file


def test_nothing_left_asks_for_nothing() -> None:
    assert list(rest_in_ranges("f", 10, 10, lambda o, n: b"", range_size=4)) == []


def test_files_read_at_once_share_the_range_budget_and_all_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlgate.stores import ranges

    lock, busy, peak = threading.Lock(), [0], [0]

    def fetch(offset: int, length: int) -> bytes:
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.002)
        with lock:
            busy[0] -= 1
        return DATA[offset:offset + length]

    def read(_: int) -> bytes:
        return b"".join(rest_in_ranges("f", 0, len(DATA), fetch, range_size=250, window=4))

    monkeypatch.setattr(ranges, "SLOT_WAIT", 5.0)
    ranges.set_budget(3)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(read, range(4))) == [DATA] * 4  # four files at once, none starved
        assert 1 < peak[0] <= 3  # never more ranges in flight than the shared budget
        ranges.set_budget(2)
        abandoned = rest_in_ranges("f", 0, len(DATA), fetch, range_size=250, window=2)
        next(abandoned)  # holds both slots
        abandoned.close()  # and gives them back
        assert read(0) == DATA
    finally:
        ranges.set_budget(ranges.BUDGET)


def test_a_file_that_never_gets_a_slot_fails_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.stores import ranges

    monkeypatch.setattr(ranges, "SLOT_WAIT", 0.2)
    ranges.set_budget(1)
    try:
        holder = rest_in_ranges("a", 0, len(DATA), lambda o, n: DATA[o:o + n], range_size=100, window=1)
        next(holder)  # "a" holds the only slot while its consumer stalls
        with pytest.raises(NetworkError, match=r"no range slot came free within 0\.2 s"):
            list(rest_in_ranges("b", 0, len(DATA), lambda o, n: DATA[o:o + n], range_size=100))
        holder.close()
    finally:
        ranges.set_budget(ranges.BUDGET)
