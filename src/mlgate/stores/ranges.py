"""One large object read as parallel byte ranges, handed on in order to one sequential hash.

A back-end reads the first :data:`RANGE` bytes with one request, which also tells the object's
size and version (ETag). When the object is larger, the rest is fetched as ranges of
:data:`RANGE` bytes by up to :data:`WINDOW` threads, each range conditional on that version (so a
file rewritten while it is read fails instead of mixing two versions), and the ranges are yielded
strictly in order: the caller hashes a plain stream of chunks.

Memory stays bounded: at most :data:`WINDOW` ranges are in flight, plus the one being hashed
(``(WINDOW + 1) * RANGE`` bytes per file), and nothing is written to disk. A range shorter than asked is
an error (a cut-off transfer is never hashed as if it were the file).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from mlgate.errors import NetworkError

RANGE = 8 << 20
WINDOW = 4

Fetch = Callable[[int, int], bytes]  # (offset, length) -> exactly that many bytes


def rest_in_ranges(name: str, first: int, size: int, fetch: Fetch, *, range_size: int | None = None,
                   window: int | None = None) -> Iterator[bytes]:
    """Bytes ``first`` to ``size`` of ``name``, fetched as parallel ranges and yielded in order.

    ``fetch(offset, length)`` returns that range (it raises the back-end's own error). Threads start
    when the first chunk is asked for; a consumer that stops early cancels what has not started.
    """
    step = range_size or RANGE
    slots = max(1, window or WINDOW)
    starts = iter(range(first, size, step))
    if first >= size:
        return

    def one(offset: int) -> tuple[int, bytes]:
        length = min(step, size - offset)
        data = fetch(offset, length)
        if len(data) != length:
            raise NetworkError(f"reading {name}: bytes {offset}-{offset + length - 1} came back as "
                               f"{len(data)} bytes", hint="re-run; if it persists, check the artifact store")
        return offset, data

    pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="mlgate-range")
    pending: deque[Future[tuple[int, bytes]]] = deque()
    try:
        for offset in starts:
            pending.append(pool.submit(one, offset))
            if len(pending) >= slots:
                break
        while pending:
            _, data = pending.popleft().result()
            offset_next = next(starts, None)
            if offset_next is not None:
                pending.append(pool.submit(one, offset_next))
            yield data
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
