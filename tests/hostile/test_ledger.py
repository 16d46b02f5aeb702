"""Hostile ledgers, offline: every kind of damaged, forged or malformed ledger and export file.

Each case builds an honest three-entry ledger, damages it, runs `mlgate audit verify|export`
in-process and asserts the exact exit code, the fragment that says what happened, and a clean
output (no traceback, no "internal error", no canary). MLflow-backed cases (anchors) live in
tests/integration/ledger/test_hostile_ledger.py; MLflow answers of the wrong shape are faked
with `responses` here (one client, one endpoint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import responses

from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import Draft
from mlgate.ledger.base import entry_hash
from mlgate.ledger.file import FileLedger

from .harness import Case, assert_case, run_in_process

CANARY = "CANARY-SECRET-7f3a"


def build(path: Path) -> None:
    ledger = FileLedger(path)
    for i in (1, 2, 3):
        ledger.append(Draft(event="approved", model=f"models:/fraud/{i}", stage="production", actor="ci",
                            approvers=[{"name": "Ana", "comment": f"ok {i}", "source": "local"}],
                            details={"previous_version": str(i - 1) if i > 1 else None}))


def rehash_last(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    """Change the last entry and give it a valid hash again: only its field types are wrong."""
    *head, last = path.read_bytes().splitlines(keepends=True)
    entry = json.loads(last)
    change(entry)
    entry["hash"] = entry_hash(entry)
    path.write_bytes(b"".join(head) + canonical_json(entry) + b"\n")


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def export(path: Path, out: Path, **header: object) -> None:
    """An export file of ``path`` as `audit export` writes it, with ``header`` fields replaced."""
    body = lines(path)
    last = json.loads(body[-1]) if body else None
    first = json.loads(body[0]) if body else None
    doc: dict[str, object] = {
        "mlgate_ledger_export": 1, "exported_at": "2026-01-01T00:00:00Z", "source": f"file:{path}",
        "ledger_id": first["details"]["ledger_id"] if first else None, "entries": len(body),
        "head": {"seq": last["seq"], "hash": last["hash"]} if last else None, "anchors": [],
    }
    doc.update(header)
    out.write_bytes(canonical_json(doc) + b"\n" + b"".join(body))


@dataclass(frozen=True)
class Damage:
    case: Case
    damage: Callable[[Path, Path], None]  # (ledger path, work dir)


def _set(key: str, value: object) -> Callable[[Path, Path], None]:
    def change(path: Path, _: Path) -> None:
        rehash_last(path, lambda e: e.__setitem__(key, value))

    return change


def _details(key: str, value: object) -> Callable[[Path, Path], None]:
    def change(path: Path, _: Path) -> None:
        rehash_last(path, lambda e: e["details"].__setitem__(key, value))  # type: ignore[attr-defined]

    return change


def _replace_line(number: int, data: bytes) -> Callable[[Path, Path], None]:
    def change(path: Path, _: Path) -> None:
        body = lines(path)
        body[number - 1] = data
        path.write_bytes(b"".join(body))

    return change


def _flip(path: Path, _: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"ok 2")
    data[at] = ord("O")
    path.write_bytes(bytes(data))


def _torn(path: Path, _: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])


def _reorder(path: Path, _: Path) -> None:
    a, b, c = lines(path)
    path.write_bytes(a + c + b)


def _drop_middle(path: Path, _: Path) -> None:
    a, _b, c = lines(path)
    path.write_bytes(a + c)


def _empty(path: Path, _: Path) -> None:
    path.write_bytes(b"")


def _delete(path: Path, _: Path) -> None:
    path.unlink()


def _huge_line(path: Path, _: Path) -> None:
    with path.open("ab") as stream:
        stream.write(b'{"seq":4,"pad":"' + b"x" * (5 << 20) + b'"}\n')


def _fifo(path: Path, work: Path) -> None:
    os.mkfifo(work / "fifo")


def _export_with(**header: object) -> Callable[[Path, Path], None]:
    def change(path: Path, work: Path) -> None:
        export(path, work / "export.jsonl", **header)

    return change


def _export_dropping_last(path: Path, work: Path) -> None:
    export(path, work / "export.jsonl")
    out = work / "export.jsonl"
    out.write_bytes(b"".join(lines(out)[:-1]))


V = ("audit", "verify", "--no-anchors", "--ledger", "{ledger}")
F = ("audit", "verify", "--no-anchors", "--file", "{work}/export.jsonl")
DEEP = b"[" * 100_000 + b"]" * 100_000 + b"\n"
SEQ_5000 = b'{"seq":' + b"9" * 5000 + b',"prev":"' + b"0" * 64 + b'"}\n'

CASES = [
    Damage(Case("intact", V, 0, says=("3 entries, chain intact",)), lambda p, w: None),
    Damage(Case("one-byte-flipped", V, 1, says=("line 2 (seq 2)", "does not match its hash")), _flip),
    Damage(Case("torn-tail", V, 1, says=("line 3", "incomplete last line")), _torn),
    Damage(Case("reordered", V, 1, says=("line 2 (seq 3)", "reordered")), _reorder),
    Damage(Case("entry-removed", V, 1, says=("expected seq 2",)), _drop_middle),
    Damage(Case("approvers-not-a-list", V, 1, says=("line 3 (seq 3)", "field approvers")), _set("approvers", "Ana")),
    Damage(Case("approver-name-a-number", V, 1, says=("field approvers[0].name",)),
           _set("approvers", [{"name": 7}])),
    Damage(Case("approver-identities-not-strings", V, 1, says=("field approvers[0].identities",)),
           _set("approvers", [{"name": "Ana", "identities": [1]}])),
    Damage(Case("model-a-number", V, 1, says=("field model: expected a string, got a number",)), _set("model", 3)),
    Damage(Case("stage-an-object", V, 1, says=("field stage",)), _set("stage", {"x": 1})),
    Damage(Case("key-a-list", V, 1, says=("field key",)), _set("key", [])),
    Damage(Case("v-a-string", V, 1, says=("field v",)), _set("v", "1")),
    Damage(Case("details-a-list", V, 1, says=("field details",)), _set("details", [])),
    Damage(Case("details-previous-version-an-object", V, 1, says=("field details.previous_version",)),
           _details("previous_version", {"v": 1})),
    Damage(Case("details-passed-a-string", V, 1, says=("field details.passed",)), _details("passed", "yes")),
    Damage(Case("seq-a-boolean", V, 1, says=("seq must be a positive integer",)), _set("seq", True)),
    Damage(Case("seq-5000-digits", V, 1, says=("line 1", "not valid JSON")), _replace_line(1, SEQ_5000)),
    Damage(Case("deep-json-line", V, 1, says=("line 2", "not valid JSON")), _replace_line(2, DEEP)),
    Damage(Case("line-a-list", V, 1, says=("line 1: not a JSON object",)), _replace_line(1, b"[1,2]\n")),
    Damage(Case("line-not-utf8", V, 1, says=("line 2", "not valid JSON")), _replace_line(2, b'{"a":"\xff"}\n')),
    Damage(Case("hash-uppercase", V, 1, says=("line 1 (seq 1): missing or malformed hash",)),
           lambda p, w: p.write_bytes(p.read_bytes().replace(b'"hash":"', b'"hash":"A', 1))),
    Damage(Case("line-over-4-mib", V, 1, says=("line 4", "limit")), _huge_line),
    Damage(Case("emptied-offline-warns", V, 0, says=("empty (no entries)", "no anchor was checked")), _empty),
    Damage(Case("emptied-require-anchors", (*V, "--require-anchors"), 1, says=("--require-anchors",)), _empty),
    Damage(Case("deleted-offline", V, 2, says=("no ledger at",)), _delete),
    Damage(Case("file-is-a-fifo", ("audit", "verify", "--no-anchors", "--file", "{work}/fifo"), 2,
                says=("not a regular file",)), _fifo),
    Damage(Case("export-intact", F, 0, says=("3 entries, chain intact", "export of")), _export_with()),
    Damage(Case("export-entries-a-word", F, 2, says=("field entries",)), _export_with(entries="three")),
    Damage(Case("export-anchors-not-a-list", F, 2, says=("header anchors must be a list",)),
           _export_with(anchors={"seq": 1})),
    Damage(Case("export-anchor-seq-a-string", F, 2, says=("anchors[0]", "seq")),
           _export_with(anchors=[{"where": "m", "seq": "1", "hash": "0" * 64}])),
    Damage(Case("export-anchor-beyond-end", F, 1, says=("entries were removed",)),
           _export_with(anchors=[{"where": "models:/fraud/9", "seq": 9, "hash": "0" * 64}])),
    Damage(Case("export-source-a-number", F, 2, says=("field source",)), _export_with(source=5)),
    Damage(Case("export-format-2", F, 2, says=("unsupported export format 2",)),
           _export_with(mlgate_ledger_export=2)),
    Damage(Case("export-other-ledger-id", F, 1, says=("the header names the ledger",)),
           _export_with(ledger_id="f" * 32)),
    Damage(Case("export-truncated-body", F, 1, says=("entries were removed or added",)), _export_dropping_last),
    Damage(Case("export-deep-header", F, 2, says=("nested deeper",)),
           lambda p, w: (w / "export.jsonl").write_bytes(b'{"mlgate_ledger_export":' + b"[" * 100 + b"]" * 100
                                                        + b"}\n" + p.read_bytes())),
    Damage(Case("export-tampered-ledger", ("audit", "export", "--no-anchors", "--ledger", "{ledger}", "-o",
                                           "{work}/out.jsonl"), 1, says=("line 2 (seq 2)",)), _flip),
    Damage(Case("unknown-scheme", ("audit", "verify", "--ledger", "s3://bucket/ledger"), 2,
                says=("unknown ledger scheme",)), lambda p, w: None),
    Damage(Case("blob-url-with-sas", ("audit", "verify", "--ledger",
                                      f"https://acct.blob.core.windows.net/c/b?sig={CANARY}"), 2,
                canaries=(CANARY,), says=("query",)), lambda p, w: None),
    Damage(Case("blob-over-http-without-key", ("audit", "verify", "--ledger",
                                               "azure-blob://http://127.0.0.1:9/devstoreaccount1/c/b"), 2,
                says=("plain http",)), lambda p, w: None),
    Damage(Case("blob-malformed-connection-string", ("audit", "verify", "--ledger",
                                                     "azure-blob://acct.blob.core.windows.net/c/b"), 2,
                env={"AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={CANARY};nonsense"},
                canaries=(CANARY,), says=("AZURE_STORAGE_CONNECTION_STRING is malformed",)), lambda p, w: None),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLGATE_LEDGER", "MLGATE_REQUIRE_ANCHORS", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("item", CASES, ids=[d.case.id for d in CASES])
def test_damaged_ledger(
    item: Damage, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    build(path)
    item.damage(path, tmp_path)
    argv = [a.format(ledger=f"file:{path}", work=tmp_path) for a in item.case.argv]
    code, output = run_in_process(argv, capsys, monkeypatch, env=item.case.env)
    assert_case(item.case, code, output)
    if argv[:2] == ["audit", "export"] and code:
        assert not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------------------- MLflow answers of the wrong shape
MLFLOW = "http://mlflow.invalid"
SEARCH = f"{MLFLOW}/api/2.0/mlflow/model-versions/search"


def _version(**fields: object) -> dict[str, object]:
    version: dict[str, object] = {"name": "fraud", "version": "1",
                                  "tags": [{"key": "mlgate.ledger.head", "value": "1:" + "0" * 64}]}
    version.update(fields)
    return version


ANSWERS = [
    (Case("search-repeats-its-page-token", V, 3, says=("repeated a next_page_token",)),
     {"model_versions": [], "next_page_token": "again"}),
    (Case("search-model-versions-a-string", V, 3, says=("field model_versions",)), {"model_versions": "many"}),
    (Case("search-tags-value-a-number", V, 3, says=("field model_versions[0].tags[0].value",)),
     {"model_versions": [_version(tags=[{"key": "mlgate.ledger.head", "value": 5}])]}),
    (Case("search-version-a-list", V, 3, says=("field model_versions[0].version",)),
     {"model_versions": [_version(version=[1])]}),
    (Case("search-token-a-number", V, 3, says=("field next_page_token",)),
     {"model_versions": [], "next_page_token": 7}),
    (Case("search-html", V, 3, says=("not JSON",)), "<html>login</html>"),
]


@pytest.mark.parametrize(("case", "answer"), ANSWERS, ids=[c.id for c, _ in ANSWERS])
def test_mlflow_answers_of_the_wrong_shape(
    case: Case, answer: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    build(path)
    argv = [a.format(ledger=f"file:{path}") for a in case.argv if a != "--no-anchors"]
    with responses.RequestsMock() as mock:
        if isinstance(answer, str):
            mock.get(SEARCH, body=answer, content_type="text/html")
        else:
            mock.get(SEARCH, json=answer)
        code, output = run_in_process(argv, capsys, monkeypatch, env={"MLFLOW_TRACKING_URI": MLFLOW})
    assert_case(case, code, output)
