"""Evidence pack: its own digest, the Markdown rendering and the plain-text summary."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mlgate.errors import Error, InvalidInputError, RefusedError
from mlgate.evidence import markdown, pack
from mlgate.gate import summarize
from mlgate.platforms.base import CIContext
from mlgate.policy import parse_policy
from mlgate.policy.engine import evaluate
from mlgate.policy.rules import IntegrityResult
from mlgate.refs import ModelRef
from tests.unit.policy.test_policy import GOOD_METRICS, POLICY, lineage

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def build(**kwargs: object) -> dict[str, object]:
    policy = parse_policy(POLICY)
    lin = lineage(tags={"owner": "a|b", "use_case": "uc"}, metrics=GOOD_METRICS)
    integrity = IntegrityResult("directory", "a" * 64, files_checked=3, changed=[f"f{i}" for i in range(500)])
    evaluation = evaluate(policy, lin, integrity)
    return pack.build(ref=ModelRef.parse("m@prod"), lineage=lin, evaluation=evaluation, integrity=integrity,
                      policy=policy, ci=CIContext(platform="github", run_url="https://ci/run/1", requester="dev"),
                      stage=None, now=NOW)


def test_evidence_digest_covers_everything_but_itself() -> None:
    doc = build()
    assert doc["schema_version"] == "1" and doc["generated_at"] == "2026-01-02T03:04:05+00:00"
    assert doc["evidence_sha256"] == pack.digest(doc)
    doc["decision"]["passed"] = True  # type: ignore[index]
    assert doc["evidence_sha256"] != pack.digest(doc)


def test_markdown_verdict_first_tables_escaped_and_bounded() -> None:
    doc = build()
    md = markdown.render(doc)
    first = md.splitlines()[0]
    assert first == "## mlgate gate: ❌ REFUSED — `models:/m@prod`"
    assert "**2 of 11 rules failed:**" in md and "`tags.rollback_plan`" in md and "`integrity.matches`" in md
    assert "| ❌ | `tags.rollback_plan` |" in md
    assert "### Files differing from the seal (500 changed, 0 missing, 0 extra; first 50 of each)" in md
    assert md.count("| changed |") == 50
    assert "https://ci/run/1" in md
    assert len(md.encode()) < 1 << 20


def test_summary_is_short_plain_text() -> None:
    doc = build()
    text = summarize(pack.Evidence.from_document(doc))
    assert text.startswith("mlgate gate: REFUSED models:/m@prod (risk class high): 2 of 11")
    assert "- tags.rollback_plan: tag 'rollback_plan' is missing or empty" in text
    assert len(summarize(pack.Evidence.from_document(doc), limit=200).encode()) <= 200


def test_cell_escaping() -> None:
    assert markdown.cell("a|b\nc<script>") == "a\\|b c&lt;script&gt;"


def test_evidence_round_trips_through_its_json_bytes() -> None:
    import json

    doc = build()
    evidence = pack.Evidence.from_document(doc)
    data = evidence.to_json()
    assert data == (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    again = pack.Evidence.from_json(data, source="evidence.json")
    assert again == evidence and again.to_json() == data
    assert again.sha256 == again.digest() == doc["evidence_sha256"]
    assert again.model == pack.EvidenceModel("models:/m@prod", "m", "1", "prod")
    assert not again.decision.passed and "tags.rollback_plan" in again.decision.failed_rules
    assert again.risk_class == "high" and again.manifest_sha256 == "a" * 64


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["decision"].update(passed="yes"), "decision.passed: expected a boolean, got a string"),
    (lambda d: d.update(model="m/1"), "model: expected an object, got a string"),
    (lambda d: d["model"].update(name=7), "model.name: expected a string, got a number"),
    (lambda d: d["decision"].update(failed_rules="x"), "decision.failed_rules: expected a list, got a string"),
    (lambda d: d["rules"][0].update(passed=None), "rules[0].passed: expected a boolean, got null"),
    (lambda d: d.update(stage=["production"]), "stage: expected a string, got a list"),
])
def test_a_wrong_typed_field_of_a_users_evidence_is_exit_2_naming_it(change: Any, field: str) -> None:
    import json

    doc = build()
    change(doc)
    doc["evidence_sha256"] = pack.digest(doc)
    with pytest.raises(InvalidInputError) as info:
        pack.Evidence.from_json(json.dumps(doc), source="ev.json")
    assert info.value.exit_code == 2
    assert "ev.json" in info.value.message and field in info.value.message


@pytest.mark.parametrize(("data", "expected", "code"), [
    (b"<html>", "not JSON", 2),
    (b"[]", "not an mlgate evidence pack", 2),
    (b'{"evidence_sha256": "x"}', "field model", 2),
    (b"[" * 100 + b"]" * 100, "nested deeper", 2),
    (b'{"a": 1' + b"0" * 5000 + b"}", "digits", 2),
])
def test_malformed_evidence_is_exit_2(data: bytes, expected: str, code: int) -> None:
    with pytest.raises(Error) as info:
        pack.Evidence.from_json(data, source="ev.json")
    assert info.value.exit_code == code and expected in info.value.message


def test_evidence_changed_after_the_gate_is_exit_1() -> None:
    import json

    doc = build()
    doc["decision"]["passed"] = True  # type: ignore[index]
    with pytest.raises(RefusedError, match="changed after the gate wrote it"):
        pack.Evidence.from_json(json.dumps(doc), source="ev.json")
