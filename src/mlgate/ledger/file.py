"""The embedded ledger: a JSON Lines file, appended under an exclusive lock (``filelock``).

The lock file sits next to the ledger (``PATH.lock``) and is held around the whole of
:meth:`Ledger.append`: its snapshot is the file's size and last line (or every line, when the
draft carries an idempotency key), and the line is appended (flushed and fsynced) only if the
size is still the one the snapshot saw, so concurrent writers on one machine (or on a shared
file system that honours ``flock``) neither lose nor fork entries.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mlgate.ledger.base import Conflict, Ledger, LedgerUnavailable, Snapshot

LOCK_TIMEOUT = 60.0
_CHUNK = 64 << 10


def read_last_line(path: Path) -> bytes | None:
    """The last line of ``path`` (with its newline, if any); None for an empty or missing file."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return None
    with stream:
        stream.seek(0, os.SEEK_END)
        end = stream.tell()
        if end == 0:
            return None
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
                return buffer[cut + 1 :]
        return buffer


class FileLedger(Ledger):
    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.location = f"file:{self.path.resolve()}"

    def locations(self) -> tuple[str, ...]:
        """The resolved path, and the path as given (a symlink swapped in must not hide the anchors written there)."""
        return tuple(dict.fromkeys((self.location, f"file:{os.path.abspath(self.path)}")))

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

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.lock_path), timeout=self.lock_timeout):
                yield
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

    def snapshot(self, *, whole: bool) -> Snapshot:
        size = self._size()
        if whole:
            return Snapshot(self.lines(), size)
        last = read_last_line(self.path) if size else None
        return Snapshot([last] if last is not None else [], size, whole=False)

    def append_if_unchanged(self, line: bytes, snapshot: Snapshot) -> None:
        from mlgate.deadline import shielded

        with self.path.open("ab") as stream:
            if os.fstat(stream.fileno()).st_size != snapshot.size:
                raise Conflict
            with shielded():
                stream.write(line)
                stream.flush()
                os.fsync(stream.fileno())
