"""One large object read as parallel byte ranges, handed on in order to one sequential hash.

A back-end reads the first :data:`RANGE` bytes with one request, which also tells the object's
size and version (ETag). When the object is larger, the rest is fetched as ranges of
:data:`RANGE` bytes by up to :data:`WINDOW` threads, each range conditional on that version (so a
file rewritten while it is read fails instead of mixing two versions), and the ranges are yielded
strictly in order: the caller hashes a plain stream of chunks.

Memory stays bounded: a file has at most :data:`WINDOW` ranges in flight, and all the files read
at once share :data:`BUDGET` range slots (a file waits for a slot only when it has none in flight,
so every file keeps moving and none can starve the others), plus the chunk each hashing thread
holds: with 8 hashing threads at most ``(BUDGET + 8) * RANGE`` bytes, however many large files a
model has. Nothing is written to disk. A range shorter than asked is an error (a cut-off transfer
is never hashed as if it were the file).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from mlgate.errors import NetworkError

RANGE = 4 << 20
WINDOW = 4
BUDGET = 8  # range slots shared by every file read at the same time
SLOT_WAIT = 600.0  # seconds a file with no range in flight waits for a slot before failing

Fetch = Callable[[int, int], bytes]  # (offset, length) -> exactly that many bytes
_slots = threading.BoundedSemaphore(BUDGET)


def set_budget(slots: int) -> None:
    """Share ``slots`` range slots between the files read from now on (tests, and a future option)."""
    global _slots
    _slots = threading.BoundedSemaphore(max(1, slots))


def rest_in_ranges(name: str, first: int, size: int, fetch: Fetch, *, range_size: int | None = None,
                   window: int | None = None) -> Iterator[bytes]:
    """Bytes ``first`` to ``size`` of ``name``, fetched as parallel ranges and yielded in order.

    ``fetch(offset, length)`` returns that range (it raises the back-end's own error). Threads start
    when the first chunk is asked for; a consumer that stops early cancels what has not started
    and gives its slots back.
    """
    step = range_size or RANGE
    width = max(1, window or WINDOW)
    if first >= size:
        return
    starts = deque(range(first, size, step))
    slots = _slots

    def one(offset: int) -> bytes:
        length = min(step, size - offset)
        data = fetch(offset, length)
        if len(data) != length:
            raise NetworkError(f"reading {name}: bytes {offset}-{offset + length - 1} came back as "
                               f"{len(data)} bytes", hint="re-run; if it persists, check the artifact store")
        return data

    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="mlgate-range")
    pending: deque[Future[bytes]] = deque()

    def fill() -> None:  # start ranges while this file has room and a shared slot is free
        while starts and len(pending) < width:
            if pending:
                if not slots.acquire(blocking=False):
                    return
            elif not slots.acquire(timeout=SLOT_WAIT):  # with nothing in flight, wait for another file
                raise NetworkError(f"reading {name}: no range slot came free within {SLOT_WAIT:g} s (the other "
                                   "files read at the same time hold them all)", hint="re-run; nothing was passed")
            pending.append(pool.submit(one, starts.popleft()))

    try:
        fill()
        while pending:
            future = pending.popleft()
            try:
                data = future.result()
            finally:
                slots.release()
            fill()
            yield data
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for _ in pending:
            slots.release()
