"""Walk a model directory, refusing anything whose deployed bytes could differ from what was hashed.

Rules (documented in the README):

* a symlink whose target leaves DIR is refused;
* a symlink inside DIR is refused too unless ``follow_internal_symlinks``: deploy tools copy
  links differently (some dereference, some copy the link, some drop it), and a link can be
  re-pointed after sealing, so the bytes deployed might not be the bytes hashed;
* FIFOs, sockets and device files are refused;
* file names must be valid UTF-8 (a manifest name is a JSON string): other names are refused,
  shown with undecodable bytes escaped as ``\\xNN``;
* empty directories are ignored; empty files are files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from mlgate.errors import EvaluationError, RefusedError, UsageError


@dataclass(frozen=True)
class FileEntry:
    name: str  # POSIX path relative to the root, as recorded in the manifest
    path: str  # path to open
    size: int
    nofollow: bool  # open with O_NOFOLLOW (False only for a followed internal symlink)
    dev: int = 0  # identity seen by the scan (0: unknown); the opened file must be this one
    ino: int = 0


def display(name: str) -> str:
    """A file name safe to print on one line: undecodable bytes and control characters escaped."""
    raw = name.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "backslashreplace")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return repr(text)
    return text


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Scan:
    """The state of one walk: what was found, what was refused, which directories were entered."""

    def __init__(self, top: str, follow_internal_symlinks: bool) -> None:
        self.real_root = os.path.realpath(top)
        self.follow = follow_internal_symlinks
        self.files: list[FileEntry] = []
        self.problems: list[str] = []
        self.visited = {self.real_root}
        self.stack: list[tuple[str, str]] = [(top, "")]  # (filesystem dir, manifest prefix)

    def listing(self, directory: str, prefix: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                return sorted(it, key=lambda e: e.name)
        except PermissionError as exc:
            raise EvaluationError(
                f"cannot list directory {display(prefix or '.')}: permission denied",
                hint="give the pipeline's user read access to the whole model directory",
            ) from exc
        except OSError as exc:
            raise EvaluationError(f"cannot list directory {display(prefix or '.')}: {exc.strerror}") from exc

    def entry(self, entry: os.DirEntry[str], name: str) -> None:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            self.problems.append(f"{display(name)}: file name is not valid UTF-8")
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise EvaluationError(f"cannot stat {display(name)}: {exc.strerror}") from exc
        if stat.S_ISLNK(st.st_mode):
            self.symlink(entry.path, name)
        elif stat.S_ISDIR(st.st_mode):
            self.stack.append((entry.path, name + "/"))
        elif stat.S_ISREG(st.st_mode):
            self.files.append(FileEntry(name, entry.path, st.st_size, True, st.st_dev, st.st_ino))
        else:
            self.problems.append(f"{display(name)}: {_kind(st.st_mode)} is not a model file")

    def symlink(self, path: str, name: str) -> None:
        target = os.path.realpath(path)
        if not _inside(target, self.real_root):
            self.problems.append(f"{display(name)}: symlink leaves the directory (-> {display(target)})")
            return
        if not self.follow:
            self.problems.append(
                f"{display(name)}: symlink inside the directory (refused by default; see --follow-internal-symlinks)"
            )
            return
        try:
            tst = os.stat(target)
        except OSError:
            self.problems.append(f"{display(name)}: dangling symlink")
            return
        if stat.S_ISDIR(tst.st_mode):
            if target in self.visited:
                self.problems.append(f"{display(name)}: symlink loop")
                return
            self.visited.add(target)
            self.stack.append((target, name + "/"))
        elif stat.S_ISREG(tst.st_mode):
            self.files.append(FileEntry(name, target, tst.st_size, False, tst.st_dev, tst.st_ino))
        else:
            self.problems.append(f"{display(name)}: symlink to {_kind(tst.st_mode)}")


def scan_tree(root: str | os.PathLike[str], *, follow_internal_symlinks: bool = False,
              ignore: Callable[[str], bool] | None = None) -> list[FileEntry]:
    """Every regular file under ``root``; raises :class:`RefusedError` listing every hostile entry.

    ``ignore(name)`` true skips that entry (and all under it) before it is looked at: the
    statement's ``ignore_paths``.
    """
    top = os.fspath(root)
    if not os.path.isdir(top):
        raise UsageError(f"{top} is not a directory", hint="pass the directory that holds the model files")
    scan = _Scan(top, follow_internal_symlinks)
    while scan.stack:
        directory, prefix = scan.stack.pop()
        for entry in scan.listing(directory, prefix):
            name = f"{prefix}{entry.name}"
            if ignore is None or not ignore(name):
                scan.entry(entry, name)
    if scan.problems:
        count = len(scan.problems)
        listing = "\n  ".join(scan.problems)
        raise RefusedError(
            f"refused to hash {top}: {count} unsafe entr{'y' if count == 1 else 'ies'}\n  {listing}",
            hint="remove or replace these entries with regular files inside the directory",
        )
    return sorted(scan.files, key=lambda f: f.name)
