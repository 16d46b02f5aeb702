"""A ledger copied elsewhere and rewritten in full is caught by the MLflow anchors (found by ledger_id)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import open_ledger
from mlgate.ledger.base import entry_hash

from .helpers import register, version_tags, write_evidence

pytestmark = pytest.mark.integration


def rewrite_in_full(path: Path) -> None:
    """Change every entry's approvers and re-chain: a rewrite the hash chain alone cannot catch."""
    lines, prev = [], "0" * 64
    for raw in path.read_bytes().splitlines():
        entry = json.loads(raw)
        entry["approvers"] = [{"name": "mallory", "comment": "ok"}] if entry["approvers"] else []
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
        lines.append(canonical_json(entry) + b"\n")
    path.write_bytes(b"".join(lines))


def test_rewritten_copy_at_another_path_is_caught(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path(env["tmp"]) / "evidence" / "evidence.json", model.name, model.versions[0])
    ref = model.ref()
    assert main(["record", ref, "--platform", "local", "--ledger", env["ledger"],
                 "--approver", "Ana Approver", "--comment", "reviewed"]) == 0
    original = open_ledger(env["ledger"])
    tags = version_tags(env["uri"], model.name, model.versions[0])
    assert tags["mlgate.ledger"] == original.identity() != original.location
    assert tags["mlgate.ledger.location"] == original.location

    copy = tmp_path / "auditor" / "ledger.jsonl"
    copy.parent.mkdir()
    shutil.copy(original.path, copy)  # type: ignore[attr-defined]
    capsys.readouterr()
    assert main(["audit", "verify", "--ledger", f"file:{copy}"]) == 0  # an honest copy finds its anchor
    assert "1 anchor(s) on model versions match" in capsys.readouterr().out

    rewrite_in_full(copy)
    assert main(["audit", "verify", "--ledger", f"file:{copy}"]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err
    assert main(["audit", "verify", "--file", str(copy)]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err


def test_an_export_rewritten_with_its_header_is_caught(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path(env["tmp"]) / "evidence" / "evidence.json", model.name, model.versions[0])
    assert main(["record", model.ref(), "--platform", "local", "--ledger", env["ledger"],
                 "--approver", "Ana Approver", "--comment", "reviewed"]) == 0
    export = tmp_path / "export.jsonl"
    assert main(["audit", "export", "--ledger", env["ledger"], "-o", str(export)]) == 0
    header, *body = export.read_bytes().splitlines(keepends=True)
    ledger = tmp_path / "body.jsonl"
    ledger.write_bytes(b"".join(body))
    rewrite_in_full(ledger)
    head = json.loads(ledger.read_bytes().splitlines()[-1])
    fake = dict(json.loads(header), anchors=[{"where": "x", "seq": head["seq"], "hash": head["hash"]}],
                head={"seq": head["seq"], "hash": head["hash"]})
    export.write_bytes(canonical_json(fake) + b"\n" + ledger.read_bytes())
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(export), "--no-anchors"]) == 0  # offline: undetectable
    assert "no anchor was checked" in capsys.readouterr().err
    assert main(["audit", "verify", "--file", str(export)]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err
