"""`mlgate record`: record the named approver(s) of this CI run and set the stage alias."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser, not_built

HELP = "record the named approver(s) of this CI run and set the stage alias"
DESCRIPTION = """\
Read who approved this run from the CI, enforce separation of duties, write the governed record
(MLflow tags, alias) and an audit ledger entry. Exit 1 on a duty conflict.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "record", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("record")
