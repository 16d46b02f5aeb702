"""Start-up: a command loads only what it needs, and the lazily built command line is the eager one.

Structural checks, not timings (those are in benchmarks/startup.py): each command runs in a fresh
interpreter and the modules it imported are listed from ``sys.modules``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate import __version__, cli

HEAVY = ("requests", "urllib3", "rich", "yaml", "jsonschema", "cryptography", "mlflow", "azure", "msal", "github")

_LIST_MODULES = """
import sys
from mlgate.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def imported(argv: list[str], tmp_path: Path) -> tuple[int, set[str]]:
    """Exit code and every module loaded by ``mlgate ARGV`` in a fresh interpreter (no MLGATE_* set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLGATE_", "GITHUB_", "TF_BUILD"))}
    proc = subprocess.run([sys.executable, "-c", _LIST_MODULES, *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, check=False, timeout=120)
    line = proc.stderr.rsplit("\nMODULES ", 1)
    assert len(line) == 2, proc.stderr
    return proc.returncode, set(line[1].split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names or m in names)


def model(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "model.bin").write_bytes(b"x" * 4096)
    return directory


def test_seal_loads_no_heavy_library_and_no_other_command(tmp_path: Path) -> None:
    code, modules = imported(["seal", str(model(tmp_path)), "-o", str(tmp_path / "m.json")], tmp_path)
    assert code == 0
    assert (tmp_path / "m.json").is_file()
    assert loaded(modules, HEAVY) == []
    others = [f"mlgate.commands.{name}" for name in cli.COMMANDS if name != "seal"]
    assert sorted(set(others) & modules) == []
    assert "mlgate.commands.seal" in modules
    assert "logging" not in modules  # configured only once something loads it (test below)
    assert loaded(modules, ("mlgate.platforms.github", "mlgate.platforms.azure_devops")) == []  # not in a CI


def test_verify_loads_no_heavy_library(tmp_path: Path) -> None:
    directory = model(tmp_path)
    manifest = tmp_path / "m.json"
    assert cli.main(["seal", str(directory), "-o", str(manifest)]) == 0
    code, modules = imported(["verify", str(directory), "--manifest", str(manifest)], tmp_path)
    assert code == 0
    assert loaded(modules, HEAVY) == []


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    code, modules = imported(["--help"], tmp_path)
    assert code == 0
    assert loaded(modules, HEAVY) == []
    assert {f"mlgate.commands.{name}" for name in cli.COMMANDS} <= modules  # each one's one-line help


# -- the lazily built command line against the eager one ------------------------------------------------


def eager_parser() -> argparse.ArgumentParser:
    """The command line built as before commands were loaded lazily: every command's parser up front."""
    parser = argparse.ArgumentParser(
        prog="mlgate", description=cli.build_parser().description, epilog=cli.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[cli._common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"mlgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = cli._common_options(top=False)
    for name in cli.COMMANDS:
        cmd = importlib.import_module(f"mlgate.commands.{name}").add_parser(sub, common)
        if name in cli.MLFLOW_COMMANDS:
            cli._timeout_options(cmd)
    return parser


Parsers = dict[tuple[str, ...], argparse.ArgumentParser]


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Parsers:
    found: Parsers = {prefix: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.update(subcommands(child, (*prefix, name)))
    return found


@pytest.fixture()
def fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    for name in [n for n in os.environ if n.startswith("MLGATE_")]:
        monkeypatch.delenv(name)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.usefixtures("fixed_width")
def test_every_help_is_the_eager_parsers() -> None:
    eager = subcommands(eager_parser())
    assert len(eager) > len(cli.COMMANDS)  # the top level, every command and the sub-commands (audit show, ...)
    assert set(subcommands(cli.build_parser())) == set(eager)
    for path, parser in eager.items():
        assert run_main([*path, "--help"]) == (0, parser.format_help(), ""), path


@pytest.mark.usefixtures("fixed_width")
@pytest.mark.parametrize("argv", [["sael"], [], ["--deadline", "x", "seal"], ["seal", "--bogus"], ["audit"],
                                  ["audit", "shw"], ["-v", "verify"]])
def test_usage_errors_are_the_eager_parsers(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        eager_parser().parse_args(argv)
    expected = capsys.readouterr().err
    assert raised.value.code == 2
    assert run_main(argv) == (2, "", expected)


def test_the_lazy_parser_builds_only_the_command_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MLGATE_")]:
        monkeypatch.delenv(name)
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert isinstance(commands, cli._Parsers)
    args = parser.parse_args(["seal", "DIR"])
    assert args.command == "seal" and args.directory == "DIR" and args._module.__name__ == "mlgate.commands.seal"
    assert list(commands._built) == ["seal"]


def test_command_options_table_matches_the_parsers() -> None:
    """cli.COMMAND_OPTIONS names every option of every command (a set MLGATE_* of any is checked up front)."""
    top = {a.dest for a in cli.build_parser()._actions if a.option_strings}
    eager = subcommands(eager_parser())
    for name in cli.COMMANDS:
        dests = {a.dest for path, parser in eager.items() if path[:1] == (name,) for a in parser._actions
                 if a.option_strings and a.dest not in ("help", "version")} - top
        assert set(cli.COMMAND_OPTIONS[name].split()) == dests, name


def test_a_malformed_option_of_another_command_is_still_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("MLGATE_PORT", "eighty")  # serve's --port, while seal runs
    code, out, err = run_main(["seal", str(model(tmp_path)), "-o", str(tmp_path / "m.json")])
    assert code == 2 and out == ""
    assert "MLGATE_PORT='eighty' is not a valid value for --port" in err
    assert not (tmp_path / "m.json").exists()


_LOG_LATE = """
import sys
from mlgate import redact
from mlgate.logsetup import configure_when_imported

configure_when_imported(int(sys.argv[1]))
assert "logging" not in sys.modules
redact.register("s3cr3t-value")
import logging  # what a library imported later would do

assert type(logging.__loader__).__name__ == "SourceFileLoader", logging.__loader__
assert logging.__spec__.loader is logging.__loader__
logging.getLogger("urllib3").warning("token s3cr3t-value")
logging.getLogger("urllib3").info("urllib3 detail")
logging.getLogger("mlgate.x").info("mlgate step")
"""


@pytest.mark.parametrize(("verbosity", "lines"), [
    (0, ["WARNING urllib3: token ***"]),
    (1, ["WARNING urllib3: token ***", "INFO mlgate.x: mlgate step"]),
    (2, ["WARNING urllib3: token ***", "INFO urllib3: urllib3 detail", "INFO mlgate.x: mlgate step"]),
])
def test_logging_loaded_later_is_configured_and_redacted(verbosity: int, lines: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _LOG_LATE, str(verbosity)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == lines
    assert "s3cr3t" not in proc.stderr + proc.stdout
