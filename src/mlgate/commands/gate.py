"""`mlgate gate`: integrity + lineage + policy -> evidence pack and a decision."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser, not_built

HELP = "integrity + lineage + policy -> evidence pack and a decision"
DESCRIPTION = """\
Verify the artifacts against the sealed manifest, trace lineage, evaluate the release policy and
write evidence.json and evidence.md. Exit 0 pass, 1 refused, 2 bad policy, 3 could not evaluate.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "gate", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("gate")
