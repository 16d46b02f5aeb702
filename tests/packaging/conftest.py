"""Shared helpers of the packaging tests: repository paths and the external tools they need.

Every tool is required: a missing one fails the test with what to install (``make setup``).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASK_DIR = ROOT / "azure-pipelines-task" / "MlgateV1"
SCHEMAS = ROOT / "tests" / "schemas"


def tool(name: str) -> str:
    """Path of an executable: next to this Python first (the venv), then PATH; fail when absent."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is required by the packaging tests; run `make setup`")
    return found


def node_bin(name: str) -> str:
    path = ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing; run `make setup` (npm ci at the repository root)")
    return str(path)


def task_node_modules() -> Path:
    path = TASK_DIR / "node_modules" / "azure-pipelines-task-lib"
    if not path.exists():
        pytest.fail(
            "the task's node_modules are missing; run `make setup` (npm ci in azure-pipelines-task/MlgateV1)"
        )
    return path


# -- the CLI's own parsers, to check that packaging passes only options that exist ---------------------


def command_parsers() -> dict[str, Any]:
    """``{"seal": parser, ..., "audit show": parser}``: every command and sub-command parser."""
    import argparse

    from mlgate.cli import build_parser

    found: dict[str, Any] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    key = f"{prefix} {name}".strip()
                    found[key] = child
                    walk(child, key)

    walk(build_parser(), "")
    return found


def long_options(parser: Any) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def option_action(parser: Any, flag: str) -> Any:
    for action in parser._actions:
        if flag in action.option_strings:
            return action
    raise KeyError(flag)


def is_switch(parser: Any, flag: str) -> bool:
    """True for an on/off option (store_true): what a boolean input may map to."""
    import argparse

    return isinstance(option_action(parser, flag), argparse._StoreTrueAction)


def options_table() -> list[tuple[str, str, str, list[str]]]:
    """The shim's OPTIONS table: (task input, mlgate option, kind (string, path, bool, lines), commands)."""
    text = (TASK_DIR / "index.js").read_text(encoding="utf-8")
    rows = re.findall(r"^\s*\['(\w+)', '(--[a-z-]+)', '(string|path|bool|lines)', \[([^\]]*)\]\],?$", text, re.M)
    table = [(i, f, k, re.findall(r"'([a-z-]+)'", c)) for i, f, k, c in rows]
    assert table, "could not read OPTIONS from index.js"
    return table


# -- the built distributions, once per session --------------------------------------------------------


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build`` of this tree: {"wheel": path, "sdist": path}."""
    import subprocess

    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [wheel] = out.glob("mlgate-*-py3-none-any.whl")
    [sdist] = out.glob("mlgate-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}
