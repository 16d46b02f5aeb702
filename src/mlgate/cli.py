"""Command-line entry point: argument parsing, environment defaults, one error handler.

Each command lives in its own module under :mod:`mlgate.commands` and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Those modules import only the
standard library at import time, so ``mlgate --help`` stays fast; heavy libraries are
imported inside ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from mlgate import __version__
from mlgate.console import err
from mlgate.deadline import DEFAULT_SECONDS
from mlgate.errors import EXIT_UNEVALUATED, EXIT_USAGE, Error, UsageError
from mlgate.platforms.detect import NAMES as PLATFORM_NAMES

# The CLI contract, in the order shown by --help.
COMMANDS = ("seal", "verify", "lineage", "gate", "secrets", "serve", "record", "rollback", "audit", "demo")

EPILOG = """\
exit codes:
  0  passed
  1  the gate said no (mismatch, untraceable, policy refused, duty conflict, tampering)
  2  usage or configuration error
  3  could not evaluate (network, service, timeout, unreadable input); never a pass

Every option also reads an MLGATE_<OPTION> environment variable (for example
--evidence-dir from MLGATE_EVIDENCE_DIR), so pipeline inputs map onto flags.
MLflow is reached through MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN and
MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD.
"""

PLATFORMS = ("auto", *PLATFORM_NAMES)  # the registered platform back-ends (mlgate.platforms.detect)
MLFLOW_COMMANDS = ("seal", "verify", "lineage", "gate", "record", "rollback", "audit")  # they talk to MLflow

# The options of each command beyond the common ones (argparse dests; tests/unit/test_startup.py checks
# this against the parsers). A command's parser is built only when it runs, or when one of these is set
# as MLGATE_<OPTION>: a malformed value is exit 2 whichever command runs, as when all were built up front.
COMMAND_OPTIONS: dict[str, str] = {
    "seal": "output model force follow_internal_symlinks serialization shard_size sign signature ledger ledger_key "
    "identity client_id tenant_id service_connection_id connect_timeout read_timeout",
    "verify": "manifest model follow_internal_symlinks public_key signature gated_alias identity client_id tenant_id "
    "service_connection_id connect_timeout read_timeout",
    "lineage": "json connect_timeout read_timeout",
    "gate": "artifacts policy evidence_dir stage set_alias public_key sign identity client_id tenant_id "
    "service_connection_id ledger ledger_key connect_timeout read_timeout",
    "secrets": "vault secrets identity client_id tenant_id service_connection_id to allow_partial concurrency",
    "serve": "host port config threads",
    "record": "stage evidence policy evidence_key evidence_signature ledger ledger_key identity client_id tenant_id "
    "service_connection_id approver comment approval_stage environment connect_timeout read_timeout",
    "rollback": "stage ledger ledger_key identity client_id tenant_id service_connection_id approver comment "
    "approval_stage environment connect_timeout read_timeout",
    "audit": "ledger json public_key unsigned_until identity client_id tenant_id service_connection_id file "
    "no_anchors require_anchors output connect_timeout read_timeout",
    "demo": "workdir approver store",
}


def _command_module(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"mlgate.commands.{name}")


def _common_options(*, top: bool) -> argparse.ArgumentParser:
    """Options accepted both before and after the command name.

    After the command name the defaults are suppressed, so they never overwrite a value
    given before it.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
        help="explain each step (repeat for debug output)",
    )
    parent.add_argument(
        "--deadline", type=_seconds, metavar="SECONDS",
        default=DEFAULT_SECONDS if top else argparse.SUPPRESS,
        help=f"stop with exit 3 when the command has not finished after SECONDS (default {DEFAULT_SECONDS:g}; "
        "0: none); every server, store and lock mlgate waits for is bounded by it",
    )
    parent.add_argument(
        "--platform", choices=PLATFORMS, default="auto" if top else argparse.SUPPRESS,
        help="CI platform for masking, outputs, summaries and approvals (default: detected from GITHUB_ACTIONS / "
        "TF_BUILD; inside a CI run, record and rollback take approvals only from that CI)",
    )
    return parent


def _seconds(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0 or value > 7 * 86400:
        raise argparse.ArgumentTypeError(f"not a number of seconds between 0 and 604800: {text!r}")
    return value


def _timeout(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > 86400:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0 and at most 86400: {text!r}")
    return value


def _timeout_options(cmd: argparse.ArgumentParser) -> None:
    from mlgate.timeouts import DEFAULT_TIMEOUTS

    group = cmd.add_argument_group("timeouts (MLflow and artifact downloads)")
    group.add_argument("--connect-timeout", type=_timeout, metavar="SECONDS", default=DEFAULT_TIMEOUTS.connect,
                       help=f"wait at most SECONDS to connect (default {DEFAULT_TIMEOUTS.connect:g}; "
                       "MLGATE_CONNECT_TIMEOUT)")
    group.add_argument("--read-timeout", type=_timeout, metavar="SECONDS", default=DEFAULT_TIMEOUTS.read,
                       help=f"wait at most SECONDS for each answer's next bytes, the first included (default "
                       f"{DEFAULT_TIMEOUTS.read:g}; MLGATE_READ_TIMEOUT); a proxy copying a large object "
                       "before answering needs more, or presigned downloads")


def _use_timeouts(args: argparse.Namespace) -> None:
    from mlgate.timeouts import DEFAULT_TIMEOUTS, Timeouts, set_timeouts

    set_timeouts(Timeouts(getattr(args, "connect_timeout", DEFAULT_TIMEOUTS.connect),
                          getattr(args, "read_timeout", DEFAULT_TIMEOUTS.read)))


def build_parser(*, env_defaults: bool = True) -> argparse.ArgumentParser:
    """The whole command line; a command's own parser is built (its module imported) only when it is used.

    ``env_defaults``: with the ``MLGATE_<OPTION>`` defaults of this environment (the action's input check
    builds it without them, to check each value itself)."""
    parser = argparse.ArgumentParser(
        prog="mlgate",
        description="Make ML model releases governable: seal and verify model files, trace "
        "MLflow lineage, evaluate a release policy into an evidence pack, fetch secrets "
        "through managed identity, and record the named approver in a tamper-evident ledger.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"mlgate {__version__}")
    if env_defaults:
        _apply_env_defaults(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, action=_Commands)
    common = _common_options(top=False)
    parsers = _Parsers(lambda name: _command_parser(sub, common, name, env_defaults=env_defaults))
    sub.choices = sub._name_parser_map = parsers  # type: ignore[assignment]
    for name in _configured_commands() if env_defaults else []:
        parsers[name]  # built now: its MLGATE_* defaults are checked before anything is parsed
    return parser


def _configured_commands() -> list[str]:
    """The commands with an option set in the environment (``MLGATE_<OPTION>``, not empty)."""
    names = {name for name, value in os.environ.items() if name.startswith("MLGATE_") and value != ""}
    if not names:
        return []
    return [command for command in COMMANDS
            if any(_env_name(dest) in names for dest in COMMAND_OPTIONS[command].split())]


def _command_parser(sub: Any, common: argparse.ArgumentParser, name: str, *,
                    env_defaults: bool = True) -> argparse.ArgumentParser:
    """The parser of one command, as its module builds it, with its MLGATE_* defaults applied (``env_defaults``)."""
    module = _command_module(name)
    cmd: argparse.ArgumentParser = module.add_parser(sub, common)
    cmd.set_defaults(_module=module)
    if name in MLFLOW_COMMANDS:
        _timeout_options(cmd)
    if env_defaults:
        _apply_env_defaults(cmd)
    return cmd


class _Parsers(Mapping[str, argparse.ArgumentParser]):
    """``{command: parser}`` over :data:`COMMANDS`, each parser built on first access."""

    def __init__(self, build: Callable[[str], argparse.ArgumentParser]) -> None:
        self._build = build
        self._built: dict[str, argparse.ArgumentParser] = {}

    def __getitem__(self, name: str) -> argparse.ArgumentParser:
        parser = self._built.get(name)
        if parser is None:
            if name not in COMMANDS:
                raise KeyError(name)
            parser = self._built[name] = self._build(name)
        return parser

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The COMMAND argument, whose choices are a :class:`_Parsers`: ``mlgate seal`` imports only the seal command.

    ``mlgate --help`` lists every command with its module's one-line ``HELP``; ``mlgate CMD --help``
    shows the parser the module built, exactly as when every parser was built up front.
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Called by a command module while :class:`_Parsers` builds its parser (which keeps it)."""
        if kwargs.get("prog") is None:
            kwargs["prog"] = f"{self._prog_prefix} {name}"
        kwargs.pop("help", None)
        parser: argparse.ArgumentParser = self._parser_class(**kwargs)
        return parser

    def _get_subactions(self) -> list[argparse.Action]:
        return [self._ChoicesPseudoAction(name, (), _command_module(name).HELP) for name in COMMANDS]


def env_default_error(action: argparse.Action, value: str) -> UsageError | None:
    """Why ``value`` (from ``MLGATE_<DEST>``) cannot be ``action``'s default, or None when it can."""
    import copy

    try:
        _env_default(copy.copy(action), value)
    except UsageError as exc:
        return exc
    return None


def _env_name(dest: str) -> str:
    return "MLGATE_" + dest.upper().replace("-", "_")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
MAX_VERBOSITY = 9


def _apply_env_defaults(parser: argparse.ArgumentParser) -> None:
    """Let every option fall back to ``MLGATE_<DEST>`` from the environment; a malformed one is exit 2."""
    for action in parser._actions:
        if isinstance(action, _Commands):  # each command's own parser: when it is built
            continue
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _apply_env_defaults(child)
            continue
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        value = os.environ.get(_env_name(action.dest))
        if value is not None and value != "":
            _env_default(action, value)


class _EnvDefaultAppend(argparse._AppendAction):
    """A repeatable option whose default came from ``MLGATE_<DEST>``: the command line's values replace it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, None)
        super().__call__(parser, namespace, values, option_string)


def _env_default(action: argparse.Action, value: str) -> None:
    option = max(action.option_strings, key=len)
    name = _env_name(action.dest)
    shown = repr(value) if len(value) <= 80 else repr(value[:80]) + "..."
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        word = value.strip().lower()
        if word not in _TRUE + _FALSE:
            raise UsageError(f"{name}={shown} is not a yes/no value for {option}",
                             hint=f"set {name} to one of {', '.join(_TRUE + _FALSE)}, or unset it")
        truthy = word in _TRUE
        action.default = truthy if isinstance(action, argparse._StoreTrueAction) else not truthy
    elif isinstance(action, argparse._CountAction):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 2 and int(text) <= MAX_VERBOSITY):
            raise UsageError(f"{name}={shown} is not a count for {option}",
                             hint=f"set {name} to a whole number from 0 to {MAX_VERBOSITY}, or unset it")
        action.default = int(text)
    elif isinstance(action, argparse._AppendAction):
        # a repeatable option (gate --public-key, record --approver): one value per line; values given
        # on the command line replace these instead of adding to them
        values = [line.strip() for line in value.splitlines() if line.strip()]
        items = []
        for item in values:
            try:
                items.append(action.type(item) if callable(action.type) else item)
            except (ValueError, TypeError, argparse.ArgumentTypeError):
                raise UsageError(f"{name}={shown} is not a valid value for {option}",
                                 hint=f"fix or unset {name} (one value per line)") from None
        if items:
            action.default = items
            action.__class__ = _EnvDefaultAppend
    elif isinstance(action, argparse._StoreAction):
        try:
            converted = action.type(value) if callable(action.type) else value
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise UsageError(
                f"{name}={shown} is not a valid value for {option}",
                hint=f"fix or unset {name} (see `mlgate ... --help` for {option})",
            ) from None
        if action.choices is not None and converted not in action.choices:
            raise UsageError(
                f"{name}={shown} is not one of the choices of {option}",
                hint="choose one of: " + ", ".join(map(str, action.choices)),
            )
        action.default = converted
        action.required = False


# options repeatable in one command and single in others: a list in MLGATE_<DEST> (one value per line,
# as the action's and the task's multi-line inputs pass it) is refused by the others, not read as one value
LIST_DESTS = {"public_key": "gate --public-key", "approver": "record --approver"}


def _one_value_each(args: argparse.Namespace) -> None:
    """Refuse (exit 2) a list where this command takes one value: a multi-line key or approver is not a name.
    One value on a line of its own is that value."""
    for dest, several in LIST_DESTS.items():
        value = getattr(args, dest, None)
        lines = [line for line in value.splitlines() if line.strip()] if isinstance(value, str) else []
        if len(lines) > 1:
            option = "--" + dest.replace("_", "-")
            raise UsageError(
                f"mlgate {args.command} {option} takes one value, and it was given {len(lines)} lines "
                f"(from {_env_name(dest)}, or the action's or the task's input of that name, where it was set)",
                hint=f"give {args.command} one {option}; only `mlgate {several}` takes several, one per line",
            )
        # one value from a multi-line input (a YAML block adds a newline)
        if lines and isinstance(value, str) and "\n" in value:
            setattr(args, dest, lines[0].strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run mlgate with ``argv`` (without the program name) and return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        _one_value_each(args)
    except Error as exc:  # a malformed MLGATE_* default (of a top-level option, or of the command's)
        err(exc.diagnostics())
        return exc.exit_code
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from mlgate.logsetup import configure_when_imported

    configure_when_imported(args.verbose)
    _use_timeouts(args)
    from mlgate.deadline import armed

    try:
        with armed(args.deadline):
            code: int = args._module.run(args)
        return code
    except Error as exc:
        err(exc.diagnostics())
        _report(args, exc)
        return exc.exit_code
    except ModuleNotFoundError as exc:  # an optional SDK (a pip extra) that is not installed
        from mlgate.extras import missing_extra

        usage = missing_extra(exc)
        if usage is None:
            return _internal_error(exc, args.verbose)
        err(usage.diagnostics())
        return usage.exit_code
    except KeyboardInterrupt:
        err("error: interrupted; nothing was passed")
        return EXIT_UNEVALUATED
    except Exception as exc:  # a bug or an unexpected failure: never a pass
        return _internal_error(exc, args.verbose)


def _internal_error(exc: BaseException, verbose: int) -> int:
    if verbose >= 2:
        import traceback

        err("".join(traceback.format_exception(exc)))
    err(f"error: internal error ({type(exc).__name__}); nothing was passed. Re-run with -vv for details.")
    return EXIT_UNEVALUATED


def _report(args: argparse.Namespace, error: Error) -> None:
    """In CI, the failure is also an annotation of the run (in full, at the file at fault)."""
    from mlgate.platforms import detect_platform

    try:
        platform = detect_platform(args.platform)
        if platform.is_ci:
            platform.report(error, f"mlgate {args.command}")
    except Error:  # the platform itself is unusable: the message above is all there is
        return


def entrypoint() -> None:
    """Console-script entry point.

    After a deadline passed, a worker thread may still be blocked on a stalled server; the
    process then exits at once (output flushed) instead of waiting for it at shutdown.
    """
    code = main()
    from mlgate.deadline import expired

    if expired():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
