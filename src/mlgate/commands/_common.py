"""Helpers shared by the command modules (standard library only: keeps start-up fast)."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.errors import NotBuiltError


def command_parser(
    sub: Any, common: argparse.ArgumentParser, name: str, *, help: str, description: str, epilog: str = ""
) -> argparse.ArgumentParser:
    """Create the parser of one command with the shared options and exit-code epilog."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ref",
        metavar="REF",
        help="model version: models:/NAME/VERSION, models:/NAME@ALIAS, NAME/VERSION or NAME@ALIAS",
    )


def not_built(command: str) -> int:
    raise NotBuiltError(
        f"`mlgate {command}` is part of the CLI contract but is not built in this version",
        hint="upgrade mlgate, or leave this step out of the pipeline for now; nothing was checked",
    )
