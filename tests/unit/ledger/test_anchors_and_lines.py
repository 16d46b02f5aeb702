"""Anchor tags parsed from MLflow model versions; stream re-cutting into lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.ledger import TamperedError
from mlgate.ledger.anchors import collect, parse_anchor
from mlgate.ledger.azure_blob import split_lines
from mlgate.ledger.base import Draft, chain, verify_lines
from mlgate.lineage.records import ModelVersion


def test_parse_anchor() -> None:
    assert parse_anchor("12:" + "a" * 64) == (12, "a" * 64)
    for bad in ("0:" + "a" * 64, "12:" + "A" * 64, "12:abc", "x:" + "a" * 64, ""):
        assert parse_anchor(bad) is None


def test_collect_reads_dict_and_list_tags_and_keeps_malformed_ones() -> None:
    versions = [
        {"name": "m", "version": "1", "tags": [{"key": "mlgate.ledger.head", "value": "1:" + "b" * 64}]},
        {"name": "m", "version": "2", "tags": {"mlgate.ledger.head": "garbage"}},
        {"name": "m", "version": "3", "tags": {"other": "x"}},
    ]
    anchors = collect(ModelVersion.from_json(v, "test") for v in versions)
    assert anchors[1][0] == ("models:/m/1", "b" * 64)
    assert "malformed tag" in anchors[1][1][0]
    one = chain(Draft(event="approved", model="models:/m/2"), None).line()
    with pytest.raises(TamperedError, match=r"anchor on models:/m/2 \(malformed tag 'garbage'\)"):
        verify_lines([one], anchors={1: [anchors[1][1]]})


def test_split_lines_recuts_chunks_and_keeps_a_torn_tail() -> None:
    chunks = [b'{"a":1}\n{"b"', b":2}\n", b"", b'{"c":3}']
    assert list(split_lines(iter(chunks))) == [b'{"a":1}\n', b'{"b":2}\n', b'{"c":3}']


def test_audit_show_refuses_an_anchor_that_names_another_versions_entry(tmp_path: Path) -> None:
    """Version 3 carries (a copy of) version 2's ledger-head tag: the answer is tampering, not 'approved'."""
    from mlgate.ledger import Draft, TamperedError, open_ledger
    from mlgate.ledger.anchors import anchor_name
    from mlgate.ledger.show import audit_answer
    from mlgate.lineage.mlflow import NotFound

    ledger = open_ledger(f"file:{tmp_path / 'l.jsonl'}")
    entry, _ = ledger.append(
        Draft(event="approved", model="models:/m/2", stage="production",
              approvers=[{"name": "alice", "comment": "ok", "source": "local"}], evidence_sha256="a" * 64, key="k")
    )

    class Client:
        def resolve(self, ref: object) -> ModelVersion:
            return ModelVersion("m", "3", tags={"mlgate.ledger.head": entry.anchor,
                                                "mlgate.ledger": anchor_name(ledger)})

        def __getattr__(self, name: str) -> object:
            def missing(*args: object, **kwargs: object) -> object:
                raise NotFound("not in this test")

            return missing

    with pytest.raises(TamperedError, match="records 'models:/m/2', not this version"):
        audit_answer("m/3", ledger, client=Client())  # type: ignore[arg-type]
