"""`mlgate demo`: the release flow end to end on an embedded default, no cloud account."""

from __future__ import annotations

import argparse
from pathlib import Path
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


def _step(title: str, argv: list[str], expect: int, *, outside_ci: bool = False) -> None:
    """Print and run one mlgate command in-process; anything but ``expect`` stops the demo."""
    import os
    import shlex

    from mlgate.cli import main
    from mlgate.console import out

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


def _train(uri: str, deploy: Path) -> tuple[str, str]:
    """Train and register the two demo models in a child process; their refs (traced, untraced)."""
    import json
    import subprocess
    import sys

    from mlgate.console import err, out
    from mlgate.errors import EvaluationError

    out("\n== train and register: credit-risk (full lineage) and churn-untraced (no commit, no data, no owner)")
    proc = subprocess.run(
        [sys.executable, "-m", "mlgate.demo.train", "--tracking-uri", uri, "--deploy-dir", str(deploy),
         "--commit", _commit()],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if proc.returncode != 0:
        err(proc.stderr[-4000:])
        raise EvaluationError("the demo training job failed (output above)")
    refs = json.loads(proc.stdout.strip().splitlines()[-1])
    out(f"registered {refs['traced']} and {refs['untraced']}")
    return str(refs["traced"]), str(refs["untraced"])


def _flow(work: Path, uri: str, approver: str) -> None:
    """The release flow, step by step, against the demo's MLflow at ``uri``."""
    import shutil

    deploy, tampered, evidence, policy = work / "deploy", work / "tampered", work / "evidence", work / "policy.yaml"
    policy.write_text(POLICY)
    traced, untraced = _train(uri, deploy)
    _step("1. seal the registered version's files in MLflow", ["seal", "--model", traced], 0)
    _step("2. lineage of the traced model", ["lineage", traced], 0)
    _step("3. gate the files about to be deployed (expect: pass)",
          ["gate", traced, "--artifacts", str(deploy), "--policy", str(policy), "--stage", "production",
           "--evidence-dir", str(evidence)], 0)
    shutil.copytree(deploy, tampered)
    with open(tampered / "MLmodel", "a") as f:
        f.write("# tampered after sealing\n")
    _step("4. gate a tampered copy (expect: refused)",
          ["gate", traced, "--artifacts", str(tampered), "--policy", str(policy),
           "--evidence-dir", str(work / "evidence-tampered")], 1)
    _step("5. gate a model without git commit, training data or owner (expect: refused)",
          ["gate", untraced, "--policy", str(policy), "--evidence-dir", str(work / "evidence-untraced")], 1)
    _step("6. record the named approver and promote to production",
          ["--platform", "local", "record", traced, "--stage", "production", "--approver", approver,
           "--comment", "AUC and fairness within policy; evidence reviewed",
           "--evidence", str(evidence / "evidence.json")], 0, outside_ci=True)
    name = traced.split("/")[0]
    _step("7. the regulator's question: who approved the current production model, and why?",
          ["audit", "show", f"{name}@production"], 0)
    _step("8. verify the audit ledger's hash chain and its anchors in MLflow", ["audit", "verify"], 0)


def run(args: argparse.Namespace) -> int:
    import os
    import shutil

    from mlgate.console import err, out
    from mlgate.demo.mlflow_server import LocalMlflow

    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLGATE_LEDGER")}
    with LocalMlflow(work / "mlflow") as server:
        out(f"== local MLflow on {server.uri} (logs: {work / 'mlflow' / 'mlflow-server.log'})")
        os.environ["MLFLOW_TRACKING_URI"] = server.uri
        os.environ["MLGATE_LEDGER"] = f"file:{work / 'ledger.jsonl'}"
        try:
            _flow(work, server.uri, args.approver)
        except DemoFailed as exc:
            err(f"\ndemo FAILED: {exc}")
            return 3
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    out(f"\ndemo: OK. Evidence: {work / 'evidence' / 'evidence.md'}; ledger: {work / 'ledger.jsonl'}. "
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
