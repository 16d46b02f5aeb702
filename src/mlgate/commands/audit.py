"""`mlgate audit`: answer the audit question, verify or export the ledger."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser, not_built

HELP = "answer the audit question, verify or export the ledger"
DESCRIPTION = """\
show: who approved the model at an alias, when, why, with what evidence.
verify: recompute the ledger's hash chain and anchors (exit 1 on tampering).
export: write a self-contained file an auditor can verify offline.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "audit", help=HELP, description=DESCRIPTION)

    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("audit")
