"""`record` and `audit show` in CI write a step summary worth reading: who, why, on what evidence, where."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from tests.fakes.ci import FakeAzureDevOps

from .helpers import register, write_evidence
from .test_record import _ci_env, record

pytestmark = pytest.mark.integration


def _summaries(folder: str) -> list[str]:
    return [p.read_text() for p in sorted(Path(folder).glob("mlgate-summary-*.md"), key=lambda p: p.stat().st_mtime)]


def test_record_and_audit_show_summaries_answer_the_audit_question(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), model.name, model.versions[0])
    fake = FakeAzureDevOps()
    with fake.server:
        _ci_env(monkeypatch, fake.env(), env["tmp"])
        assert record(env, model.ref(), platform="azure-devops") == 0
        out = capsys.readouterr().out
        assert "##[group]mlgate record: read the run's named approvers" in out
        [recorded] = _summaries(env["tmp"])
        assert recorded.startswith(f"## ✅ mlgate record: {model.name} v{model.versions[0]} → production")
        assert f"Alias `production` of `{model.name}` -> version {model.versions[0]}." in recorded
        assert "| User Name | azure-devops |" in recorded and "| Approving |" in recorded
        assert "**1 named approver(s)**; separation of duties checked against" in recorded
        assert "Evidence `sha256:" in recorded and "entry seq 1, head `1:" in recorded

        assert main(["audit", "show", model.ref(), "--ledger", env["ledger"], "--platform", "azure-devops"]) == 0
    shown = _summaries(env["tmp"])[1]
    assert shown.startswith(f"## mlgate audit show: ✅ `{model.ref()}` (version {model.versions[0]}) approved for "
                            "**production**")
    assert "| User Name | azure-devops |" in shown and "Approving" in shown
    assert "anchor on the version verified" in shown
    assert "### Lineage\n\n```mermaid\nflowchart LR" in shown


def test_audit_show_of_an_unrecorded_version_says_so(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded, other = register(env["uri"], 1), register(env["uri"], 1)
    write_evidence(Path("evidence/evidence.json"), recorded.name, recorded.versions[0])
    assert record(env, recorded.ref(), "--approver", "Ana", "--comment", "ok") == 0
    _ci_env(monkeypatch, {"TF_BUILD": "True"}, env["tmp"])
    assert main(["audit", "show", other.ref(), "--ledger", env["ledger"], "--platform", "azure-devops"]) == 1
    [shown] = _summaries(env["tmp"])
    assert shown.startswith(f"## mlgate audit show: ❌ no governed record — `{other.ref()}`")
    assert "entries chain-checked" in shown
