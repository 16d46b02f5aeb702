"""`mlgate lineage`: trace a model version through MLflow and print the chain."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ref, command_parser

HELP = "trace a model version through MLflow and print the chain"
DESCRIPTION = """\
Trace REF to its logged model, run, experiment, git commit and training datasets over MLflow's REST API.
Exit 0 when every link is present, 1 naming every missing link, 3 when MLflow cannot be asked.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "lineage", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    parser.add_argument("--json", action="store_true", help="print the chain as JSON instead of a tree")
    return parser


def run(args: argparse.Namespace) -> int:
    import json

    from mlgate.console import out
    from mlgate.lineage.chain import trace
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.platforms import detect_platform
    from mlgate.refs import ModelRef

    platform = detect_platform(args.platform)
    ref = ModelRef.parse(args.ref)
    lineage = trace(MlflowClient.from_env(), ref)
    if args.json:
        out(json.dumps(lineage.to_dict(), indent=2, sort_keys=True))
    else:
        for line in lineage.tree():
            out(line)
    missing = lineage.missing
    if missing:
        out(f"UNTRACEABLE: {len(missing)} missing link(s): " + "; ".join(f"{m.label} ({m.detail})" for m in missing))
        platform.fail(f"mlgate lineage: {ref} is untraceable: " + ", ".join(m.label for m in missing))
        return 1
    out(f"traced: {ref} -> run {lineage.run_id} -> commit {lineage.git_commit} -> "
        f"{len(lineage.datasets)} training dataset(s)")
    return 0
