"""`mlgate demo`: the release flow end to end on an embedded default, no cloud account."""

from __future__ import annotations

import argparse
import contextlib
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

--store azure-blob runs the same flow with the artifacts in Azure Blob Storage, as most
production MLflow servers keep them: it starts the Azure Storage emulator (Azurite, from the
repository's node_modules after `npm ci` / `make setup`, or on PATH) on loopback and a MLflow
server with --no-serve-artifacts writing to a container there; mlgate reads and writes the
store directly with the emulator's public development account (set in
AZURE_STORAGE_CONNECTION_STRING for the demo's processes only).
"""
STORES = ("proxy", "azure-blob")
CONTAINER = "mlflow"
BLOB_ROOT = f"wasbs://{CONTAINER}@devstoreaccount1.blob.core.windows.net/artifacts"
_ENV = ("MLFLOW_TRACKING_URI", "MLGATE_LEDGER", "MLGATE_LEDGER_KEY", "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCESS_KEY")

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
    parser.add_argument("--store", choices=STORES, default="proxy",
                        help="where the local MLflow keeps artifacts: proxy (served by MLflow, the default) "
                             "or azure-blob (a local Azurite, read and written by mlgate directly)")
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
    import os
    import shutil

    deploy, tampered, evidence, policy = work / "deploy", work / "tampered", work / "evidence", work / "policy.yaml"
    policy.write_text(POLICY)
    private, public = _signing_key(work / "keys")
    os.environ["MLGATE_LEDGER_KEY"] = str(private)  # every ledger entry of the demo is signed (restored by run)
    traced, untraced = _train(uri, deploy)
    _step("1. seal the registered version's files where MLflow keeps them, signed with the demo's P-256 key",
          ["seal", "--model", traced, "--sign", str(private)], 0)
    _step("2. lineage of the traced model", ["lineage", traced], 0)
    _step("3. gate the files about to be deployed (expect: pass); the evidence is signed too",
          ["gate", traced, "--artifacts", str(deploy), "--policy", str(policy), "--stage", "production",
           "--evidence-dir", str(evidence), "--public-key", str(public), "--sign", str(private)], 0)
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
           "--evidence", str(evidence / "evidence.json"), "--evidence-key", str(public)], 0, outside_ci=True)
    name = traced.split("/")[0]
    _step("7. the regulator's question: who approved the current production model, and why?",
          ["audit", "show", f"{name}@production"], 0)
    _step("8. verify the audit ledger's hash chain, its anchors in MLflow and its signatures",
          ["audit", "verify", "--public-key", str(public)], 0)


def _signing_key(folder: Path) -> tuple[Path, Path]:
    """A fresh ECDSA P-256 key pair for the demo's signed seal (PEM, the private one readable by its owner only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlgate.console import out
    from mlgate.files import write_atomically

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "signing-key.pem", folder / "signing-key.pub.pem"
    # written through mkstemp: mode 0600 from the start
    write_atomically(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    write_atomically(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    out(f"== signing key for the demo: {private} (public: {public})")
    return private, public


def run(args: argparse.Namespace) -> int:
    import os
    import shutil

    from mlgate.console import err, out
    from mlgate.demo.mlflow_server import LocalMlflow

    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    saved = {k: os.environ.pop(k, None) for k in _ENV}
    try:
        with contextlib.ExitStack() as stack:
            env = _store_env(stack, args.store, work)
            root = BLOB_ROOT if env else None
            os.environ.update(env)  # the training child and mlgate's in-process commands reach the store
            server = stack.enter_context(LocalMlflow(work / "mlflow", artifact_root=root, env=env))
            out(f"== local MLflow on {server.uri} (logs: {work / 'mlflow' / 'mlflow-server.log'})"
                + (f"; artifacts in {root}, not served by MLflow" if root else ""))
            os.environ["MLFLOW_TRACKING_URI"] = server.uri
            os.environ["MLGATE_LEDGER"] = f"file:{work / 'ledger.jsonl'}"
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
    stopped = "The local MLflow server and Azurite have" if args.store == "azure-blob" else \
        "The local MLflow server has"
    out(f"\ndemo: OK. Evidence: {work / 'evidence' / 'evidence.md'}; ledger: {work / 'ledger.jsonl'}. "
        f"{stopped} been stopped.")
    return 0


def _store_env(stack: contextlib.ExitStack, store: str, work: Path) -> dict[str, str]:
    """Start the demo's artifact store (none for the proxy); the variables that reach it."""
    if store != "azure-blob":
        return {}
    from mlgate.console import out
    from mlgate.demo.azurite import LocalAzurite

    azurite = stack.enter_context(LocalAzurite(work / "azurite"))
    azurite.create_container(CONTAINER)
    out(f"== local Azurite on {azurite.account_url} (logs: {azurite.log}); container {CONTAINER}")
    return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}


def _commit() -> str:
    """The current git commit of this checkout, or a fixed demo value outside a git checkout."""
    import subprocess

    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    sha = proc.stdout.strip() if proc and proc.returncode == 0 else ""
    return sha if len(sha) == 40 else "0123456789abcdef0123456789abcdef01234567"
