"""`mlgate audit`: answer the audit question, verify or export the ledger."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser

HELP = "answer the audit question, verify or export the ledger"
DESCRIPTION = """\
show REF: who approved the model version at an alias (or a version), when, why, with what
  evidence; its lineage and deployment record (text, or --json).
verify: stream the ledger, recompute its hash chain and check its anchors (the
  mlgate.ledger.head tags on MLflow model versions, found by the ledger's ledger_id wherever
  the ledger is stored, when MLFLOW_TRACKING_URI is set); exit 1 naming the first bad entry on
  any tampering. --file checks an exported file or a copy. It prints how many anchors were
  checked; with none, a ledger rewritten in full cannot be detected: it warns, and
  --require-anchors makes that exit 1.
export -o FILE: write a self-contained file an auditor can check with `audit verify --file`.
"""
REQUIRE_HELP = (
    "exit 1 when no anchor from MLflow could be checked (a ledger rewritten in full cannot be "
    "excluded without them); default: a warning"
)
LEDGER_HELP = (
    "where the ledger lives: file:PATH (default file:.mlgate/ledger.jsonl), "
    "azure-blob://ACCOUNT_URL/CONTAINER/BLOB or https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB"
)


def add_ledger_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="SPEC", help=LEDGER_HELP)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "audit", help=HELP, description=DESCRIPTION)
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="who approved the model at REF, when, why, with what evidence",
                              parents=[common])
    add_ref(show)
    add_ledger_option(show)
    show.add_argument("--json", action="store_true", help="print the answer as JSON")

    verify = actions.add_parser("verify", help="recompute the ledger's hash chain and anchors",
                                parents=[common])
    add_ledger_option(verify)
    verify.add_argument("--file", metavar="FILE", help="verify this exported (or copied) ledger file offline")
    verify.add_argument("--no-anchors", action="store_true",
                        help="do not read the mlgate.ledger.head anchors from MLflow")
    verify.add_argument("--require-anchors", action="store_true", help=REQUIRE_HELP)

    export = actions.add_parser("export", help="write a self-contained, verifiable copy of the ledger",
                                parents=[common])
    add_ledger_option(export)
    export.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write")
    export.add_argument("--no-anchors", action="store_true",
                        help="do not include the mlgate.ledger.head anchors read from MLflow")
    export.add_argument("--require-anchors", action="store_true", help=REQUIRE_HELP)
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.commands import _audit_impl as audit

    if args.audit_action == "verify":
        return audit.run_verify(args)
    if args.audit_action == "export":
        return audit.run_export(args)
    return audit.run_show(args)
