"""Logs people can read: log groups around phases, every failure an annotation (in full, at the file at
fault), step summaries worth reading, and the gate's Mermaid lineage with long tables folded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlgate.cli import main
from mlgate.errors import InvalidInputError
from mlgate.evidence import markdown
from mlgate.platforms.azure_devops import AzureDevOps
from mlgate.platforms.github import GitHubActions
from mlgate.platforms.local import Local
from tests.unit.evidence.test_evidence import build


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(__import__("os").environ):
        if name.startswith(("MLGATE_", "GITHUB_", "TF_BUILD", "MLFLOW_")):
            monkeypatch.delenv(name, raising=False)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"):
        (tmp_path / var).write_text("")
        env[var] = str(tmp_path / var)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith(("MLGATE_", "GITHUB_", "MLFLOW_")):
            monkeypatch.delenv(name, raising=False)
    temp = tmp_path / "agent"
    temp.mkdir()
    monkeypatch.setenv("TF_BUILD", "True")
    monkeypatch.setenv("AGENT_TEMPDIRECTORY", str(temp))
    return temp


# -- groups ------------------------------------------------------------------------------------------------
def test_groups_fold_a_phase_and_close_even_when_it_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), GitHubActions({"GITHUB_ACTIONS": "true"}).group("mlgate gate: policy"):
        print("inside")
        raise RuntimeError("boom")
    assert capsys.readouterr().out.splitlines() == ["::group::mlgate gate: policy", "inside", "::endgroup::"]
    with AzureDevOps({"TF_BUILD": "True"}).group("two\nlines ##vso[task.complete result=Succeeded]"):
        pass
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("##[group]two lines #\u200b#vso[") and lines[1] == "##[endgroup]"
    with Local({}).group("nothing"):
        pass
    assert capsys.readouterr().out == ""


def test_verify_groups_its_hashing_and_writes_a_summary_with_every_differing_file(
    github: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for i in range(14):
        (model / f"w{i}.bin").write_bytes(bytes([i]) * 64)
    assert main(["seal", str(model), "-o", str(tmp_path / "manifest.json"), "--platform", "local"]) == 0
    for i in range(12):
        (model / f"w{i}.bin").write_bytes(b"changed")
    capsys.readouterr()
    assert main(["verify", str(model), "--manifest", str(tmp_path / "manifest.json")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "::group::mlgate verify: hash 14 file(s) and compare with the seal"
    assert out.index("::endgroup::") < next(i for i, x in enumerate(out) if x.startswith("::error::"))
    summary = Path(github["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## mlgate verify: ❌ MISMATCH — 12 changed, 0 missing, 0 extra")
    assert "<details><summary>12 differing files</summary>" in summary  # more than 10 rows: folded
    assert summary.count("| changed | `w") == 12


# -- failures as annotations -------------------------------------------------------------------------------
BAD_POLICY = "version: 1\nrisk_classes:\n  high:\n    lineage: [no_such_link]\n"


def test_a_bad_policy_is_annotated_at_its_file_and_line_in_full(
    github: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policies" / "release.yml"
    policy.parent.mkdir()
    policy.write_text(BAD_POLICY)
    assert main(["gate", "models:/m/1", "--policy", str(policy), "--evidence-dir", str(tmp_path / "ev")]) == 2
    out, err = capsys.readouterr()
    [annotation] = [line for line in out.splitlines() if line.startswith("::error")]
    # relative to the checkout, so GitHub links the annotation to the line of the file
    assert annotation.startswith("::error file=policies/release.yml,line=4::mlgate gate: ")
    assert "no_such_link" in annotation and "how to fix" in annotation  # the whole message, hint included
    assert err.strip().startswith("error:")


def test_a_malformed_manifest_is_annotated_at_the_manifest_on_azure_devops(
    azure: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model").mkdir()
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"_type": "not in-toto"}')
    assert main(["verify", str(tmp_path / "model"), "--manifest", str(manifest)]) == 2
    [issue] = [line for line in capsys.readouterr().out.splitlines() if "task.logissue" in line]
    assert issue.startswith(f"##vso[task.logissue type=error;sourcepath={manifest};]mlgate verify: ")


def test_a_long_multi_line_failure_is_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    problems = "\n".join(f"  line {i}, key k{i}: problem {i} " + "x" * 200 for i in range(40))
    error = InvalidInputError(f"policy.yml: invalid policy (40 problem(s))\n{problems}", hint="fix them all",
                              source_file="policy.yml", source_line=1)
    GitHubActions({"GITHUB_ACTIONS": "true"}).report(error, "mlgate gate")
    [line] = capsys.readouterr().out.splitlines()
    assert line.count("%0A") == 41 and "problem 39 " + "x" * 200 in line and line.endswith("how to fix: fix them all")


# -- the gate's summary ----------------------------------------------------------------------------------
def test_gate_summary_draws_the_lineage_chain_and_folds_long_tables() -> None:
    md = markdown.render(build())
    block = md.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert block.startswith("flowchart LR\n")
    assert re.search(r'^  mv\["model version [^"]+"\]$', block, re.M)
    for edge in ("mv --> lm", "lm --> run", "run --> exp", "run --> git"):
        assert f"  {edge}" in block
    assert "<details><summary>50 files</summary>" in md  # the 500 differing files' table (first 50) is folded
    assert md.index("## mlgate gate:") < md.index("```mermaid")  # the verdict still comes first


def test_mermaid_labels_cannot_break_out_of_their_node() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(build()))
    doc["lineage"]["model"]["name"] = 'evil"] --> x["<b>pwn</b>`'
    block = markdown.render(doc).split("```mermaid\n", 1)[1].split("```", 1)[0]
    node = next(line for line in block.splitlines() if line.startswith("  mv["))
    assert node.count('"') == 2 and "<b>" not in node and "`" not in node  # one label, nothing after it
    assert len([line for line in block.splitlines() if "-->" in line]) == block.count("-->")  # no edge injected
