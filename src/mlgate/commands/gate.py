"""`mlgate gate`: integrity + lineage + policy -> evidence pack and a decision."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import add_ledger_key_option, add_ledger_option, add_ref, command_parser, mlflow_alias
from mlgate.commands._signing import KEY_FORMS, add_identity_options

if TYPE_CHECKING:
    from mlgate.ledger.base import Ledger
    from mlgate.secrets.credentials import IdentityOptions
    from mlgate.signing.keys import Signer

HELP = "integrity + lineage + policy -> evidence pack and a decision"
DESCRIPTION = """\
Verify the artifacts against the sealed manifest, trace lineage, evaluate the release policy and
write evidence.json and evidence.md. Exit 0 pass, 1 refused, 2 bad policy, 3 could not evaluate.

Without --artifacts, the version's files in the MLflow artifact store are re-hashed (streamed)
and compared with the sealed manifest instead. In GitHub Actions evidence.md is appended to the
job summary; in Azure DevOps it is uploaded as the run summary.

With trusted keys (--public-key, or the policy's signing.trusted_keys for the version's risk
class and stage), the seal's signature recorded by `seal --model --sign` must verify with them
(rule integrity.signed): a missing, malformed or wrong signature refuses (exit 1).

With --sign KEY the evidence is also written as evidence.dsse.json: an in-toto statement
(predicate type https://mlgate.dev/evidence/v1, subject the model's manifest digest) in a DSSE
envelope signed with KEY; `mlgate record --evidence-key` then refuses evidence it does not verify.
If signing fails, nothing is written (exit 3).
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "gate", help=HELP, description=DESCRIPTION)
    add_ref(parser)
    parser.add_argument("--artifacts", metavar="DIR", help="the model files about to be deployed")
    parser.add_argument("--policy", metavar="FILE", required=True, help="the release policy (YAML)")
    parser.add_argument("--evidence-dir", metavar="D", default="evidence",
                        help="where to write evidence.json and evidence.md (default: evidence)")
    parser.add_argument("--stage", metavar="NAME", help="the lifecycle stage / alias being released to "
                        "(adds the policy's stages.NAME requirements)")
    parser.add_argument("--set-alias", metavar="ALIAS", type=mlflow_alias,
                        help="when the gate passes (and only then), point this alias of the registered model at the "
                        "gated version (e.g. candidate: the alias the approval check gates), and say so in the "
                        "ledger's `gated` entry; a refused gate leaves every alias where it was")
    parser.add_argument("--public-key", metavar="KEY", action="append",
                        help=f"a trusted key the seal must be signed by ({KEY_FORMS.replace('private', 'public')}); "
                        "repeat for any of several")
    parser.add_argument("--sign", metavar="KEY",
                        help=f"also write evidence.dsse.json, the evidence signed with this private key: {KEY_FORMS}")
    add_identity_options(parser)
    add_ledger_option(parser, purpose="also append a `gated` entry (passed or refused, evidence digest) to this "
                      "audit ledger (see `mlgate audit`); off unless given here or in MLGATE_LEDGER")
    add_ledger_key_option(parser)
    return parser


def _alias_and_ledger(args: argparse.Namespace, outcome: Any, platform: Any, signer: Signer | None,
                      ledger: Ledger | None) -> None:
    """Point ``--set-alias`` at the version (a pass only), then append the `gated` entry saying so."""
    from mlgate.console import out

    model = outcome.evidence.model
    alias = args.set_alias if outcome.passed else None
    if alias:
        from mlgate.lineage.mlflow import MlflowClient

        MlflowClient.from_env().set_registered_model_alias(model.name, alias, model.version)
        out(f"alias: models:/{model.name}@{alias} -> version {model.version} (the gate passed)")
    elif args.set_alias:
        out(f"alias: {args.set_alias} left where it was (the gate refused this version)")
    if ledger is not None:
        from mlgate.governed.events import append_event

        details: dict[str, Any] = {"passed": outcome.passed, "failed_rules": list(outcome.failed_rules),
                                   "stage": args.stage, "artifacts_checked": bool(args.artifacts)}
        if alias:
            details["alias"] = alias
        if signer is not None:
            details["evidence_signed_by"] = signer.hint
        append_event(args.ledger, "gated", name=model.name, version=model.version,
                     ci=platform.context(), evidence_sha256=outcome.evidence_sha256,
                     details=details, fingerprint=outcome.evidence_sha256, ledger=ledger,
                     recorded=(f"models:/{model.name}@{alias} points at version {model.version}" if alias else
                               f"the evidence of models:/{model.name}/{model.version} is written"))


def run(args: argparse.Namespace) -> int:
    from mlgate.commands._signing import close, identity_options, load_signer

    signer = load_signer(args.sign, args) if args.sign else None  # a bad key is exit 2 before any work
    ledger: Ledger | None = None
    try:
        if args.ledger:  # its signing key too is loaded (and checked) before any work
            from mlgate.governed.events import open_event_ledger

            ledger = open_event_ledger(args.ledger, args.ledger_key, identity_options(args))
        return _gate(args, signer, identity_options(args), ledger)
    finally:
        close(signer)
        if ledger is not None:
            close(ledger.signer)


def _gate(args: argparse.Namespace, signer: Signer | None, identity: IdentityOptions, ledger: Ledger | None) -> int:
    import os

    from mlgate.console import out
    from mlgate.errors import UsageError
    from mlgate.evidence.attestation import SIGNATURE_NAME
    from mlgate.files import write_atomically
    from mlgate.gate import evaluate
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    with platform.group(f"mlgate gate {args.ref}: integrity, lineage and policy"):
        outcome = evaluate(args.ref, policy_path=args.policy, artifacts_dir=args.artifacts, ci=platform.context(),
                           stage=args.stage, public_keys=args.public_key, identity=identity)
        envelope = None
        if signer is not None:
            from mlgate.evidence.attestation import sign

            envelope = sign(outcome.evidence, signer)  # before anything is written: a failure leaves no evidence
    signature_path = os.path.join(args.evidence_dir, SIGNATURE_NAME)
    try:
        os.makedirs(args.evidence_dir, exist_ok=True)
        if envelope is not None:
            write_atomically(signature_path, envelope)
        elif os.path.lexists(signature_path):
            os.remove(signature_path)  # a signature of an earlier run's evidence must not sit beside this one
        write_atomically(os.path.join(args.evidence_dir, "evidence.json"), outcome.evidence.to_json())
        write_atomically(os.path.join(args.evidence_dir, "evidence.md"), outcome.markdown.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write evidence to {args.evidence_dir}: {exc.strerror}",
                         hint="pass a writable --evidence-dir") from None
    out(outcome.summary)
    out(f"evidence: {os.path.join(args.evidence_dir, 'evidence.json')} and evidence.md")
    if signer is not None:
        out(f"evidence signature: {signature_path} (signed by {signer.description}, hint {signer.hint})")
    if args.set_alias or args.ledger:
        with platform.group("mlgate gate: alias and audit ledger"):
            _alias_and_ledger(args, outcome, platform, signer, ledger)
    if platform.is_ci:
        platform.summary(outcome.markdown)
        platform.set_output("evidence_sha256", outcome.evidence_sha256)
        platform.set_output("gate_passed", "true" if outcome.passed else "false")
        sealed = outcome.evidence.manifest_sha256
        if sealed:
            platform.set_output("manifest_sha256", sealed)
        if signer is not None:
            platform.set_output("evidence_signature", signature_path)
    if not outcome.passed:
        platform.fail(f"mlgate gate refused {args.ref}: " + ", ".join(outcome.failed_rules))
        return 1
    return 0
