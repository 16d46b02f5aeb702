"""Parallel, streaming SHA-256 of a file tree with bounded memory.

Each file's digest is the plain SHA-256 of its bytes (``sha256sum`` agrees). Files are
hashed by a small thread pool, one file per thread at a time, largest first; hashlib
releases the GIL while it digests each 1 MiB chunk, so the threads use every core. Memory is
one 1 MiB buffer per thread, whatever the model's size.

With the ``shards`` serialization (:func:`hash_shards`) every file is cut into pieces and the
pieces are what the pool hashes, so a single large file is hashed on every core too.

``hashlib.file_digest`` does the same loop but has no hook for progress, and we also want
O_NOFOLLOW/O_NONBLOCK on open and an fstat check, so the loop is written here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable

from mlgate.errors import EvaluationError, RefusedError
from mlgate.integrity.tree import FileEntry, display

CHUNK_SIZE = 1 << 20
ATTEMPTS = 3  # reads of a file that keeps changing before giving up
RETRY_PAUSE = 0.1  # seconds, times the attempt number


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def hash_sized(entry: FileEntry, advance: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of one regular file whose bytes held still while hashed.

    The file is refused (exit 1) if it stopped being the regular file the scan saw. If it changed
    while it was read (the bytes hashed differ from its size before or after, or its mtime or the
    file at its path changed), it is hashed again, at most :data:`ATTEMPTS` times, then exit 3:
    a manifest never records bytes that were still being written.
    """
    for attempt in range(ATTEMPTS):
        hashed = _attempt(entry, advance)
        if hashed is not None:
            return hashed
        time.sleep(RETRY_PAUSE * (attempt + 1))
    raise EvaluationError(
        f"{display(entry.name)} changed while it was being hashed ({ATTEMPTS} attempts)",
        hint="stop whatever is writing to the model directory, then run again; nothing was sealed or passed",
    )


def _open(entry: FileEntry) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if entry.nofollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(entry.path, flags)
    except PermissionError as exc:
        raise EvaluationError(
            f"cannot read {display(entry.name)}: permission denied",
            hint="give the pipeline's user read access to every model file; an unreadable file is never a pass",
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP and entry.nofollow:
            raise RefusedError(f"{display(entry.name)} was replaced by a symlink after the scan") from exc
        raise EvaluationError(f"cannot open {display(entry.name)}: {exc.strerror}") from exc


def _same_file(fd: int, entry: FileEntry) -> os.stat_result:
    """The open file's status, refusing one that is no longer the regular file the scan found."""
    before = os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        raise RefusedError(f"{display(entry.name)} was replaced by a non-regular file while hashing")
    if entry.ino and (before.st_dev, before.st_ino) != (entry.dev, entry.ino):
        raise RefusedError(f"{display(entry.name)} was replaced by another file after the scan",
                           hint="stop whatever is writing to the model directory, then run again")
    return before


def _attempt(entry: FileEntry, advance: Callable[[int], None] | None) -> tuple[str, int] | None:
    """(digest, size) of one read of the file, or None when it changed while read."""
    fd = _open(entry)
    try:
        before = _same_file(fd, entry)
        digest, size = _read(fd, advance, before.st_size)
        after = os.fstat(fd)
        now = os.stat(entry.path, follow_symlinks=not entry.nofollow)
    except OSError as exc:
        raise EvaluationError(f"cannot read {display(entry.name)}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    still = (size == before.st_size == after.st_size and before.st_mtime_ns == after.st_mtime_ns
             and (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino))
    return (digest, size) if still else None


def _read(fd: int, advance: Callable[[int], None] | None, expected: int) -> tuple[str, int]:
    """Digest and count of the bytes read, stopping once past ``expected`` (the file grew: read again)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        while size <= expected:
            n = stream.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
            if advance is not None:
                advance(n)
    return digest.hexdigest(), size


def hash_entries(
    entries: Iterable[FileEntry],
    *,
    workers: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """``{name: sha256}`` for every entry, hashed in parallel (largest files first)."""
    return {name: digest for name, (digest, _) in hash_tree(entries, workers=workers, advance=advance).items()}


def hash_tree(
    entries: Iterable[FileEntry],
    *,
    workers: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict[str, tuple[str, int]]:
    """``{name: (sha256, size)}`` for every entry, hashed in parallel (largest files first)."""
    todo = sorted(entries, key=lambda e: e.size, reverse=True)
    n = min(workers or default_workers(), max(1, len(todo)))
    if n == 1:
        return {e.name: hash_sized(e, advance) for e in todo}
    from concurrent.futures import ThreadPoolExecutor, as_completed  # (it loads logging: not for one file)

    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="mlgate-hash")
    try:
        futures = {pool.submit(hash_sized, e, advance): e for e in todo}
        return {futures[f].name: f.result() for f in as_completed(futures)}
    finally:  # on the first failure, do not start hashing the files still queued
        pool.shutdown(wait=True, cancel_futures=True)


def _shard_attempt(entry: FileEntry, start: int, end: int,
                   advance: Callable[[int], None] | None) -> tuple[str, int] | None:
    """(digest of bytes [start, end), the file's mtime) of one read, or None when the file changed meanwhile."""
    fd = _open(entry)
    try:
        before = _same_file(fd, entry)
        if before.st_size != entry.size:
            return None
        digest = hashlib.sha256()
        buffer = bytearray(min(CHUNK_SIZE, end - start))
        view = memoryview(buffer)
        offset = start
        with open(fd, "rb", buffering=0, closefd=False) as stream:
            stream.seek(start)
            while offset < end:
                n = stream.readinto(view[: min(len(buffer), end - offset)])
                if not n:
                    return None  # shorter than the scan saw: it changed
                digest.update(view[:n])
                offset += n
                if advance is not None:
                    advance(n)
        after = os.fstat(fd)
        now = os.stat(entry.path, follow_symlinks=not entry.nofollow)
    except OSError as exc:
        raise EvaluationError(f"cannot read {display(entry.name)}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    still = (after.st_size == before.st_size and after.st_mtime_ns == before.st_mtime_ns
             and (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino))
    return (digest.hexdigest(), before.st_mtime_ns) if still else None


def hash_shard(entry: FileEntry, start: int, end: int,
               advance: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 of bytes ``[start, end)`` of one file that held still while read, and its mtime (ns)."""
    for attempt in range(ATTEMPTS):
        hashed = _shard_attempt(entry, start, end, advance)
        if hashed is not None:
            return hashed
        time.sleep(RETRY_PAUSE * (attempt + 1))
    raise EvaluationError(
        f"{display(entry.name)} changed while it was being hashed ({ATTEMPTS} attempts)",
        hint="stop whatever is writing to the model directory, then run again; nothing was sealed or passed",
    )


def hash_shards(
    entries: Iterable[FileEntry],
    shard_size: int,
    *,
    workers: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """``{PATH:START:END: sha256}`` of every ``shard_size`` piece of every file (empty files have none).

    The pieces are hashed in parallel on every core; all pieces of a file must see the same
    modification time, so a file rewritten between two pieces is never recorded (exit 3).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from mlgate.integrity.serialization import shard_name, shard_ranges

    tasks = [(e, start, end) for e in entries for start, end in shard_ranges(e.size, shard_size)]
    n = min(workers or default_workers(), max(1, len(tasks)))
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="mlgate-shard")
    try:
        futures = {pool.submit(hash_shard, e, start, end, advance): (e, start, end) for e, start, end in tasks}
        results = {futures[f]: f.result() for f in as_completed(futures)}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    seen: dict[str, int] = {}
    for (entry, _start, _end), (_digest, mtime) in results.items():
        if seen.setdefault(entry.name, mtime) != mtime:
            raise EvaluationError(f"{display(entry.name)} changed while it was being hashed (its pieces saw two "
                                  "versions)", hint="stop whatever is writing to the model directory, then run "
                                  "again; nothing was sealed or passed")
    return {shard_name(e.name, start, end): digest for (e, start, end), (digest, _) in results.items()}


def hash_chunks_sharded(chunks: Iterable[bytes], shard_size: int,
                        advance: Callable[[int], None] | None = None) -> tuple[list[tuple[int, int, str]], int]:
    """``[(start, end, sha256)]`` of every ``shard_size`` piece of a byte stream, and its size (no piece if empty).

    The same pieces and digests as :func:`hash_shards` gives for a file with these bytes.
    """
    pieces: list[tuple[int, int, str]] = []
    digest = hashlib.sha256()
    start = size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            room = shard_size - (size - start)
            part, view = view[:room], view[room:]
            digest.update(part)
            size += len(part)
            if size - start == shard_size:
                pieces.append((start, size, digest.hexdigest()))
                digest, start = hashlib.sha256(), size
        if advance is not None and chunk:
            advance(len(chunk))
    if size > start:
        pieces.append((start, size, digest.hexdigest()))
    return pieces, size


def hash_chunks(chunks: Iterable[bytes], advance: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of a byte stream (a download), hashed as it arrives.

    The same digest as :func:`hash_sized` gives for a file with these bytes.
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        digest.update(chunk)
        size += len(chunk)
        if advance is not None:
            advance(len(chunk))
    return digest.hexdigest(), size
