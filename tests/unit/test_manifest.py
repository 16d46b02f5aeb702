from __future__ import annotations

import hashlib
import json

import pytest

from mlgate.errors import InvalidInputError
from mlgate.integrity.manifest import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Manifest,
    canonical_json,
    compare,
)

D1 = "a" * 64
D2 = "b" * 64


def _doc(subjects: list[dict[str, object]], *, files: int | None = None) -> dict[str, object]:
    return {
        "_type": STATEMENT_TYPE,
        "predicateType": PREDICATE_TYPE,
        "subject": subjects,
        "predicate": {
            "files": len(subjects) if files is None else files,
            "bytes": 3,
            "hashing": {"algorithm": "sha256"},
        },
    }


def _bytes(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == '{"a":{"c":[1,2],"d":"é"},"b":1}'.encode()


def test_build_sorts_subjects_and_is_deterministic() -> None:
    one = Manifest.build({"z.bin": D1, "a/b.txt": D2}, 3, follow_internal_symlinks=False)
    two = Manifest.build({"a/b.txt": D2, "z.bin": D1}, 3, follow_internal_symlinks=False)
    assert one.canonical() == two.canonical()
    doc = json.loads(one.canonical())
    assert [s["name"] for s in doc["subject"]] == ["a/b.txt", "z.bin"]
    assert doc["_type"] == STATEMENT_TYPE
    assert doc["predicate"]["files"] == 2
    assert doc["predicate"]["bytes"] == 3
    assert one.digest == hashlib.sha256(one.canonical()).hexdigest()
    assert b" " not in one.canonical().replace(b"plain SHA-256 of each whole file", b"").replace(
        b"utf-8, POSIX separators, relative to the sealed directory", b""
    )


def test_parse_round_trip() -> None:
    m = Manifest.build({"a": D1, "dir/é.bin": D2}, 10, follow_internal_symlinks=True)
    again = Manifest.parse(m.canonical())
    assert again.subjects == m.subjects
    assert again.digest == m.digest


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/etc/passwd", "absolute path"),
        ("C:/x", "absolute path"),
        ("../up", "'..'"),
        ("a/../../b", "'..'"),
        ("a//b", "empty or '.'"),
        ("./a", "empty or '.'"),
        ("a\\b", "backslash"),
        ("", "non-empty"),
        ("a\x00b", "NUL"),
    ],
)
def test_hostile_names_are_invalid(name: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Manifest.parse(_bytes(_doc([{"name": name, "digest": {"sha256": D1}}])))
    assert why in info.value.message
    assert info.value.exit_code == 2


def test_duplicate_names_are_invalid() -> None:
    doc = _doc([{"name": "a", "digest": {"sha256": D1}}, {"name": "a", "digest": {"sha256": D2}}])
    with pytest.raises(InvalidInputError, match="duplicate name 'a'"):
        Manifest.parse(_bytes(doc))


@pytest.mark.parametrize("digest", ["A" * 64, "a" * 63, "g" * 64, 5, None, {"sha512": D1}])
def test_malformed_digest_is_invalid(digest: object) -> None:
    subject = {"name": "a", "digest": digest if isinstance(digest, dict) else {"sha256": digest}}
    with pytest.raises(InvalidInputError, match=r"digest.sha256"):
        Manifest.parse(_bytes(_doc([subject])))


def test_garbage_json_reports_position() -> None:
    with pytest.raises(InvalidInputError) as info:
        Manifest.parse(b'{\n  "_type": "x",\n  oops\n}', source="m.json")
    assert "m.json: invalid JSON at line 3, column 3" in info.value.message


def test_truncated_json_reports_position() -> None:
    full = Manifest.build({"a": D1}, 1, follow_internal_symlinks=False).canonical()
    with pytest.raises(InvalidInputError, match=r"invalid JSON at line 1, column \d+"):
        Manifest.parse(full[: len(full) // 2])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "JSON object"),
        (_bytes({"_type": "other"}), "_type"),
        (_bytes({**_doc([]), "predicateType": "x"}), "predicateType"),
        (_bytes({**_doc([]), "subject": {}}), "subject must be a list"),
        (_bytes(_doc([{"name": "a", "digest": {"sha256": D1}}], files=2)), "predicate.files"),
        (_bytes({**_doc([]), "predicate": {"files": 0, "bytes": -1}}), "predicate.bytes"),
        (_bytes({**_doc([]), "predicate": {"files": 0, "bytes": 0, "hashing": {"algorithm": "md5"}}}), "algorithm"),
        (b"[" * 100000 + b"]" * 100000, "JSON"),
    ],
)
def test_structurally_invalid(data: bytes, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Manifest.parse(data)


def test_compare_reports_all_three_kinds() -> None:
    result = compare({"same": D1, "changed": D1, "missing": D2}, {"same": D1, "changed": D2, "extra": D1})
    assert result.changed == [("changed", D1, D2)]
    assert result.missing == [("missing", D2)]
    assert result.extra == [("extra", D1)]
    assert not result.ok
    assert compare({"a": D1}, {"a": D1}).ok
