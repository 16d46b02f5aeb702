"""Entry point of the composite GitHub Action (``action.yml``): ``python -m mlgate.github_action``.

The action never pastes an input into a shell command. Inputs arrive as environment variables:

* options as ``MLGATE_<OPTION>`` (read by :func:`mlgate.cli._apply_env_defaults`, so a new CLI
  option needs only one input and one ``env:`` line in ``action.yml``);
* the command and its positional arguments as ``ACTION_MLGATE_COMMAND``, ``ACTION_MLGATE_REF``,
  ``ACTION_MLGATE_DIRECTORY`` and ``ACTION_MLGATE_MODEL_NAME``, turned here into an explicit argument
  list.

After the CLI ran, the step's ``exit_code`` and ``result`` outputs (for gate also ``decision`` and
``evidence_path``) and a one-line verdict in the job summary are written; the exit code of the step
is the CLI's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from mlgate.errors import EXIT_OK, EXIT_REFUSED, EXIT_UNEVALUATED, EXIT_USAGE, UsageError

COMMAND_ENV = "ACTION_MLGATE_COMMAND"
REF_ENV = "ACTION_MLGATE_REF"
DIRECTORY_ENV = "ACTION_MLGATE_DIRECTORY"
MODEL_NAME_ENV = "ACTION_MLGATE_MODEL_NAME"

# command words -> the positional arguments it takes, in order ("ref", "directory").
# "directory?" is optional (seal DIR or seal --model REF).
COMMANDS: dict[str, tuple[str, ...]] = {
    "seal": ("directory?",),
    "verify": ("directory",),
    "lineage": ("ref",),
    "gate": ("ref",),
    "secrets": (),
    "record": ("ref",),
    "rollback": ("model-name",),
    "audit show": ("ref",),
    "audit verify": (),
    "audit export": (),
}

RESULTS = {
    EXIT_OK: "passed",
    EXIT_REFUSED: "refused",
    EXIT_USAGE: "configuration-error",
    EXIT_UNEVALUATED: "could-not-evaluate",
}


def build_argv(environ: Mapping[str, str]) -> list[str]:
    """The mlgate argument list for the inputs in ``environ``; UsageError names the bad input."""
    words = environ.get(COMMAND_ENV, "").split()
    command = " ".join(words)
    if command not in COMMANDS:
        raise UsageError(
            f"input 'command' is {command!r}, which is not an mlgate command this action runs",
            hint="set 'command' to one of: " + ", ".join(COMMANDS),
        )
    values = {
        "ref": environ.get(REF_ENV, "").strip(),
        "directory": environ.get(DIRECTORY_ENV, "").strip(),
        "model-name": environ.get(MODEL_NAME_ENV, "").strip(),
    }
    argv = list(words)
    for spec in COMMANDS[command]:
        name = spec.rstrip("?")
        value = values[name]
        if value:
            if value.startswith("-"):
                raise UsageError(
                    f"input '{name}' must not start with '-': {value!r}",
                    hint=f"give the {name} itself, e.g. ./model or models:/NAME/VERSION",
                )
            argv.append(value)
        elif not spec.endswith("?"):
            raise UsageError(
                f"`mlgate {command}` needs the input '{name}'",
                hint=f"add `{name}:` under `with:` of the mlgate step",
            )
    return argv


def check_inputs(environ: Mapping[str, str]) -> None:
    """Every option input (``MLGATE_<OPTION>``) checked against the CLI option it sets, before anything runs:
    a value no command could take (``serialization: zip``, ``shard-size: big``) is a UsageError naming the input."""
    import argparse

    from mlgate.cli import build_parser, env_default_error

    pending = [build_parser(env_defaults=False)]
    while pending:
        for action in pending.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
                continue
            if not action.option_strings:
                continue
            variable = "MLGATE_" + action.dest.upper()
            value = environ.get(variable, "")
            problem = env_default_error(action, value) if value else None
            if problem is not None:
                name = action.dest.replace("_", "-")
                raise UsageError(f"input '{name}' is not valid: {problem.message}", hint=problem.hint)


def result_name(code: int) -> str:
    return RESULTS.get(code, "could-not-evaluate")


def _append(path: str | None, text: str) -> None:
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
    except OSError as exc:
        sys.stderr.write(f"warning: cannot append to {path}: {exc.strerror}\n")


def gate_outputs(argv: Sequence[str], code: int) -> dict[str, str]:
    """``decision`` and ``evidence_path`` of a gate run, from its exit code and its own options.

    The decision is the exit code's meaning (0 passed, 1 refused); any other code is no decision.
    The evidence path is given only when the gate wrote the file.
    """
    if not argv or argv[0] != "gate" or code not in (EXIT_OK, EXIT_REFUSED):
        return {}
    from mlgate.cli import build_parser

    values = {"decision": RESULTS[code]}
    try:
        namespace = build_parser().parse_args(list(argv))
    except SystemExit:
        return values
    evidence_dir = getattr(namespace, "evidence_dir", None)
    if evidence_dir:
        evidence = os.path.abspath(os.path.join(evidence_dir, "evidence.json"))
        if os.path.isfile(evidence):
            values["evidence_path"] = evidence
    return values


def report(
    command: str, code: int, environ: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> None:
    """Write the step outputs ``exit_code``, ``result`` (and ``extra``) and the job summary's verdict line."""
    result = result_name(code)
    lines = f"exit_code={code}\nresult={result}\n"
    for name, value in (extra or {}).items():
        if "\n" not in value and "\r" not in value:  # one-line file command; never a heredoc from us
            lines += f"{name}={value}\n"
    _append(environ.get("GITHUB_OUTPUT"), lines)
    icon = ":white_check_mark:" if code == EXIT_OK else ":x:"
    _append(environ.get("GITHUB_STEP_SUMMARY"), f"\n{icon} **mlgate {command}**: {result} (exit {code})\n")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    from mlgate import cli
    from mlgate.console import err

    env = os.environ if environ is None else environ
    extra = list(argv or [])
    try:
        check_inputs(env)
        args = build_argv(env) + extra
    except UsageError as exc:
        err(exc.diagnostics())
        report("(invalid input)", EXIT_USAGE, env)
        return EXIT_USAGE
    code = cli.main(args)
    report(" ".join(args[:2] if args[0] == "audit" else args[:1]), code, env, gate_outputs(args, code))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
