"""`mlgate rollback`: move a stage alias back to the previous approved version."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser

HELP = "move a stage alias back to the previous approved version"
DESCRIPTION = """\
Move the stage alias of a registered model back to its previous approved version (from the
audit ledger's history of that alias), with its own ledger entry and named approver (read from
the CI like `record`, or --approver/--comment locally; refused in CI like `record`). Refused
(exit 1) when the alias was moved outside mlgate or there is no earlier approved version.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from mlgate.commands.record import add_approval_options

    parser = command_parser(sub, common, "rollback", help=HELP, description=DESCRIPTION)
    parser.add_argument("name", metavar="NAME", help="the registered model's name")
    parser.add_argument("--stage", metavar="ALIAS", default="production",
                        help="the stage alias to move back (default: production)")
    add_approval_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.commands.record import approval_request, approver_lines, ledger_line, refused, summary_markdown
    from mlgate.console import out
    from mlgate.governed.record import rollback
    from mlgate.ledger import open_ledger
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.platforms import approval_platform

    request = approval_request(args)
    platform = approval_platform(request, args.platform)  # a self-declared approval in CI: refused first
    from mlgate.commands._signing import identity_options

    ledger = open_ledger(args.ledger, sign=args.ledger_key, identity=identity_options(args))
    client = MlflowClient.from_env()
    report = platform.read_approvals(request)
    outcome = rollback(args.name, stage=args.stage, ledger=ledger, client=client, ci=platform.context(),
                       report=report)
    if outcome.refused:
        return refused(platform, outcome, "rollback", ledger.location)
    out(f"rolled back: {outcome.name}@{outcome.stage} -> version {outcome.version} "
        f"(from version {outcome.previous_version})")
    for line in approver_lines(outcome):
        out(line)
    out(ledger_line(outcome, ledger.location))
    if platform.is_ci:
        platform.set_output("ledger_head", outcome.entry.anchor)
        platform.summary(
            summary_markdown(outcome, f"mlgate rollback: {outcome.name}@{outcome.stage} → v{outcome.version}")
        )
    return 0
