"""The embedded ledger: a JSON Lines file, appended under an exclusive lock (``filelock``).

The lock file sits next to the ledger (``PATH.lock``). Each append reads the last entry (or
scans the whole file when the draft carries an idempotency key), writes one line, flushes
and fsyncs, all while holding the lock, so concurrent writers on one machine (or on a shared
file system that honours ``flock``) neither lose nor fork entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from mlgate.ledger.base import Draft, Entry, Ledger, LedgerUnavailable, chain, find_key, parse_line

LOCK_TIMEOUT = 60.0
_CHUNK = 64 << 10


def read_last_line(path: Path) -> tuple[bytes | None, int]:
    """The last line of ``path`` (with its newline, if any) and its 1-based line number hint.

    The line number is only known exactly when the whole file is scanned; here it is 0.
    """
    with path.open("rb") as stream:
        stream.seek(0, os.SEEK_END)
        end = stream.tell()
        if end == 0:
            return None, 0
        buffer = b""
        position = end
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            stream.seek(position)
            buffer = stream.read(step) + buffer
            # the newline ending the last line does not start it
            cut = buffer.rfind(b"\n", 0, len(buffer) - 1)
            if cut >= 0:
                return buffer[cut + 1 :], 0
        return buffer, 0


class FileLedger(Ledger):
    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.location = f"file:{self.path.resolve()}"

    def exists(self) -> bool:
        return self.path.is_file()

    def lines(self) -> Iterator[bytes]:
        try:
            stream = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LedgerUnavailable(f"cannot read the ledger {self.location}: {exc.strerror}") from exc
        with stream:
            yield from stream

    def append(self, draft: Draft) -> tuple[Entry, bool]:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.lock_path), timeout=self.lock_timeout)
            with lock:
                return self._append_locked(draft)
        except Timeout as exc:
            raise LedgerUnavailable(
                f"the ledger {self.location} stayed locked for {self.lock_timeout:.0f} s",
                hint=f"another mlgate is writing it; if none is, remove {self.lock_path}",
            ) from exc
        except OSError as exc:
            raise LedgerUnavailable(
                f"cannot write the ledger {self.location}: {exc.strerror}",
                hint="check the path and its permissions (--ledger / MLGATE_LEDGER)",
            ) from exc

    def _append_locked(self, draft: Draft) -> tuple[Entry, bool]:
        last: Entry | None
        if draft.key is not None:
            match, last = find_key(self.lines(), draft.key)
            if match is not None:
                return match, False
        else:
            raw, _ = read_last_line(self.path) if self.path.exists() else (None, 0)
            last = parse_line(raw, line=0) if raw is not None else None
        entry = chain(draft, last)
        with self.path.open("ab") as stream:
            stream.write(entry.line())
            stream.flush()
            os.fsync(stream.fileno())
        return entry, True
