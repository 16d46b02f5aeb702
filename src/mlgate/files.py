"""Reading the user's input files safely and writing output files atomically.

:func:`read_bounded` opens without blocking (a FIFO or a device never hangs the gate),
refuses anything that is not a regular file and anything larger than its limit, and raises
:class:`mlgate.errors.InvalidInputError` (exit 2) naming the file. :func:`write_atomically`
writes a temporary file next to the target and renames it over, so a failed run never leaves
a truncated output.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from mlgate.errors import EvaluationError, InvalidInputError, UsageError

MIB = 1 << 20


def read_bounded(path: str | os.PathLike[str], limit: int, *, what: str = "input file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); exit 2 for anything else."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise InvalidInputError(f"{what} {name}: no such file", hint="check the path") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{what} {name}: is a directory, not a file", hint="give the file's path") from None
    except OSError as exc:
        raise InvalidInputError(f"{what} {name}: cannot open ({exc.strerror})",
                                hint="check the path and its permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(
                f"{what} {name}: not a regular file ({_kind(info.st_mode)})",
                hint="give a regular file; FIFOs, devices and sockets are refused",
            )
        if info.st_size > limit:
            raise InvalidInputError(f"{what} {name}: {info.st_size} bytes, more than the limit of {_size(limit)}")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(MIB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise InvalidInputError(f"{what} {name}: more than the limit of {_size(limit)} (it grew while read)")
        return b"".join(chunks)
    except OSError as exc:
        raise InvalidInputError(f"{what} {name}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int, *, what: str = "input file") -> str:
    """:func:`read_bounded` decoded as UTF-8 (exit 2 naming the file when it is not)."""
    data = read_bounded(path, limit, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {os.fspath(path)}: not UTF-8 text (byte {exc.start})") from None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit} bytes"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A stream whose bytes replace ``path`` in one step when the block ends without an error.

    The bytes go to a temporary file in the same directory, flushed and fsynced, then renamed
    over ``path`` (the rename shielded from the deadline); on any error the temporary file is
    removed and ``path`` is untouched.
    """
    import tempfile
    from pathlib import Path

    from mlgate.deadline import shielded

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}", hint="choose a writable output path") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            with shielded():
                os.fsync(stream.fileno())
        with shielded():
            os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EvaluationError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    with atomic_output(path) as stream:
        stream.write(data)
