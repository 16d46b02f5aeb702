"""`mlgate record` and `mlgate rollback`: the governed record and its ledger entries.

``record REF --stage S``:

1. resolve REF in MLflow; check the gate's evidence pack (digest, same version, gated for stage S,
   passed) and bind it to the version's current seal and the gate's ``gated`` ledger entry;
2. read the named approver(s) from the CI's own approvals API (``--approver``/``--comment`` only
   outside CI: inside a GitHub Actions or Azure Pipelines run they are refused, exit 2);
3. enforce separation of duties (policy ``approvals:`` block); on a violation append a
   ``refused`` entry, promote nothing and exit 1;
4. append an ``approved`` entry (idempotent per CI run: a re-run finds its own entry and adds
   none), then write the tags and set alias S on the version.

The ledger entry is written before MLflow is touched: if a tag write fails, a re-run of the
same CI run finds the entry and finishes the job. ``mlgate.ledger.head`` (``SEQ:HASH`` of the
entry) anchors the ledger in MLflow so a rewritten ledger is caught by ``audit verify``.

``record`` runs after the deployment, so its ``approved`` entry (with the run URL, also in the
``mlgate.deployment`` tag) is the deployment's record; there is no separate ``deployed`` event.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgate import tags as T
from mlgate.approvals import ApprovalReport
from mlgate.approvals.duties import Violation, check_duties
from mlgate.approvals.rules import NO_DUTIES, ApprovalRules
from mlgate.errors import RefusedError, UsageError
from mlgate.evidence.pack import Evidence
from mlgate.governed import clip
from mlgate.ledger import Draft, Entry, Ledger
from mlgate.lineage.mlflow import MlflowClient, ModelVersion, NotFound
from mlgate.platforms.base import CIContext


@dataclass(frozen=True)
class Outcome:
    entry: Entry
    created: bool
    name: str
    version: str
    stage: str
    violations: list[Violation] = field(default_factory=list)
    report: ApprovalReport | None = None
    previous_version: str | None = None

    @property
    def refused(self) -> bool:
        return bool(self.violations)


# ---------------------------------------------------------------------------- rules
def duty_rules(
    *, policy_path: str | None, evidence: Evidence | None, version_tags: Mapping[str, str], stage: str
) -> tuple[ApprovalRules, str]:
    """The separation-of-duties rules and where they came from.

    ``--policy``: its ``approvals`` block for the version's risk class (and stage, when the
    policy lists it), read through the policy loader; else the requirements recorded in the
    evidence pack at gate time (``requirements.approvals``, read back through the same
    :class:`ApprovalRules` that wrote it); else the strict defaults. At least one approver always.
    """
    if policy_path:
        from mlgate.policy.loader import load_policy

        policy = load_policy(policy_path)
        risk = (version_tags.get(T.RISK_CLASS) or "").strip() or policy.default_risk
        if not risk or risk not in policy.risk_classes:
            raise UsageError(
                f"{policy_path}: cannot tell the risk class of this version (tag {T.RISK_CLASS}={risk!r})",
                hint=f"tag the version with {T.RISK_CLASS} or set default_risk in the policy",
            )
        rules = policy.requirements(risk, stage if stage in policy.stages else None).approvals
        return rules, f"policy {os.path.basename(policy_path)} (risk class {risk})"
    if evidence is not None and evidence.approvals is not None:
        return evidence.approvals, "the policy recorded in the evidence pack"
    return ApprovalRules(), "strict defaults (no policy given)"


# ---------------------------------------------------------------------------- helpers
def model_authors(client: MlflowClient, mv: ModelVersion) -> tuple[str, ...]:
    """``mlflow.user`` of the version's source run (and the version's own user_id), when known."""
    authors: list[str] = []
    if mv.user_id and mv.user_id.strip():
        authors.append(mv.user_id)
    if mv.run_id:
        try:
            run_user = client.get_run(mv.run_id).data.tags.get("mlflow.user")
        except NotFound:
            run_user = None
        if run_user is not None:
            authors.append(run_user)
    return tuple(dict.fromkeys(a for a in authors if a.strip()))


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except NotFound:
        return None


def run_key(ci: CIContext, event: str, name: str, version: str, stage: str, extra: str = "") -> str:
    """Idempotency key: one entry per CI run, event, version and stage (a re-run adds none)."""
    if ci.run_id or ci.run_url:
        who = f"{ci.platform}:{ci.repository or ''}:{ci.run_id or ci.run_url}"
    else:  # a local run has no id: the same inputs make the same key
        who = "local:" + hashlib.sha256(extra.encode("utf-8")).hexdigest()[:32]
    return f"{who}:{event}:{name}/{version}:{stage}"


def _approvers_payload(report: ApprovalReport) -> list[dict[str, Any]]:
    return [a.to_dict() for a in report.approvals]


# ---------------------------------------------------------------------------- record
def _record_details(
    ci: CIContext,
    report: ApprovalReport,
    rules: ApprovalRules,
    rules_source: str,
    evidence: Evidence,
    evidence_in_ledger: bool | None,
    evidence_signed_by: str | None = None,
) -> dict[str, Any]:
    from mlgate.governed.evidence import evidence_summary

    details: dict[str, Any] = {
        "platform": ci.platform,
        "commit": ci.commit,
        "approval_source": report.source,
        "approval_for": report.where,
        "ci_min_required": report.min_required,
        "duty_rules": rules.to_dict(),
        "duty_rules_source": rules_source,
        "evidence": evidence_summary(evidence),
    }
    if evidence_in_ledger is not None:
        details["evidence_in_ledger"] = evidence_in_ledger
    if evidence_signed_by is not None:  # the hint of the key the evidence signature was verified with
        details["evidence_signed_by"] = evidence_signed_by
    return details


def record(
    name: str,
    version: str,
    *,
    stage: str,
    authors: tuple[str, ...],
    ledger: Ledger,
    client: MlflowClient,
    ci: CIContext,
    report: ApprovalReport,
    evidence: Evidence,
    rules: ApprovalRules,
    rules_source: str,
    evidence_in_ledger: bool | None = None,
    evidence_signed_by: str | None = None,
) -> Outcome:
    """Record the approval of the resolved version ``name``/``version`` (``authors``: who trained it)."""
    violations = check_duties(report, rules, model_authors=authors)
    evidence_sha = evidence.sha256
    approvers = _approvers_payload(report)
    base: dict[str, Any] = {
        "model": f"models:/{name}/{version}",
        "stage": stage,
        "actor": ci.requester,
        "approvers": approvers,
        "evidence_sha256": evidence_sha,
        "run_url": ci.run_url,
    }
    fingerprint = repr(([(a["name"], a["comment"]) for a in approvers], evidence_sha))
    details = _record_details(ci, report, rules, rules_source, evidence, evidence_in_ledger, evidence_signed_by)
    if violations:
        details["violations"] = [v.to_dict() for v in violations]
        key = run_key(ci, "refused", name, version, stage, fingerprint)
        entry, created = ledger.append(Draft(event="refused", key=key, details=details, **base))
        return Outcome(entry, created, name, version, stage, violations, report)
    previous = current_alias_version(client, name, stage)
    details["alias"] = stage
    details["previous_version"] = previous if previous != version else None
    key = run_key(ci, "approved", name, version, stage, fingerprint)
    entry, created = ledger.append(Draft(event="approved", key=key, details=details, **base))
    if not created:  # a re-run: the entry's own facts are the record
        previous = entry.details.text("previous_version")
    write_record_tags(client, name, version, entry, ledger)
    client.set_registered_model_alias(name, stage, version)
    return Outcome(entry, created, name, version, stage, [], report, previous)


def _names(entry: Entry) -> str:
    return ", ".join(entry.approver_names)


def _approved_at(entry: Entry) -> str:
    times = [a.time for a in entry.approvers if a.time]
    return max(times) if times else entry.time


def _comments(entry: Entry) -> str:
    return "\n".join(f"{a.name}: {a.comment or ''}" for a in entry.approvers)


def ledger_tags(ledger: Ledger, entry: Entry) -> dict[str, str]:
    """The anchor: the ledger's identity, the entry's ``SEQ:HASH`` and (for people) where the ledger is."""
    from mlgate.ledger.anchors import anchor_name

    return {T.LEDGER: anchor_name(ledger), T.LEDGER_LOCATION: ledger.location, T.LEDGER_HEAD: entry.anchor}


def write_record_tags(client: MlflowClient, name: str, version: str, entry: Entry, ledger: Ledger) -> None:
    tags = {
        T.APPROVED_BY: clip(_names(entry)),
        T.APPROVED_AT: _approved_at(entry),
        T.APPROVAL_COMMENT: clip(_comments(entry)),
        T.EVIDENCE_SHA256: entry.evidence_sha256 or "",
        T.DEPLOYMENT: entry.run_url or f"{entry.details.text('platform') or 'local'} run",
        **ledger_tags(ledger, entry),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


# ---------------------------------------------------------------------------- rollback
def alias_history(ledger: Ledger, name: str, stage: str) -> list[Entry]:
    """The entries that moved alias ``stage`` of ``name`` (approved, rolled_back), oldest first."""
    prefix = f"models:/{name}/"
    return [
        e
        for e in ledger.entries()
        if e.event in ("approved", "rolled_back")
        and e.stage == stage
        and (e.model or "").startswith(prefix)
        and "/" not in (e.model or "")[len(prefix) :]
    ]


def _version_of(entry: Entry) -> str:
    return str(entry.model).rsplit("/", 1)[1]


def rollback_target(history: list[Entry], current: str | None, name: str, stage: str) -> tuple[Entry, Entry]:
    """(the entry that set the current version, the approved entry of the version to go back to).

    Replays the alias's history as a stack of approved versions: ``approved`` pushes a version,
    ``rolled_back`` pops back to its target. The target is the entry below the top, so a second
    rollback goes further back instead of returning to the version just rolled back from.
    """
    if not history:
        raise RefusedError(
            f"the ledger has no approved record of {name}@{stage}; nothing to roll back to",
            hint="roll back by hand with a change record, or record the versions first",
        )
    stack: list[Entry] = []
    for entry in history:
        version = _version_of(entry)
        if entry.event == "approved":
            if not stack or _version_of(stack[-1]) != version:
                stack.append(entry)
        else:
            while stack and _version_of(stack[-1]) != version:
                stack.pop()
            if not stack:  # rolled back to something approved before this ledger began
                stack.append(entry)
    last = history[-1]
    if current is not None and _version_of(last) != current:
        raise RefusedError(
            f"alias {stage} of {name} points at version {current}, but the ledger's last record moved it to "
            f"version {_version_of(last)}: the alias was moved outside mlgate",
            hint="investigate who moved the alias; record the current version with `mlgate record` first",
        )
    if len(stack) < 2:
        raise RefusedError(
            f"no earlier approved version of {name}@{stage} in the ledger (only {_version_of(last)})",
            hint="there is nothing approved to roll back to",
        )
    return last, stack[-2]


def _refuse_rollback(
    name: str, current: str, *, stage: str, ledger: Ledger, ci: CIContext, report: ApprovalReport,
    violations: list[Violation],
) -> Outcome:
    approvers = _approvers_payload(report)
    entry, created = ledger.append(
        Draft(
            event="refused",
            model=f"models:/{name}/{current}",
            stage=stage,
            actor=ci.requester,
            approvers=approvers,
            run_url=ci.run_url,
            key=run_key(ci, "refused-rollback", name, current, stage, repr(approvers)),
            details={"action": "rollback", "violations": [v.to_dict() for v in violations], "platform": ci.platform},
        )
    )
    return Outcome(entry, created, name, current, stage, violations, report)


def _write_rollback_tags(client: MlflowClient, name: str, version: str, entry: Entry, ledger: Ledger,
                         ci: CIContext) -> None:
    tags = {
        T.ROLLBACK_BY: clip(_names(entry)),
        T.ROLLBACK_AT: _approved_at(entry),
        T.ROLLBACK_COMMENT: clip(_comments(entry)),
        T.DEPLOYMENT: entry.run_url or f"{ci.platform} run",
        **ledger_tags(ledger, entry),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def rollback(
    name: str,
    *,
    stage: str,
    ledger: Ledger,
    client: MlflowClient,
    ci: CIContext,
    report: ApprovalReport,
) -> Outcome:
    """Move alias ``stage`` back to the previous approved version, with its own entry and approver."""
    violations = check_duties(report, NO_DUTIES)
    current = current_alias_version(client, name, stage)
    if current is None:
        raise RefusedError(
            f"registered model {name} has no alias {stage}; nothing to roll back",
            hint="check the model name and --stage",
        )
    if violations:
        return _refuse_rollback(name, current, stage=stage, ledger=ledger, ci=ci, report=report,
                                violations=violations)
    last, target = rollback_target(alias_history(ledger, name, stage), current, name, stage)
    to_version = _version_of(target)
    client.get_model_version(name, to_version)  # still registered (not deleted)?
    approvers = _approvers_payload(report)
    entry, created = ledger.append(
        Draft(
            event="rolled_back",
            model=f"models:/{name}/{to_version}",
            stage=stage,
            actor=ci.requester,
            approvers=approvers,
            evidence_sha256=target.evidence_sha256,
            run_url=ci.run_url,
            key=run_key(ci, "rolled_back", name, to_version, stage, repr((approvers, current))),
            details={
                "platform": ci.platform,
                "alias": stage,
                "from_version": current,
                "to_version": to_version,
                "approved_entry": target.anchor,
                "replaced_entry": last.anchor,
                "approval_source": report.source,
                "approval_for": report.where,
            },
        )
    )
    _write_rollback_tags(client, name, to_version, entry, ledger, ci)
    client.set_registered_model_alias(name, stage, to_version)
    return Outcome(entry, created, name, to_version, stage, [], report, current)
