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


def add_ledger_key_option(parser: argparse.ArgumentParser) -> None:
    """``--ledger-key KEY`` (``MLGATE_LEDGER_KEY``): sign every ledger entry the command appends."""
    from mlgate.commands._signing import KEY_FORMS

    parser.add_argument(
        "--ledger-key", metavar="KEY",
        help=f"sign every ledger entry this command appends with the recording identity's private key: {KEY_FORMS}. "
        "One key signs a ledger; before signing, the entry appended onto must verify with it (exit 1 if not); "
        "check with `mlgate audit verify --public-key`",
    )


def sequence_number(text: str) -> int:
    """An argparse type: a ledger seq (0 or more)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError(f"not a ledger sequence number (0 or more): {text!r}")
    return int(text)


def mlflow_alias(text: str) -> str:
    """An alias MLflow accepts (argparse type): letters, digits, '_' and '-'; not 'latest' or v<number>."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", text) or text == "latest" or re.fullmatch(r"[vV][0-9]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an MLflow alias (letters, digits, '_' and '-'; not 'latest' or v<number>)")
    return text
