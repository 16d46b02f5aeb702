"""The model-signing v1.0 statement: serializations, resource order, shard pieces, hostile statements refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlgate.errors import EXIT_USAGE, InvalidInputError, UsageError
from mlgate.integrity import seal_directory, verify_directory
from mlgate.integrity.hashing import hash_chunks_sharded, hash_shards
from mlgate.integrity.manifest import Manifest
from mlgate.integrity.serialization import (
    DEFAULT_SHARD_SIZE,
    Serialization,
    ordered,
    shard_ranges,
    split_shard,
)
from mlgate.integrity.tree import scan_tree


def test_shard_ranges_and_names() -> None:
    assert shard_ranges(0, 10) == []
    assert shard_ranges(10, 10) == [(0, 10)]
    assert shard_ranges(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert split_shard("a/b:c.bin:10:20") == ("a/b:c.bin", 10, 20)  # the last two colons delimit
    assert split_shard("a.bin:20:10") is None and split_shard("a.bin:01:10") is None and split_shard("a.bin") is None


def test_model_signing_order() -> None:
    names = ["a.b", "a/z.txt", "B", "a-c", "a/b/c"]
    assert ordered(names, "files") == ["B", "a/b/c", "a/z.txt", "a-c", "a.b"]
    shards = ["f:1048576:2097152", "f:0:1048576", "f:2097152:3000000", "e:0:5"]
    assert ordered(shards, "shards") == ["e:0:5", "f:0:1048576", "f:1048576:2097152", "f:2097152:3000000"]


def test_default_shard_size_is_model_signings() -> None:
    assert Serialization.of("shards").shard_size == DEFAULT_SHARD_SIZE == 1_000_000_000
    assert Serialization.of("shards").algorithm == "sha256-sharded-1000000000"
    assert Serialization.of("files").to_dict() == {"method": "files", "hash_type": "sha256", "allow_symlinks": False}


def test_streamed_pieces_equal_file_pieces(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB
    (tmp_path / "w.bin").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    from_files = hash_shards(scan_tree(tmp_path), 1 << 20, workers=2)
    chunks = [data[i:i + 333_333] for i in range(0, len(data), 333_333)]
    pieces, size = hash_chunks_sharded(iter(chunks), 1 << 20)
    assert size == len(data)
    assert {f"w.bin:{s}:{e}": d for s, e, d in pieces} == from_files  # and no piece for the empty file
    assert from_files["w.bin:0:1048576"] == hashlib.sha256(data[: 1 << 20]).hexdigest()


def test_shards_catch_a_change_inside_one_piece(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\0" * (3 << 20))
    manifest = seal_directory(tmp_path, serialization=Serialization.of("shards", shard_size=1 << 20))
    assert manifest.files == 1 and len(manifest.subjects) == 3
    with (tmp_path / "w.bin").open("r+b") as handle:
        handle.seek((2 << 20) + 5)
        handle.write(b"!")
    result = verify_directory(tmp_path, Manifest.parse(manifest.canonical()))
    assert [n for n, _, _ in result.changed] == ["w.bin:2097152:3145728"]


def statement(tmp_path: Path, method: str = "files") -> dict[str, Any]:
    (tmp_path / "m").mkdir(exist_ok=True)
    (tmp_path / "m" / "a.bin").write_bytes(b"a" * 100)
    (tmp_path / "m" / "b.bin").write_bytes(b"b" * 100)
    size = {"shard_size": 1 << 20} if method == "shards" else {}
    manifest = seal_directory(tmp_path / "m", serialization=Serialization.of(method, **size))
    return json.loads(manifest.canonical())  # type: ignore[no-any-return]


def refused(doc: Any) -> str:
    with pytest.raises(InvalidInputError) as caught:
        Manifest.parse(json.dumps(doc).encode(), source="manifest.json")
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message.startswith("manifest.json: ")
    return caught.value.message


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda d: d["subject"].append(d["subject"][0]), "exactly one subject"),
    (lambda d: d["subject"][0]["digest"].update(sha256="0" * 64), "the statement is inconsistent"),
    (lambda d: d["predicate"]["resources"][0].update(digest="0" * 64), "the statement is inconsistent"),
    (lambda d: d["predicate"]["resources"].append(dict(d["predicate"]["resources"][0])), "duplicate name"),
    (lambda d: d["predicate"]["resources"][0].update(name="../etc/passwd"), "'..' in path"),
    (lambda d: d["predicate"]["resources"][0].update(algorithm="blake3"), "algorithm must be 'sha256'"),
    (lambda d: d["predicate"]["serialization"].update(hash_type="blake2"), "hash_type: expected 'sha256'"),
    (lambda d: d["predicate"]["serialization"].update(method="bytes"), "method: expected 'files' or 'shards'"),
    (lambda d: d["predicate"]["serialization"].update(allow_symlinks="yes"), "allow_symlinks: must be true"),
    (lambda d: d["predicate"]["serialization"].update(ignore_paths=["../x"]), "not a path inside the model"),
    (lambda d: d["predicate"].pop("resources"), "predicate.resources must be a list"),
    (lambda d: d.update(predicateType="https://model_signing/Digests/v0.1"), "predicateType must be"),
])
def test_hostile_statements(tmp_path: Path, damage: Any, needle: str) -> None:
    doc = statement(tmp_path)
    damage(doc)
    assert needle in refused(doc)


def test_hostile_shard_statements(tmp_path: Path) -> None:
    doc = statement(tmp_path, "shards")
    assert doc["predicate"]["resources"][0]["algorithm"] == "sha256-sharded-1048576"
    bad = json.loads(json.dumps(doc))
    bad["predicate"]["resources"][0]["name"] = "a.bin"
    assert "expected PATH:START:END" in refused(bad)
    bad = json.loads(json.dumps(doc))
    bad["predicate"]["serialization"]["shard_size"] = 0
    assert "shard_size: must be a positive integer" in refused(bad)
    bad = json.loads(json.dumps(doc))
    bad["predicate"]["resources"][0]["algorithm"] = "sha256"
    assert "algorithm must be 'sha256-sharded-1048576'" in refused(bad)


def test_usage_errors() -> None:
    with pytest.raises(UsageError, match="out of range"):
        Serialization.of("shards", shard_size=10)
    with pytest.raises(UsageError, match="applies to --serialization shards only"):
        Serialization.of("files", shard_size=1 << 20)
