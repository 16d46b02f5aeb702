"""`mlgate record`: record the named approver(s) of this CI run and set the stage alias.

The module imports only the standard library; MLflow, the ledger and the approvals readers are
imported inside :func:`run`, so ``mlgate --help`` stays fast. The output helpers here are shared
with `mlgate rollback`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import add_ref, command_parser
from mlgate.commands._signing import KEY_FORMS

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalRequest
    from mlgate.governed.record import Outcome
    from mlgate.ledger import Ledger
    from mlgate.platforms.base import Platform
    from mlgate.signing.keys import PublicKey

HELP = "record the named approver(s) of this CI run and set the stage alias"
DESCRIPTION = """\
Read who approved this run from the CI (Azure DevOps: the stage's environment approval;
GitHub: the environment's reviewers; local: --approver/--comment), enforce separation of
duties, append an audit ledger entry, write the governed record on the MLflow model version
(tags mlgate.approved_by, mlgate.approved_at, mlgate.approval_comment, mlgate.evidence.sha256,
mlgate.deployment, mlgate.ledger.head) and set the stage alias. Re-running for the same CI run
adds no second entry. Exit 1 on a duty conflict (recorded as a refused entry; nothing promoted).
Inside a CI run (GITHUB_ACTIONS, TF_BUILD) the approvers come only from that CI's approvals:
--platform local, --approver and --comment are refused there (exit 2).
"""


def add_approval_options(parser: argparse.ArgumentParser) -> None:
    from mlgate.commands._common import add_ledger_key_option, add_ledger_option
    from mlgate.commands._signing import add_identity_options

    add_ledger_option(parser)
    add_ledger_key_option(parser)
    add_identity_options(parser)
    parser.add_argument("--approver", metavar="NAME", action="append", default=[],
                        help="local runs only (refused in CI): who approved (repeat for several)")
    parser.add_argument("--comment", metavar="TEXT", help="local runs only (refused in CI): why it was approved")
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
    parser.add_argument("--evidence-key", metavar="KEY",
                        help=f"the gate's public key ({KEY_FORMS}): the evidence must carry a signature by it "
                        "(`mlgate gate --sign`) over exactly that evidence, else exit 1 naming what was expected "
                        "and found; default: the signature is not checked")
    parser.add_argument("--evidence-signature", metavar="FILE",
                        help="with --evidence-key: the DSSE envelope `mlgate gate --sign` wrote (default: "
                        "evidence.dsse.json beside --evidence)")
    add_approval_options(parser)
    return parser


# ---------------------------------------------------------------------------- shared with rollback
def approval_request(args: argparse.Namespace) -> ApprovalRequest:
    from mlgate.approvals import ApprovalRequest

    return ApprovalRequest(
        stage=args.stage,
        approvers=tuple(a for a in args.approver if a and a.strip()),
        comment=args.comment,
        approval_stage=args.approval_stage,
        environment=args.environment,
    )


def approver_lines(outcome: Outcome) -> list[str]:
    lines = []
    for a in outcome.entry.approvers:
        when = a.time or "time not reported by the CI"
        lines.append(
            f"  approved by {a.name} ({a.id or '-'}, {a.source}) at {when}: "
            f"{a.comment or '(no comment)'}"
        )
    return lines


def ledger_line(outcome: Outcome, location: str) -> str:
    note = "" if outcome.created else " (already recorded by this run: no new entry)"
    return f"ledger {location}: entry seq {outcome.entry.seq} sha256 {outcome.entry.hash}{note}"


def refused(platform: Platform, outcome: Outcome, what: str, location: str) -> int:
    from mlgate.console import err, out

    err(f"REFUSED: {what} models:/{outcome.name}/{outcome.version} for {outcome.stage}: separation of duties")
    for v in outcome.violations:
        err(f"  {v.rule}: {v.message}")
    err("  nothing was promoted; the refusal is in the ledger")
    out(ledger_line(outcome, location))
    platform.fail(f"mlgate {what} refused (separation of duties): " + "; ".join(v.message for v in outcome.violations))
    return 1


def summary_markdown(outcome: Outcome, title: str, *, ledger: str | None = None, in_ledger: bool | None = None,
                     duties: str | None = None) -> str:
    """The step summary: what was promoted, by whom (every named approver and comment), on what evidence."""
    from mlgate.evidence.markdown import cell, folded_table

    rows = [[a.name, a.source, a.time or "-", a.comment or ""] for a in outcome.entry.approvers]
    was = f" (was version {cell(outcome.previous_version)})" if outcome.previous_version else ""
    found = {True: " — found in the ledger's `gated` entry", False: " — **not found in the ledger**", None: ""}
    lines = [f"## ✅ {cell(title)}", "",
             f"Alias `{cell(outcome.stage)}` of `{cell(outcome.name)}` -> version {cell(outcome.version)}{was}.", "",
             f"**{len(rows)} named approver(s)**" + (f"; separation of duties checked against {cell(duties)}"
                                                     if duties else "") + ":", "",
             *folded_table(["approver", "source", "time", "comment"], rows, what="approvers"),
             f"Evidence `sha256:{cell(outcome.entry.evidence_sha256 or '-')}`{found[in_ledger]}.", "",
             f"Ledger {f'`{cell(ledger)}` ' if ledger else ''}entry seq {outcome.entry.seq}, head "
             f"`{cell(outcome.entry.anchor)}` (also tagged on the version: `mlgate audit verify` checks both).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- record
def _evidence_exists(path: str) -> None:
    """Say how to make the evidence when there is none (its reading, bounded and non-blocking so a
    FIFO or a directory is exit 2, is :func:`mlgate.governed.evidence.read_pack`)."""
    import os

    from mlgate.errors import UsageError

    if not os.path.lexists(path):
        raise UsageError(
            f"no evidence pack at {path}",
            hint="run `mlgate gate` first and pass --evidence with its evidence.json",
        )


def run(args: argparse.Namespace) -> int:
    from mlgate.commands._signing import identity_options
    from mlgate.governed.evidence import bind_evidence, read_pack
    from mlgate.governed.record import duty_rules, model_authors, record
    from mlgate.ledger import open_ledger
    from mlgate.lineage.artifacts import recorded_digest
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.platforms import approval_platform
    from mlgate.refs import ModelRef

    request = approval_request(args)
    platform = approval_platform(request, args.platform)  # a self-declared approval in CI: refused first
    trusted = _evidence_key(args)
    ledger = open_ledger(args.ledger, sign=args.ledger_key, identity=identity_options(args))
    client = MlflowClient.from_env()
    parsed = ModelRef.parse(args.ref)
    mv = client.resolve(parsed)
    version = mv.version
    _evidence_exists(args.evidence)
    evidence = read_pack(args.evidence, name=parsed.name, version=version, stage=args.stage)
    if trusted is not None:
        from mlgate.governed.evidence import check_signed, signature_path

        check_signed(evidence, path=args.evidence, signature=signature_path(args.evidence, args.evidence_signature),
                     key=trusted)
    in_ledger = bind_evidence(evidence, path=args.evidence, name=parsed.name, version=version,
                              sealed_sha256=recorded_digest(mv), ledger=ledger)
    rules, source = duty_rules(policy_path=args.policy, evidence=evidence, version_tags=mv.tags, stage=args.stage)
    with platform.group("mlgate record: read the run's named approvers"):
        report = platform.read_approvals(request)
    outcome = record(parsed.name, version, stage=args.stage, authors=model_authors(client, mv), ledger=ledger,
                     client=client, ci=platform.context(), report=report, evidence=evidence, rules=rules,
                     rules_source=source, evidence_in_ledger=in_ledger,
                     evidence_signed_by=trusted.hint if trusted is not None else None)
    return _say(platform, outcome, ledger, in_ledger, source)


def _evidence_key(args: argparse.Namespace) -> PublicKey | None:
    """The gate's public key the evidence must be signed by (read first: a bad key is exit 2 before any work)."""
    if not args.evidence_key:
        if args.evidence_signature:
            from mlgate.errors import UsageError

            raise UsageError("--evidence-signature needs --evidence-key (the key it must be signed by)",
                             hint="pass --evidence-key KEY, or drop --evidence-signature")
        return None
    from mlgate.commands._signing import load_public_key

    return load_public_key(args.evidence_key, args)


def _say(platform: Platform, outcome: Outcome, ledger: Ledger, in_ledger: bool, source: str) -> int:
    from mlgate.console import err, out

    model = f"models:/{outcome.name}/{outcome.version}"
    if not in_ledger:
        err(f"warning: the ledger {ledger.location} holds no `gated` entry for {model}: the evidence was not "
            "found in the ledger (evidence_in_ledger: false); only its digest and the seal vouch for it. "
            "Configure MLGATE_LEDGER for the whole pipeline so `mlgate gate` writes one")
    if outcome.refused:
        return refused(platform, outcome, "record", ledger.location)
    was = f" (was {outcome.previous_version})" if outcome.previous_version else ""
    out(f"recorded: {model} approved for {outcome.stage}; alias {outcome.stage} -> {outcome.version}{was}")
    for line in approver_lines(outcome):
        out(line)
    found = "found in the ledger" if in_ledger else "NOT found in the ledger"
    out(f"  evidence sha256 {outcome.entry.evidence_sha256} ({found}); duties checked against {source}")
    out(ledger_line(outcome, ledger.location))
    if platform.is_ci:
        platform.set_output("approver", ", ".join(outcome.entry.approver_names))
        platform.set_output("ledger_head", outcome.entry.anchor)
        platform.summary(
            summary_markdown(outcome, f"mlgate record: {outcome.name} v{outcome.version} → {outcome.stage}",
                             ledger=ledger.location, in_ledger=in_ledger, duties=source)
        )
    return 0
