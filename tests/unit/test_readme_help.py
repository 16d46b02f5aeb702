"""`mlgate ... --help` and the README agree.

Both sides are derived, never listed here: the commands and options come from the CLI's own
parsers and their --help text, and the README side from its text and its CLI contract table. As
commands gain options, this test asks for them to be documented; as the table names options,
it asks the CLI to have them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from mlgate.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command: ("seal",), ..., ("audit", "show")."""
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.append((*prefix, name))
                    walk(child, (*prefix, name))

    walk(build_parser(), ())
    return found


def help_text(path: tuple[str, ...]) -> str:
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        code = main([*path, "--help"])
    assert code == 0
    return stream.getvalue()


def options_in_help(path: tuple[str, ...]) -> set[str]:
    """Every long option the help text names (option list, usage, description and epilog)."""
    return set(LONG_OPTION.findall(help_text(path)))


def contract_rows() -> list[str]:
    section = README.split("## CLI contract", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `mlgate")]


def test_every_command_is_in_the_readme() -> None:
    paths = command_paths()
    assert ("seal",) in paths and len(paths) >= 10
    for path in paths:
        words = r"\s+".join(map(re.escape, path))
        if len(path) == 1:
            assert re.search(rf"mlgate\s+{words}\b", README), (
                f"`mlgate {' '.join(path)}` is not in the README"
            )
        else:  # sub-commands may be listed after their parent: `mlgate audit show` / `verify`
            assert re.search(rf"mlgate\s+{path[0]}\b[^\n]*\b{path[-1]}\b", README), f"{path} not in README"


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "mlgate")
def test_every_long_option_of_the_help_is_in_the_readme(path: tuple[str, ...]) -> None:
    missing = sorted(opt for opt in options_in_help(path) if opt != "--help" and opt not in README)
    assert missing == [], f"`mlgate {' '.join(path)} --help` lists options the README does not mention"


def test_help_option_is_documented() -> None:
    assert "--help" in README


def test_contract_table_names_real_commands_and_options() -> None:
    rows = contract_rows()
    assert len(rows) >= 9, rows
    paths = command_paths()
    for row in rows:
        command = re.match(r"`mlgate ([a-z]+)", row)
        assert command, row
        name = command.group(1)
        assert (name,) in paths, f"the contract table names `mlgate {name}`, which the CLI does not have"
        subs = {p[1] for p in paths if p[0] == name and len(p) == 2}
        for word in re.findall(r"`(?:mlgate [a-z]+ )?([a-z]+)[^`]*`", row):
            if subs and word != name:
                assert word in subs, f"the table names `mlgate {name} {word}`, which the CLI does not have"
        offered = set().union(*(options_in_help(p) for p in paths if p[0] == name))
        for option in LONG_OPTION.findall(row):
            assert option in offered, f"the contract table gives `mlgate {name} {option}`, which --help lacks"


def test_the_option_scan_reads_real_help() -> None:
    assert {"--output", "--model", "--force", "--follow-internal-symlinks"} <= options_in_help(("seal",))
    assert "--manifest" in options_in_help(("verify",))
