"""`mlgate rollback`: move a stage alias back to the previous approved version."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser

HELP = "move a stage alias back to the previous approved version"
DESCRIPTION = """\
Move the stage alias of a registered model back to its previous approved version (from the
audit ledger's history of that alias), with its own ledger entry and named approver (read from
the CI like `record`, or --approver/--comment locally). Refused (exit 1) when the alias was
moved outside mlgate or there is no earlier approved version.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from mlgate.commands.record import add_approval_options

    parser = command_parser(sub, common, "rollback", help=HELP, description=DESCRIPTION)
    parser.add_argument("name", metavar="NAME", help="the registered model's name")
    parser.add_argument("--stage", metavar="ALIAS", default="production",
                        help="the stage alias to move back (default: production)")
    add_approval_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.commands._record_impl import run_rollback

    return run_rollback(args)
