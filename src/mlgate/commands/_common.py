"""Helpers shared by the command modules (standard library only: keeps start-up fast)."""

from __future__ import annotations

import argparse
from typing import Any


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


LEDGER_FORMS = (
    "file:PATH (default file:.mlgate/ledger.jsonl), azure-blob://ACCOUNT_URL/CONTAINER/BLOB or "
    "https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"
)


def add_ledger_option(parser: argparse.ArgumentParser, *, purpose: str | None = None) -> None:
    """The one ``--ledger SPEC`` option (``MLGATE_LEDGER``); ``purpose`` says what this command writes there."""
    text = f"{purpose}; the ledger is {LEDGER_FORMS}" if purpose else f"where the ledger lives: {LEDGER_FORMS}"
    parser.add_argument("--ledger", metavar="SPEC", help=text)
