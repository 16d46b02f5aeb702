"""`mlgate gate`: integrity + lineage + policy -> evidence pack and a decision."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import add_ledger_option, add_ref, command_parser
from mlgate.commands._signing import KEY_FORMS, add_identity_options

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
    parser.add_argument("--public-key", metavar="KEY", action="append",
                        help=f"a trusted key the seal must be signed by ({KEY_FORMS.replace('private', 'public')}); "
                        "repeat for any of several")
    add_identity_options(parser)
    add_ledger_option(parser, purpose="also append a `gated` entry (passed or refused, evidence digest) to this "
                      "audit ledger (see `mlgate audit`); off unless given here or in MLGATE_LEDGER")
    return parser


def run(args: argparse.Namespace) -> int:
    import os

    from mlgate.console import out
    from mlgate.errors import UsageError
    from mlgate.files import write_atomically
    from mlgate.gate import evaluate
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    from mlgate.commands._signing import identity_options

    outcome = evaluate(args.ref, policy_path=args.policy, artifacts_dir=args.artifacts, ci=platform.context(),
                       stage=args.stage, public_keys=args.public_key, identity=identity_options(args))
    try:
        os.makedirs(args.evidence_dir, exist_ok=True)
        write_atomically(os.path.join(args.evidence_dir, "evidence.json"), outcome.evidence.to_json())
        write_atomically(os.path.join(args.evidence_dir, "evidence.md"), outcome.markdown.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write evidence to {args.evidence_dir}: {exc.strerror}",
                         hint="pass a writable --evidence-dir") from None
    out(outcome.summary)
    out(f"evidence: {os.path.join(args.evidence_dir, 'evidence.json')} and evidence.md")
    if args.ledger:
        from mlgate.governed.events import append_event

        model = outcome.evidence.model
        append_event(args.ledger, "gated", name=model.name, version=model.version,
                  ci=platform.context(), evidence_sha256=outcome.evidence_sha256,
                  details={"passed": outcome.passed, "failed_rules": list(outcome.failed_rules),
                           "stage": args.stage, "artifacts_checked": bool(args.artifacts)},
                  fingerprint=outcome.evidence_sha256)
    if platform.is_ci:
        platform.summary(outcome.markdown)
        platform.set_output("evidence_sha256", outcome.evidence_sha256)
        platform.set_output("gate_passed", "true" if outcome.passed else "false")
        sealed = outcome.evidence.manifest_sha256
        if sealed:
            platform.set_output("manifest_sha256", sealed)
    if not outcome.passed:
        platform.fail(f"mlgate gate refused {args.ref}: " + ", ".join(outcome.failed_rules))
        return 1
    return 0
