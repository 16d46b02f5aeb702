"""`mlgate secrets` in CI writes a step summary naming what was handed over, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.cli import main
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.secrets.helpers import apply, github_runner, managed_env

pytestmark = pytest.mark.integration


def test_summary_names_each_secret_and_where_it_went_but_no_value(
    azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("api-key", "VALUE-CANARY-1")
    azure.add_secret("db-password", "VALUE-CANARY-2")
    assert main(["secrets", "--vault", azure.vault_url, "--secrets", "api-key,db-password:DB"]) == 0
    capsys.readouterr()
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## mlgate secrets: 2 secret(s) handed over")
    assert f"From `{azure.vault_url}" in summary and "**managed** identity" in summary
    assert "| `api-key` | `API_KEY` |" in summary and "| `db-password` | `DB` |" in summary
    assert "step outputs" in summary
    assert "VALUE-CANARY" not in summary


def test_partial_summary_lists_what_was_not_handed_over(
    azure: FakeAzure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = apply(monkeypatch, managed_env(azure), github_runner(tmp_path))
    azure.add_secret("present", "VALUE-CANARY-3")
    assert main(["secrets", "--vault", azure.vault_url, "--secrets", "present,absent", "--allow-partial"]) == 0
    capsys.readouterr()
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## mlgate secrets: 1 secret(s) handed over")
    assert "**Not handed over** (`--allow-partial`)" in summary and "| `absent` |" in summary
    assert "VALUE-CANARY" not in summary
