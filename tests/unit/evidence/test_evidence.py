"""Evidence pack: its own digest, the Markdown rendering and the plain-text summary."""

from __future__ import annotations

import datetime

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
    text = summarize(doc)
    assert text.startswith("mlgate gate: REFUSED models:/m@prod (risk class high): 2 of 11")
    assert "- tags.rollback_plan: tag 'rollback_plan' is missing or empty" in text
    assert len(summarize(doc, limit=200).encode()) <= 200


def test_cell_escaping() -> None:
    assert markdown.cell("a|b\nc<script>") == "a\\|b c&lt;script&gt;"
