"""Dependabot covers every pin this repository holds, and each action is pinned once, on its current major."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.packaging.conftest import ROOT

pytestmark = pytest.mark.packaging

PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)(/[\w./-]+)?@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\s*$", re.M)


def config() -> dict[str, list[str]]:
    updates = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text(encoding="utf-8"))["updates"]
    found: dict[str, list[str]] = {}
    for update in updates:
        found.setdefault(update["package-ecosystem"], []).extend(update.get("directories") or [update["directory"]])
        assert update["schedule"]["interval"] in ("daily", "weekly", "monthly")
    return found


def pinned_files() -> list[Path]:
    """Every file of the repository that pins an external action."""
    candidates = [ROOT / "action.yml", *(ROOT / ".github" / "workflows").glob("*.yml"),
                  *(ROOT / "templates").rglob("*.yml")]
    return [p for p in candidates if PIN.search(p.read_text(encoding="utf-8"))]


def test_dependabot_reads_every_file_that_pins_an_action() -> None:
    directories = config()["github-actions"]
    assert directories == ["/"]  # "/" is .github/workflows/*.yml plus the root action.yml, nothing else
    for path in pinned_files():
        relative = path.relative_to(ROOT).as_posix()
        assert relative == "action.yml" or relative.startswith(".github/workflows/"), (
            f"{relative} pins an action where Dependabot does not look")


def test_dependabot_covers_both_npm_projects() -> None:
    directories = config()["npm"]
    assert sorted(directories) == ["/", "/azure-pipelines-task/MlgateV1"]
    for directory in directories:
        folder = ROOT / directory.strip("/")
        assert (folder / "package.json").is_file() and (folder / "package-lock.json").is_file(), directory


def test_each_action_is_pinned_to_one_commit_with_its_version() -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in pinned_files():
        for repo, _sub, sha, version in PIN.findall(path.read_text(encoding="utf-8")):
            seen.setdefault(repo, set()).add((sha, version))
    assert seen
    for repo, pins in seen.items():
        assert len(pins) == 1, f"{repo} is pinned to more than one commit: {sorted(pins)} (update them together)"
