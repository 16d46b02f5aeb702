"""`mlgate rollback`: move a stage alias back to the previous approved version."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser, not_built

HELP = "move a stage alias back to the previous approved version"
DESCRIPTION = """\
Move the stage alias of a registered model back to its previous approved version, with its own
ledger entry and approver.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "rollback", help=HELP, description=DESCRIPTION)

    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("rollback")
