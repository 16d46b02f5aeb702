from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from mlgate.errors import EvaluationError, RefusedError, UsageError
from mlgate.integrity import seal_directory, verify_directory
from mlgate.integrity.hashing import hash_entries
from mlgate.integrity.progress import Progress
from mlgate.integrity.tree import scan_tree


def _tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "a.bin").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_text("beta")
    (root / "sub" / "deeper" / "empty.dat").write_bytes(b"")
    return root


def test_scan_lists_regular_files_and_ignores_empty_dirs(tmp_path: Path) -> None:
    names = [e.name for e in scan_tree(_tree(tmp_path))]
    assert names == ["a.bin", "sub/b.txt", "sub/deeper/empty.dat"]


def test_digests_equal_hashlib_on_random_files(tmp_path: Path) -> None:
    sizes = {"zero": 0, "one": 1, "chunk": 1 << 20, "odd": (1 << 20) + 17, "big": (64 << 20) + 12345}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
    manifest = seal_directory(tmp_path)
    for name in sizes:
        assert manifest.subjects[name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert manifest.total_bytes == sum(sizes.values())


def test_single_worker_gives_same_digests(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(os.urandom(1000 * i))
    entries = scan_tree(tmp_path)
    assert hash_entries(entries, workers=1) == hash_entries(entries, workers=4)


def test_symlink_leaving_dir_is_refused_and_named(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    (tmp_path / "secret").write_text("outside")
    (root / "escape").symlink_to(tmp_path / "secret")
    with pytest.raises(RefusedError) as info:
        scan_tree(root)
    assert "escape: symlink leaves the directory" in info.value.message
    assert info.value.exit_code == 1


def test_symlink_leaving_dir_refused_even_when_following(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    (root / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(RefusedError, match="up: symlink leaves the directory"):
        scan_tree(root, follow_internal_symlinks=True)


def test_internal_symlink_refused_by_default_and_followed_on_request(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "link.bin").symlink_to("a.bin")
    (root / "linkdir").symlink_to("sub", target_is_directory=True)
    with pytest.raises(RefusedError) as info:
        scan_tree(root)
    assert "link.bin: symlink inside the directory" in info.value.message
    assert "linkdir: symlink inside" in info.value.message
    manifest = seal_directory(root, follow_internal_symlinks=True)
    assert manifest.subjects["link.bin"] == manifest.subjects["a.bin"]
    assert manifest.subjects["linkdir/b.txt"] == manifest.subjects["sub/b.txt"]
    assert manifest.serialization is not None and manifest.serialization.allow_symlinks is True


def test_symlink_loop_and_dangling_link_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (root / "dangling").symlink_to("nowhere")
    with pytest.raises(RefusedError) as info:
        scan_tree(root, follow_internal_symlinks=True)
    assert "dangling: dangling symlink" in info.value.message
    assert "sub/loop: symlink loop" in info.value.message


def test_fifo_and_socket_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))
        with pytest.raises(RefusedError) as info:
            scan_tree(root)
    finally:
        sock.close()
    assert "pipe: a FIFO is not a model file" in info.value.message
    assert "sock: a socket is not a model file" in info.value.message
    assert "2 unsafe entries" in info.value.message


def test_device_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    try:
        os.mknod(root / "dev", 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR, like /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with pytest.raises(RefusedError, match="dev: a character device is not a model file"):
        scan_tree(root)


def test_non_utf8_name_refused_with_escaped_bytes(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with open(os.path.join(os.fsencode(root), b"bad\xffname"), "wb") as f:
        f.write(b"x")
    with pytest.raises(RefusedError) as info:
        scan_tree(root)
    assert "bad\\xffname: file name is not valid UTF-8" in info.value.message


def test_unreadable_file_is_could_not_evaluate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path)
    real_open = os.open

    def deny(path: str, flags: int, *a: object) -> int:
        if str(path).endswith("b.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(EvaluationError) as info:
        seal_directory(root)
    assert info.value.exit_code == 3
    assert "sub/b.txt: permission denied" in info.value.message


def test_file_swapped_for_symlink_after_scan_is_not_followed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    entries = scan_tree(root)
    (tmp_path / "outside").write_text("x")
    os.unlink(root / "a.bin")
    (root / "a.bin").symlink_to(tmp_path / "outside")
    with pytest.raises(RefusedError, match=r"a\.bin was replaced by a symlink"):
        hash_entries(entries)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a directory"):
        scan_tree(tmp_path / "missing")


def test_verify_reports_changed_missing_and_extra_together(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    manifest = seal_directory(root)
    (root / "a.bin").write_bytes(b"ALPHA")
    (root / "sub" / "b.txt").unlink()
    (root / "new.py").write_text("x")
    result = verify_directory(root, manifest)
    assert [c[0] for c in result.changed] == ["a.bin"]
    assert [m[0] for m in result.missing] == ["sub/b.txt"]
    assert [e[0] for e in result.extra] == ["new.py"]


def test_progress_lines_in_ci(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(4 << 30, ci=True, interval=0.0) as progress:
        progress.advance(1 << 30)
        progress.advance(1 << 30)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("hashing: 1.00 GiB / 4.00 GiB (25%) at ")
    assert lines[-1].startswith("hashing: 2.00 GiB / 4.00 GiB (50%)")
    assert all(line.endswith("GB/s") for line in lines)


def test_progress_silent_below_threshold_and_rate_limited(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(100, ci=True, interval=0.0) as progress:
        progress.advance(50)
    with Progress(4 << 30, ci=True, interval=3600) as progress:
        for _ in range(100):
            progress.advance(1 << 20)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1  # only the closing line of the second run


def test_a_file_that_changed_once_while_hashed_is_hashed_again(tmp_path: Path) -> None:
    from mlgate.integrity.hashing import hash_sized

    root = _tree(tmp_path / "m")
    [entry] = [e for e in scan_tree(root) if e.name == "a.bin"]
    calls: list[int] = []

    def append_once(n: int) -> None:
        if not calls:
            with open(root / "a.bin", "ab") as stream:
                stream.write(b"-more")
        calls.append(n)

    digest, size = hash_sized(entry, append_once)
    assert (digest, size) == (hashlib.sha256(b"alpha-more").hexdigest(), 10)
    assert calls == [5, 5, 10]  # the first read hashed 5 + 5 bytes of a file that had 5 when opened: again


def test_a_file_that_keeps_changing_is_exit_3_and_never_sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.integrity import hashing

    root = _tree(tmp_path / "m")
    [entry] = [e for e in scan_tree(root) if e.name == "sub/b.txt"]

    def grow(n: int) -> None:
        with open(root / "sub" / "b.txt", "ab") as stream:
            stream.write(b"+")

    monkeypatch.setattr(hashing, "RETRY_PAUSE", 0.0)
    with pytest.raises(EvaluationError) as info:
        hashing.hash_sized(entry, grow)
    assert info.value.exit_code == 3
    assert "sub/b.txt changed while it was being hashed (3 attempts)" in info.value.message


def test_a_file_shrunk_or_replaced_after_the_scan(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    entries = scan_tree(root)
    (root / "a.bin").write_bytes(b"al")  # truncated in place: same file, fewer bytes
    assert seal_directory(root).total_bytes == 6  # what was hashed, not what the scan saw
    (tmp_path / "new.bin").write_bytes(b"other")
    os.replace(tmp_path / "new.bin", root / "a.bin")  # another file at the path
    with pytest.raises(RefusedError, match=r"a\.bin was replaced by another file after the scan"):
        hash_entries(entries)


def test_manifest_total_is_the_bytes_hashed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m")
    manifest = seal_directory(root)
    assert manifest.total_bytes == 9 == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
