"""`mlgate lineage`: trace a model version through MLflow and print the chain."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser, not_built

HELP = "trace a model version through MLflow and print the chain"
DESCRIPTION = """\
Trace REF to its logged model, run, experiment, git commit and training datasets over MLflow's REST API.
Exit 0 when every link is present, 1 naming every missing link, 3 when MLflow cannot be asked.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "lineage", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("lineage")
