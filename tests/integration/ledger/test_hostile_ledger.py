"""Hostile ledgers against a real MLflow holding real anchors: emptied, deleted, re-created, forged.

A model with two versions is recorded (two `approved` entries, two `mlgate.ledger.head` anchors)
into a file ledger; each case then damages the ledger, an export or copy of it, or the anchor
tags, and `mlgate audit verify` must answer with the exact exit code and say what contradicts.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import Draft
from mlgate.ledger.base import entry_hash
from mlgate.ledger.file import FileLedger
from mlgate.lineage.mlflow import MlflowClient
from tests.hostile.harness import Case, assert_case, run_in_process
from tests.integration.governed.helpers import CI_VARS, Registered, register, write_evidence

pytestmark = pytest.mark.integration


@dataclass
class World:
    uri: str
    tmp: Path
    ledger: Path
    model: Registered

    def tag(self, version: int, key: str, value: str | None) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.uri)
        if value is None:
            client.delete_model_version_tag(self.model.name, self.model.versions[version], key)
        else:
            client.set_model_version_tag(self.model.name, self.model.versions[version], key, value)

    def head(self, version: int) -> str:
        from mlflow import MlflowClient

        mv = MlflowClient(self.uri).get_model_version(self.model.name, self.model.versions[version])
        return str(mv.tags["mlgate.ledger.head"])


@pytest.fixture
def world(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Iterator[World]:
    for name in CI_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    model = register(mlflow_server, 2)
    ledger = tmp_path / "ledger.jsonl"
    for i in range(2):
        write_evidence(tmp_path / "evidence" / "evidence.json", model.name, model.versions[i])
        assert main(["record", model.ref(i), "--platform", "local", "--ledger", f"file:{ledger}",
                     "--approver", "Ana Approver", "--comment", "reviewed"]) == 0
    capsys.readouterr()
    yield World(mlflow_server, tmp_path, ledger, model)


def rewrite(path: Path, target: Path | None = None, *, new_id: str | None = None, event: str | None = None) -> None:
    """Every entry with forged approvers (and optionally a new ledger_id / event), re-chained: a valid chain."""
    out, prev = [], "0" * 64
    for raw in path.read_bytes().splitlines():
        entry = json.loads(raw)
        entry["approvers"] = [{"name": "Mallory", "comment": "ok", "source": "local"}]
        if new_id and entry["seq"] == 1:
            entry["details"]["ledger_id"] = new_id
        if event:
            entry["event"] = event
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
        out.append(canonical_json(entry) + b"\n")
    (target or path).write_bytes(b"".join(out))


def export_of(body: Path, out: Path, **header: object) -> None:
    lines = body.read_bytes().splitlines(keepends=True)
    first = json.loads(lines[0]) if lines else None
    last = json.loads(lines[-1]) if lines else None
    doc: dict[str, object] = {
        "mlgate_ledger_export": 1, "exported_at": "2026-01-01T00:00:00Z", "source": None,
        "ledger_id": first["details"]["ledger_id"] if first else None, "entries": len(lines),
        "head": {"seq": last["seq"], "hash": last["hash"]} if last else None,
        "anchors": [{"where": "models:/x/1", "seq": last["seq"], "hash": last["hash"]}] if last else [],
    }
    doc.update(header)
    out.write_bytes(canonical_json(doc) + b"\n" + b"".join(lines))


NEW_ID = uuid.uuid4().hex


def _location(w: World) -> str:
    return f"file:{w.ledger.resolve()}"


def _copy(w: World) -> Path:
    target = w.tmp / "copy" / "ledger.jsonl"
    target.parent.mkdir(exist_ok=True)
    return target


DAMAGES: dict[str, Callable[[World], None]] = {
    "none": lambda w: None,
    "emptied": lambda w: w.ledger.write_bytes(b""),
    "deleted": lambda w: w.ledger.unlink(),
    "last-entry-dropped": lambda w: w.ledger.write_bytes(w.ledger.read_bytes().splitlines(keepends=True)[0]),
    "rewritten-same-id": lambda w: rewrite(w.ledger),
    "rewritten-new-id-in-place": lambda w: rewrite(w.ledger, new_id=NEW_ID),
    "rewritten-new-id-moved": lambda w: rewrite(w.ledger, _copy(w), new_id=NEW_ID),
    "rewritten-new-id-file": lambda w: rewrite(w.ledger, w.tmp / "forged.jsonl", new_id=NEW_ID),
    "export-new-id-real-source": lambda w: (rewrite(w.ledger, w.tmp / "body.jsonl", new_id=NEW_ID),
                                            export_of(w.tmp / "body.jsonl", w.tmp / "forged.jsonl",
                                                      source=_location(w))),
    "export-new-id-other-source": lambda w: (rewrite(w.ledger, w.tmp / "body.jsonl", new_id=NEW_ID),
                                             export_of(w.tmp / "body.jsonl", w.tmp / "forged.jsonl",
                                                       source="file:/elsewhere/ledger.jsonl")),
    "export-emptied": lambda w: ((w.tmp / "body.jsonl").write_bytes(b""),
                                 export_of(w.tmp / "body.jsonl", w.tmp / "forged.jsonl", source=_location(w))),
    "export-emptied-id-kept": lambda w: ((w.tmp / "body.jsonl").write_bytes(b""),
                                         export_of(w.tmp / "body.jsonl", w.tmp / "forged.jsonl",
                                                   ledger_id=json.loads(w.ledger.read_bytes().splitlines()[0])
                                                   ["details"]["ledger_id"])),
    "other-real-ledger-swapped-in": lambda w: (w.ledger.unlink(), FileLedger(w.ledger).append(
        Draft(event="approved", model="models:/another/1", stage="production",
              approvers=[{"name": "Mallory", "comment": "mine", "source": "local"}]))),
    "symlink-to-other-real-ledger": lambda w: (FileLedger(w.tmp / "other.jsonl").append(
        Draft(event="approved", model="models:/another/1", stage="production")), w.ledger.unlink(),
        w.ledger.symlink_to(w.tmp / "other.jsonl")),
    "re-id-and-location-tags-deleted": lambda w: (rewrite(w.ledger, new_id=NEW_ID),
                                                  w.tag(0, "mlgate.ledger.location", None),
                                                  w.tag(1, "mlgate.ledger.location", None)),
    "head-tag-malformed": lambda w: w.tag(0, "mlgate.ledger.head", "garbage"),
    "head-tag-beyond-end": lambda w: w.tag(0, "mlgate.ledger.head", "99:" + "a" * 64),
    "head-tag-copied-to-other-version": lambda w: w.tag(1, "mlgate.ledger.head", w.head(0)),
    "head-tag-wrong-hash": lambda w: w.tag(0, "mlgate.ledger.head", "1:" + "b" * 64),
    "approvals-turned-into-gated-elsewhere": lambda w: rewrite(w.ledger, _copy(w), new_id=NEW_ID, event="gated"),
    "only-gated-in-another-ledger": lambda w: FileLedger(_copy(w)).append(
        Draft(event="gated", model=w.model.ref(0), details={"passed": True})),
}

VERIFY = ("audit", "verify", "--ledger", "file:{ledger}")
COPY = ("audit", "verify", "--ledger", "file:{tmp}/copy/ledger.jsonl")
FILE = ("audit", "verify", "--file", "{tmp}/forged.jsonl")
REPLACED = "emptied, replaced or re-created"
OTHER = "which is not this ledger"

CASES = [
    (Case("honest", VERIFY, 0, says=("2 entries, chain intact", "2 anchor(s) on model versions match")), "none"),
    (Case("emptied", VERIFY, 1, says=("is empty", REPLACED)), "emptied"),
    (Case("emptied-export-refused", ("audit", "export", "--ledger", "file:{ledger}", "-o", "{tmp}/out.jsonl"), 1,
          says=(REPLACED,)), "emptied"),
    (Case("emptied-offline-only-warns", (*VERIFY, "--no-anchors"), 0, says=("no anchor was checked",)), "emptied"),
    (Case("deleted", VERIFY, 1, says=("no ledger at", "the ledger was deleted")), "deleted"),
    (Case("last-entry-dropped", VERIFY, 1, says=("names entry seq 2", "entries were removed")),
     "last-entry-dropped"),
    (Case("rewritten-same-id", VERIFY, 1, says=("the ledger was rewritten",)), "rewritten-same-id"),
    (Case("rewritten-new-id-in-place", VERIFY, 1, says=(REPLACED,)), "rewritten-new-id-in-place"),
    (Case("rewritten-new-id-moved", COPY, 1, says=("records the approval of models:/", OTHER)),
     "rewritten-new-id-moved"),
    (Case("rewritten-new-id-plain-file", FILE, 1, says=(OTHER,)), "rewritten-new-id-file"),
    (Case("export-new-id-matching-header", FILE, 1, says=(REPLACED,)), "export-new-id-real-source"),
    (Case("export-new-id-other-source", FILE, 1, says=(OTHER,)), "export-new-id-other-source"),
    (Case("export-emptied", FILE, 1, says=("is empty", REPLACED)), "export-emptied"),
    (Case("export-emptied-id-kept", FILE, 1, says=("the ledger is empty", "entries were removed")),
     "export-emptied-id-kept"),
    (Case("other-real-ledger-swapped-in", VERIFY, 1, says=(REPLACED,)), "other-real-ledger-swapped-in"),
    (Case("symlink-to-other-real-ledger", VERIFY, 1, says=(REPLACED,)), "symlink-to-other-real-ledger"),
    (Case("re-id-and-location-tags-deleted", VERIFY, 1, says=(OTHER, "(no location tag)")),
     "re-id-and-location-tags-deleted"),
    (Case("head-tag-malformed", VERIFY, 1, says=("is malformed",)), "head-tag-malformed"),
    (Case("head-tag-beyond-end", VERIFY, 1, says=("names entry seq 99", "entries were removed")),
     "head-tag-beyond-end"),
    (Case("head-tag-copied-to-other-version", VERIFY, 1, says=("not this version",)),
     "head-tag-copied-to-other-version"),
    (Case("head-tag-wrong-hash", VERIFY, 1, says=("the ledger was rewritten",)), "head-tag-wrong-hash"),
    (Case("approvals-turned-into-gated-elsewhere-required", (*COPY, "--require-anchors"), 1,
          says=("--require-anchors",)), "approvals-turned-into-gated-elsewhere"),
    (Case("show-after-emptied", ("audit", "show", "{ref}", "--ledger", "file:{ledger}"), 1, says=(REPLACED,)),
     "emptied"),
    (Case("show-after-deleted", ("audit", "show", "{ref}", "--ledger", "file:{ledger}"), 1,
          says=("the ledger was deleted",)), "deleted"),
    (Case("show-after-rewritten-same-id", ("audit", "show", "{ref}", "--ledger", "file:{ledger}"), 1,
          says=("the ledger was rewritten",)), "rewritten-same-id"),
    (Case("only-gated-in-another-ledger-is-no-tampering", COPY, 0, says=("1 entries, chain intact",)),
     "only-gated-in-another-ledger"),
]


@pytest.mark.parametrize(("case", "damage"), CASES, ids=[c.id for c, _ in CASES])
def test_hostile_ledger_with_anchors(
    case: Case, damage: str, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    DAMAGES[damage](world)
    argv = [a.format(ledger=world.ledger, tmp=world.tmp, ref=world.model.ref(1)) for a in case.argv]
    code, output = run_in_process(argv, capsys, monkeypatch, env={"MLFLOW_TRACKING_URI": world.uri})
    assert_case(case, code, output)
    if argv[:2] == ["audit", "export"]:
        assert not (world.tmp / "out.jsonl").exists()


def test_anchor_searches_are_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One paged search per filter and per recorded registered model, not one request per entry."""
    from mlgate.ledger import anchors

    calls: list[str] = []
    real = anchors.search

    def counting(client: MlflowClient, query: str) -> list[anchors.Anchor]:
        calls.append(query)
        return real(client, query)

    monkeypatch.setattr(anchors, "search", counting)
    shutil.copy(world.ledger, world.tmp / "again.jsonl")
    assert main(["audit", "verify", "--ledger", f"file:{world.ledger}"]) == 0
    assert len(calls) == 3  # by identity, by location, by the one registered model
    assert any(q.startswith("name = ") for q in calls)
