"""`mlgate record` / `mlgate rollback` (kept out of the command modules to keep start-up light)."""

from __future__ import annotations

import argparse

from mlgate.approvals import ApprovalReport
from mlgate.console import err, out
from mlgate.governed.record import Outcome


def _approver_lines(outcome: Outcome) -> list[str]:
    lines = []
    for a in outcome.entry.get("approvers") or []:
        when = a.get("time") or "time not reported by the CI"
        lines.append(
            f"  approved by {a.get('name')} ({a.get('id') or '-'}, {a.get('source')}) at {when}: "
            f"{a.get('comment') or '(no comment)'}"
        )
    return lines


def _ledger_line(outcome: Outcome, location: str) -> str:
    note = "" if outcome.created else " (already recorded by this run: no new entry)"
    return f"ledger {location}: entry seq {outcome.entry.seq} sha256 {outcome.entry.hash}{note}"


def _refused(platform: object, outcome: Outcome, what: str, location: str) -> int:
    from mlgate.platforms.base import Platform

    assert isinstance(platform, Platform)
    err(f"REFUSED: {what} models:/{outcome.name}/{outcome.version} for {outcome.stage}: separation of duties")
    for v in outcome.violations:
        err(f"  {v.rule}: {v.message}")
    err("  nothing was promoted; the refusal is in the ledger")
    out(_ledger_line(outcome, location))
    platform.fail(f"mlgate {what} refused (separation of duties): " + "; ".join(v.message for v in outcome.violations))
    return 1


def _summary_markdown(outcome: Outcome, title: str) -> str:
    cells = [
        (a.get("name"), a.get("source"), a.get("time") or "-", str(a.get("comment") or "").replace("|", "/"))
        for a in outcome.entry.get("approvers") or []
    ]
    rows = "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in cells)
    return (
        f"### {title}\n\n| approver | source | time | comment |\n|---|---|---|---|\n{rows}\n\n"
        f"evidence sha256 `{outcome.entry.get('evidence_sha256') or '-'}` · ledger head `{outcome.entry.anchor}`\n"
    )


def _approvals(args: argparse.Namespace, platform_name: str) -> ApprovalReport:
    """Who approved this run, from the CI's approvals (or --approver/--comment on a local run)."""
    from mlgate.governed.record import read_report

    return read_report(
        platform_name,
        stage=args.stage,
        approvers=args.approver,
        comment=args.comment,
        approval_stage=args.approval_stage,
        environment=args.environment,
    )


def run_record(args: argparse.Namespace) -> int:
    import os

    from mlgate.errors import UsageError
    from mlgate.governed.evidence import bind_evidence, load_evidence
    from mlgate.governed.record import duty_rules, record
    from mlgate.ledger import open_ledger
    from mlgate.lineage.artifacts import recorded_digest
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.platforms import detect_platform
    from mlgate.refs import ModelRef

    platform = detect_platform(args.platform)
    ci = platform.context()
    ledger = open_ledger(args.ledger)
    client = MlflowClient.from_env()
    parsed = ModelRef.parse(args.ref)
    mv = client.resolve(parsed)
    version = mv.version
    if not os.path.exists(args.evidence):
        raise UsageError(
            f"no evidence pack at {args.evidence}",
            hint="run `mlgate gate` first and pass --evidence with its evidence.json",
        )
    evidence = load_evidence(args.evidence, name=parsed.name, version=version, stage=args.stage)
    in_ledger = bind_evidence(evidence, path=args.evidence, name=parsed.name, version=version,
                              sealed_sha256=recorded_digest(mv), ledger=ledger)
    tags = mv.tags
    rules, source = duty_rules(policy_path=args.policy, evidence=evidence, version_tags=tags, stage=args.stage)
    report = _approvals(args, platform.name)
    outcome = record(
        f"models:/{parsed.name}/{version}",
        stage=args.stage,
        ledger=ledger,
        client=client,
        ci=ci,
        report=report,
        evidence=evidence,
        rules=rules,
        rules_source=source,
        evidence_in_ledger=in_ledger,
    )
    if not in_ledger:
        err(f"warning: the ledger {ledger.location} holds no `gated` entry for models:/{parsed.name}/{version}: "
            "the evidence was not found in the ledger (evidence_in_ledger: false); only its digest and the seal "
            "vouch for it. Configure MLGATE_LEDGER for the whole pipeline so `mlgate gate` writes one")
    if outcome.refused:
        return _refused(platform, outcome, "record", ledger.location)
    was = f" (was {outcome.previous_version})" if outcome.previous_version else ""
    out(
        f"recorded: models:/{outcome.name}/{outcome.version} approved for {outcome.stage}; "
        f"alias {outcome.stage} -> {outcome.version}{was}"
    )
    for line in _approver_lines(outcome):
        out(line)
    found = "found in the ledger" if in_ledger else "NOT found in the ledger"
    out(f"  evidence sha256 {outcome.entry.get('evidence_sha256')} ({found}); duties checked against {source}")
    out(_ledger_line(outcome, ledger.location))
    if platform.is_ci:
        platform.set_output("approver", ", ".join(str(a.get("name")) for a in outcome.entry.get("approvers") or []))
        platform.set_output("ledger_head", outcome.entry.anchor)
        platform.summary(
            _summary_markdown(outcome, f"mlgate record: {outcome.name} v{outcome.version} -> {outcome.stage}")
        )
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from mlgate.governed.record import rollback
    from mlgate.ledger import open_ledger
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    ci = platform.context()
    ledger = open_ledger(args.ledger)
    client = MlflowClient.from_env()
    report = _approvals(args, platform.name)
    outcome = rollback(args.name, stage=args.stage, ledger=ledger, client=client, ci=ci, report=report)
    if outcome.refused:
        return _refused(platform, outcome, "rollback", ledger.location)
    out(
        f"rolled back: {outcome.name}@{outcome.stage} -> version {outcome.version} "
        f"(from version {outcome.previous_version})"
    )
    for line in _approver_lines(outcome):
        out(line)
    out(_ledger_line(outcome, ledger.location))
    if platform.is_ci:
        platform.set_output("ledger_head", outcome.entry.anchor)
        platform.summary(
            _summary_markdown(outcome, f"mlgate rollback: {outcome.name}@{outcome.stage} -> v{outcome.version}")
        )
    return 0
