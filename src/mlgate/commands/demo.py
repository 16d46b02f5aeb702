"""`mlgate demo`: the release flow end to end on an embedded default, no cloud account."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser

HELP = "the whole flow on a local MLflow and a local ledger, no cloud account"
DESCRIPTION = """\
Run the release flow end to end on embedded defaults: start a local MLflow server on
loopback, train and register a small model with full lineage (and one without), seal it,
run the gate (pass), show the gate refusing a tampered copy and the untraced model, record
a local approval by a named approver, print the audit answer ("who approved the current
production model, and why") and verify the ledger. Every process it started is stopped.
Everything is written under --workdir; nothing leaves this machine. Needs the `mlflow`
and `scikit-learn` packages (installed by `make demo`).
"""

POLICY = """\
# The demo's release policy (see the README's Policy reference).
version: 1
default_risk: high
risk_classes:
  high:
    lineage: [source_run_finished, git_commit, training_dataset]
    tags_required: [owner, use_case, rollback_plan]
    metrics: {auc: ">= 0.80"}
    fairness: {demographic_parity_difference: "<= 0.10"}
    approvals: {min_approvers: 1, approver_not_author: true, approver_not_requester: true}
stages:
  production: {}
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "demo", help=HELP, description=DESCRIPTION)
    parser.add_argument("--workdir", metavar="DIR", default=".demo", help="where the demo writes (default: .demo)")
    parser.add_argument("--approver", metavar="NAME", default="risk-officer",
                        help="the named approver of the demo release (default: risk-officer)")
    return parser


class DemoFailed(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mlgate.cli import main
    from mlgate.console import err, out
    from mlgate.demo.mlflow_server import LocalMlflow
    from mlgate.errors import EvaluationError

    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    deploy, tampered = work / "deploy", work / "tampered"
    policy = work / "policy.yaml"
    policy.write_text(POLICY)
    ledger = f"file:{work / 'ledger.jsonl'}"
    evidence = work / "evidence"

    def step(title: str, argv: list[str], expect: int, *, outside_ci: bool = False) -> None:
        out(f"\n== {title}\n$ mlgate {shlex.join(argv)}")
        # the demo's approval is declared by hand into its own loopback MLflow and throwaway ledger:
        # a local run even when the demo itself runs in a CI job (where `record` refuses --approver)
        hidden = {k: os.environ.pop(k) for k in ("GITHUB_ACTIONS", "TF_BUILD") if outside_ci and k in os.environ}
        try:
            code = main(argv)
        finally:
            os.environ.update(hidden)
        if code != expect:
            raise DemoFailed(f"`mlgate {argv[0]}` exited {code}, expected {expect}")

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLGATE_LEDGER")}
    with LocalMlflow(work / "mlflow") as server:
        out(f"== local MLflow on {server.uri} (logs: {work / 'mlflow' / 'mlflow-server.log'})")
        os.environ["MLFLOW_TRACKING_URI"] = server.uri
        os.environ["MLGATE_LEDGER"] = ledger
        try:
            out("\n== train and register: credit-risk (full lineage) and churn-untraced (no commit, no data, no owner)")
            proc = subprocess.run(
                [sys.executable, "-m", "mlgate.demo.train", "--tracking-uri", server.uri,
                 "--deploy-dir", str(deploy), "--commit", _commit()],
                capture_output=True, text=True, timeout=600, check=False,
            )
            if proc.returncode != 0:
                err(proc.stderr[-4000:])
                raise EvaluationError("the demo training job failed (output above)")
            refs = json.loads(proc.stdout.strip().splitlines()[-1])
            traced, untraced = refs["traced"], refs["untraced"]
            out(f"registered {traced} and {untraced}")
            step("1. seal the registered version's files in MLflow", ["seal", "--model", traced], 0)
            step("2. lineage of the traced model", ["lineage", traced], 0)
            step("3. gate the files about to be deployed (expect: pass)",
                 ["gate", traced, "--artifacts", str(deploy), "--policy", str(policy), "--stage", "production",
                  "--evidence-dir", str(evidence)], 0)
            shutil.copytree(deploy, tampered)
            with open(tampered / "MLmodel", "a") as f:
                f.write("# tampered after sealing\n")
            step("4. gate a tampered copy (expect: refused)",
                 ["gate", traced, "--artifacts", str(tampered), "--policy", str(policy),
                  "--evidence-dir", str(work / "evidence-tampered")], 1)
            step("5. gate a model without git commit, training data or owner (expect: refused)",
                 ["gate", untraced, "--policy", str(policy), "--evidence-dir", str(work / "evidence-untraced")], 1)
            step("6. record the named approver and promote to production",
                 ["--platform", "local", "record", traced, "--stage", "production", "--approver", args.approver,
                  "--comment", "AUC and fairness within policy; evidence reviewed",
                  "--evidence", str(evidence / "evidence.json")], 0, outside_ci=True)
            name = traced.split("/")[0]
            step("7. the regulator's question: who approved the current production model, and why?",
                 ["audit", "show", f"{name}@production"], 0)
            step("8. verify the audit ledger's hash chain and its anchors in MLflow", ["audit", "verify"], 0)
        except DemoFailed as exc:
            err(f"\ndemo FAILED: {exc}")
            return 3
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    out(f"\ndemo: OK. Evidence: {evidence / 'evidence.md'}; ledger: {work / 'ledger.jsonl'}. "
        "The local MLflow server has been stopped.")
    return 0


def _commit() -> str:
    """The current git commit of this checkout, or a fixed demo value outside a git checkout."""
    import subprocess

    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    sha = proc.stdout.strip() if proc and proc.returncode == 0 else ""
    return sha if len(sha) == 40 else "0123456789abcdef0123456789abcdef01234567"
