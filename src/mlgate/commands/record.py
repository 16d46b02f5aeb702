"""`mlgate record`: record the named approver(s) of this CI run and set the stage alias."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser

HELP = "record the named approver(s) of this CI run and set the stage alias"
DESCRIPTION = """\
Read who approved this run from the CI (Azure DevOps: the stage's environment approval;
GitHub: the environment's reviewers; local: --approver/--comment), enforce separation of
duties, append an audit ledger entry, write the governed record on the MLflow model version
(tags mlgate.approved_by, mlgate.approved_at, mlgate.approval_comment, mlgate.evidence.sha256,
mlgate.deployment, mlgate.ledger.head) and set the stage alias. Re-running for the same CI run
adds no second entry. Exit 1 on a duty conflict (recorded as a refused entry; nothing promoted).
"""


def add_approval_options(parser: argparse.ArgumentParser) -> None:
    from mlgate.commands.audit import add_ledger_option

    add_ledger_option(parser)
    parser.add_argument("--approver", metavar="NAME", action="append", default=[],
                        help="local runs only: who approved (repeat for several)")
    parser.add_argument("--comment", metavar="TEXT", help="local runs only: why it was approved")
    parser.add_argument("--approval-stage", metavar="NAME",
                        help="Azure DevOps: the stage whose environment approval to read (default: this stage)")
    parser.add_argument("--environment", metavar="NAME",
                        help="GitHub: the environment whose reviewers to read (default: --stage)")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "record", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    parser.add_argument("--stage", metavar="ALIAS", default="production",
                        help="the stage alias to set (default: production)")
    parser.add_argument("--evidence", metavar="FILE", default="evidence/evidence.json",
                        help="the evidence.json `mlgate gate` wrote (default: evidence/evidence.json)")
    parser.add_argument("--policy", metavar="FILE",
                        help="read separation-of-duties rules from this policy's approvals block "
                        "(default: the policy recorded in the evidence)")
    add_approval_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.commands._record_impl import run_record

    return run_record(args)
