"""`mlgate record` and `mlgate rollback`: the governed record and its ledger entries.

``record REF --stage S``:

1. resolve REF in MLflow; check the gate's evidence pack (digest, same version, gated for stage S,
   passed) and bind it to the version's current seal and the gate's ``gated`` ledger entry;
2. read the named approver(s) from the CI (or ``--approver``/``--comment`` locally);
3. enforce separation of duties (policy ``approvals:`` block); on a violation append a
   ``refused`` entry, promote nothing and exit 1;
4. append an ``approved`` entry (idempotent per CI run: a re-run finds its own entry and adds
   none), then write the tags and set alias S on the version.

The ledger entry is written before MLflow is touched: if a tag write fails, a re-run of the
same CI run finds the entry and finishes the job. ``mlgate.ledger.head`` (``SEQ:HASH`` of the
entry) anchors the ledger in MLflow so a rewritten ledger is caught by ``audit verify``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlgate.approvals import ApprovalReport
from mlgate.approvals.duties import DutyRules, Violation, check_duties
from mlgate.errors import RefusedError, UsageError
from mlgate.governed import (
    TAG_APPROVAL_COMMENT,
    TAG_APPROVED_AT,
    TAG_APPROVED_BY,
    TAG_DEPLOYMENT,
    TAG_EVIDENCE,
    TAG_LEDGER,
    TAG_LEDGER_HEAD,
    TAG_ROLLBACK_AT,
    TAG_ROLLBACK_BY,
    TAG_ROLLBACK_COMMENT,
    clip,
)
from mlgate.ledger import Draft, Entry, Ledger
from mlgate.ledger.base import utc_now
from mlgate.lineage.mlflow import MlflowClient, ModelVersion, NotFound
from mlgate.platforms.base import CIContext
from mlgate.refs import ModelRef


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


# ---------------------------------------------------------------------------- approvals
def read_report(
    platform: str,
    *,
    stage: str,
    approvers: Sequence[str] = (),
    comment: str | None = None,
    approval_stage: str | None = None,
    environment: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApprovalReport:
    """Who approved, read from the CI this runs in (``--approver`` only outside CI)."""
    env = dict(os.environ if environ is None else environ)
    if platform in ("github", "azure-devops") and approvers:
        raise UsageError(
            "--approver is only for local runs; in CI the approver is read from the CI's own approval",
            hint="configure an approval on the environment / stage and drop --approver",
        )
    if platform == "github":
        from mlgate.approvals import github

        return github.read_approvals(env, environment=environment or stage)
    if platform == "azure-devops":
        from mlgate.approvals import azure_devops

        return azure_devops.read_approvals(env, stage=approval_stage)
    from mlgate.approvals import local

    return local.read_approvals(approvers, comment, time=utc_now())


def duty_rules(
    *, policy_path: str | None, evidence: Mapping[str, Any] | None, version_tags: Mapping[str, str], stage: str
) -> tuple[DutyRules, str]:
    """The separation-of-duties rules and where they came from.

    ``--policy``: its ``approvals`` block for the version's risk class (and stage, when the
    policy lists it), read through the policy loader; else the requirements recorded in the
    evidence pack at gate time; else the strict defaults. At least one approver always.
    """
    if policy_path:
        from mlgate.policy.loader import load_policy

        policy = load_policy(policy_path)
        risk = (version_tags.get("risk_class") or "").strip() or policy.default_risk
        if not risk or risk not in policy.risk_classes:
            raise UsageError(
                f"{policy_path}: cannot tell the risk class of this version (tag risk_class={risk!r})",
                hint="tag the version with risk_class or set default_risk in the policy",
            )
        req = policy.requirements(risk, stage if stage in policy.stages else None)
        a = req.approvals
        rules = DutyRules(max(1, a.min_approvers), a.approver_not_author, a.approver_not_requester,
                          a.approver_not_committer)
        return rules, f"policy {os.path.basename(policy_path)} (risk class {risk})"
    requirements = (evidence or {}).get("requirements")
    block = requirements.get("approvals") if isinstance(requirements, dict) else None
    if isinstance(block, dict):
        # A rule the recorded block does not mention is strict, never lax.
        rules = DutyRules(
            max(1, int(block.get("min_approvers") or 1)),
            block.get("approver_not_author") is not False,
            block.get("approver_not_requester") is not False,
            block.get("approver_not_committer") is not False,
        )
        return rules, "the policy recorded in the evidence pack"
    return DutyRules(), "strict defaults (no policy given)"


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
def record(
    ref: str,
    *,
    stage: str,
    ledger: Ledger,
    client: MlflowClient,
    ci: CIContext,
    report: ApprovalReport,
    evidence: Mapping[str, Any],
    rules: DutyRules,
    rules_source: str,
    evidence_in_ledger: bool | None = None,
) -> Outcome:
    from mlgate.governed.evidence import evidence_summary

    parsed = ModelRef.parse(ref)
    mv = client.resolve(parsed)
    name, version = parsed.name, mv.version
    authors = model_authors(client, mv)
    violations = check_duties(report, rules, model_authors=authors)
    evidence_sha = str(evidence.get("evidence_sha256")) if evidence else None
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
    details: dict[str, Any] = {
        "platform": ci.platform,
        "commit": ci.commit,
        "approval_source": report.source,
        "approval_for": report.where,
        "ci_min_required": report.min_required,
        "duty_rules": rules.to_dict(),
        "duty_rules_source": rules_source,
        "evidence": evidence_summary(dict(evidence)) if evidence else None,
    }
    if evidence_in_ledger is not None:
        details["evidence_in_ledger"] = evidence_in_ledger
    if violations:
        details["violations"] = [v.to_dict() for v in violations]
        entry, created = ledger.append(
            Draft(
                event="refused",
                key=run_key(ci, "refused", name, version, stage, fingerprint),
                details=details,
                **base,
            )
        )
        return Outcome(entry, created, name, version, stage, violations, report)
    previous = current_alias_version(client, name, stage)
    details["alias"] = stage
    details["previous_version"] = previous if previous != version else None
    entry, created = ledger.append(
        Draft(
            event="approved",
            key=run_key(ci, "approved", name, version, stage, fingerprint),
            details=details,
            **base,
        )
    )
    if not created:  # a re-run: the entry's own facts are the record
        previous = entry.get("details", {}).get("previous_version")
    write_record_tags(client, name, version, entry, ledger)
    client.set_registered_model_alias(name, stage, version)
    return Outcome(entry, created, name, version, stage, [], report, previous)


def _names(entry: Entry) -> str:
    return ", ".join(str(a.get("name")) for a in entry.get("approvers") or [])


def _approved_at(entry: Entry) -> str:
    times = [str(a["time"]) for a in entry.get("approvers") or [] if a.get("time")]
    return max(times) if times else str(entry.get("time"))


def _comments(entry: Entry) -> str:
    return "\n".join(f"{a.get('name')}: {a.get('comment') or ''}" for a in entry.get("approvers") or [])


def ledger_tags(ledger: Ledger, entry: Entry) -> dict[str, str]:
    """The anchor: the ledger's identity, the entry's ``SEQ:HASH`` and (for people) where the ledger is."""
    from mlgate.ledger.anchors import LOCATION_TAG, anchor_name

    return {TAG_LEDGER: anchor_name(ledger), LOCATION_TAG: ledger.location, TAG_LEDGER_HEAD: entry.anchor}


def write_record_tags(client: MlflowClient, name: str, version: str, entry: Entry, ledger: Ledger) -> None:
    tags = {
        TAG_APPROVED_BY: clip(_names(entry)),
        TAG_APPROVED_AT: _approved_at(entry),
        TAG_APPROVAL_COMMENT: clip(_comments(entry)),
        TAG_EVIDENCE: str(entry.get("evidence_sha256") or ""),
        TAG_DEPLOYMENT: str(entry.get("run_url") or f"{entry.get('details', {}).get('platform', 'local')} run"),
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
        and e.get("stage") == stage
        and str(e.get("model") or "").startswith(prefix)
        and "/" not in str(e.get("model"))[len(prefix) :]
    ]


def _version_of(entry: Entry) -> str:
    return str(entry.get("model")).rsplit("/", 1)[1]


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
    rules = DutyRules(
        min_approvers=1, approver_not_author=False, approver_not_requester=False, approver_not_committer=False
    )
    violations = check_duties(report, rules)
    current = current_alias_version(client, name, stage)
    if current is None:
        raise RefusedError(
            f"registered model {name} has no alias {stage}; nothing to roll back",
            hint="check the model name and --stage",
        )
    history = alias_history(ledger, name, stage)
    approvers = _approvers_payload(report)
    if violations:
        entry, created = ledger.append(
            Draft(
                event="refused",
                model=f"models:/{name}/{current}",
                stage=stage,
                actor=ci.requester,
                approvers=approvers,
                run_url=ci.run_url,
                key=run_key(ci, "refused-rollback", name, current, stage, repr(approvers)),
                details={
                    "action": "rollback",
                    "violations": [v.to_dict() for v in violations],
                    "platform": ci.platform,
                },
            )
        )
        return Outcome(entry, created, name, current, stage, violations, report)
    last, target = rollback_target(history, current, name, stage)
    to_version = _version_of(target)
    client.get_model_version(name, to_version)  # still registered (not deleted)?
    entry, created = ledger.append(
        Draft(
            event="rolled_back",
            model=f"models:/{name}/{to_version}",
            stage=stage,
            actor=ci.requester,
            approvers=approvers,
            evidence_sha256=target.get("evidence_sha256"),
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
    tags = {
        TAG_ROLLBACK_BY: clip(_names(entry)),
        TAG_ROLLBACK_AT: _approved_at(entry),
        TAG_ROLLBACK_COMMENT: clip(_comments(entry)),
        TAG_DEPLOYMENT: str(entry.get("run_url") or f"{ci.platform} run"),
        **ledger_tags(ledger, entry),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, to_version, key, value)
    client.set_registered_model_alias(name, stage, to_version)
    return Outcome(entry, created, name, to_version, stage, [], report, current)
