"""`mlgate serve`: run the approval-check service (WSGI)."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser, not_built

HELP = "run the approval-check service (WSGI)"
DESCRIPTION = """\
Serve the Azure DevOps 'Invoke REST API' check and the GitHub deployment protection rule.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "serve", help=HELP, description=DESCRIPTION)

    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("serve")
