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
from dataclasses import dataclass

from mlgate.errors import EvaluationError, RefusedError, UsageError


@dataclass(frozen=True)
class FileEntry:
    name: str  # POSIX path relative to the root, as recorded in the manifest
    path: str  # path to open
    size: int
    nofollow: bool  # open with O_NOFOLLOW (False only for a followed internal symlink)


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


def scan_tree(root: str | os.PathLike[str], *, follow_internal_symlinks: bool = False) -> list[FileEntry]:
    """Every regular file under ``root``; raises :class:`RefusedError` listing every hostile entry."""
    top = os.fspath(root)
    if not os.path.isdir(top):
        raise UsageError(f"{top} is not a directory", hint="pass the directory that holds the model files")
    real_root = os.path.realpath(top)
    files: list[FileEntry] = []
    problems: list[str] = []
    visited = {real_root}
    stack: list[tuple[str, str]] = [(top, "")]  # (filesystem dir, manifest prefix)
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError as exc:
            raise EvaluationError(
                f"cannot list directory {display(prefix or '.')}: permission denied",
                hint="give the pipeline's user read access to the whole model directory",
            ) from exc
        except OSError as exc:
            raise EvaluationError(f"cannot list directory {display(prefix or '.')}: {exc.strerror}") from exc
        for entry in entries:
            name = f"{prefix}{entry.name}"
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{display(name)}: file name is not valid UTF-8")
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise EvaluationError(f"cannot stat {display(name)}: {exc.strerror}") from exc
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(entry.path)
                if not _inside(target, real_root):
                    problems.append(f"{display(name)}: symlink leaves the directory (-> {display(target)})")
                    continue
                if not follow_internal_symlinks:
                    problems.append(
                        f"{display(name)}: symlink inside the directory "
                        "(refused by default; see --follow-internal-symlinks)"
                    )
                    continue
                try:
                    tst = os.stat(target)
                except OSError:
                    problems.append(f"{display(name)}: dangling symlink")
                    continue
                if stat.S_ISDIR(tst.st_mode):
                    if target in visited:
                        problems.append(f"{display(name)}: symlink loop")
                        continue
                    visited.add(target)
                    stack.append((target, name + "/"))
                elif stat.S_ISREG(tst.st_mode):
                    files.append(FileEntry(name, target, tst.st_size, nofollow=False))
                else:
                    problems.append(f"{display(name)}: symlink to {_kind(tst.st_mode)}")
            elif stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, name + "/"))
            elif stat.S_ISREG(st.st_mode):
                files.append(FileEntry(name, entry.path, st.st_size, nofollow=True))
            else:
                problems.append(f"{display(name)}: {_kind(st.st_mode)} is not a model file")
    if problems:
        listing = "\n  ".join(problems)
        raise RefusedError(
            f"refused to hash {top}: {len(problems)} unsafe entr{'y' if len(problems) == 1 else 'ies'}\n  {listing}",
            hint="remove or replace these entries with regular files inside the directory",
        )
    files.sort(key=lambda f: f.name)
    return files
