"""Separation of duties: the people who approve a release are not the people who made it.

Rules are an :class:`~mlgate.approvals.rules.ApprovalRules` (the policy's ``approvals:`` block:
``min_approvers``, ``approver_not_author``, ``approver_not_requester``, ``approver_not_committer``);
each defaults to the strict setting (at least one approver, every check on), so a policy without
the block is never laxer than one with it. Any approver who is also the MLflow run's author
(``mlflow.user``), the person who started the pipeline (``Build.RequestedFor`` /
``github.triggering_actor``) or, when known, the author of the commit being deployed is a
violation, even when enough other people also approved: a conflicted approval is not silently
discounted.

People are matched on every handle the CI gives (display name, login, unique name, email,
id), case-insensitively; an email also matches its local part, a GitHub no-reply email its
login, and ``DOMAIN\\user`` its user. Matching errs on the side of refusing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlgate.approvals import ApprovalReport
from mlgate.approvals.rules import ApprovalRules

_NOREPLY = re.compile(r"^(?:\d+\+)?([a-z0-9-]+)@users\.noreply\.github\.com$")


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    approver: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"rule": self.rule, "approver": self.approver, "message": self.message}


def person_keys(handle: str) -> set[str]:
    """Every normalised form under which ``handle`` may name a person."""
    value = handle.strip().lower()
    if not value:
        return set()
    keys = {value}
    noreply = _NOREPLY.match(value)
    if noreply:
        keys.add(noreply.group(1))
    if "@" in value:
        local = value.split("@", 1)[0]
        if local:
            keys.add(local)
    if "\\" in value:
        keys.add(value.rsplit("\\", 1)[1])
    return keys


def _overlap(a: Iterable[str], b: Iterable[str]) -> set[str]:
    left: set[str] = set().union(*(person_keys(h) for h in a)) if a else set()
    right: set[str] = set().union(*(person_keys(h) for h in b)) if b else set()
    return left & right


def _too_few(report: ApprovalReport, rules: ApprovalRules) -> list[Violation]:
    distinct = {a.person for a in report.approvals}
    required = max(rules.min_approvers, report.min_required or 0)
    if len(distinct) >= required:
        return []
    names = ", ".join(sorted({a.approver for a in report.approvals})) or "nobody"
    where = report.where or report.source
    return [Violation("min_approvers", f"{len(distinct)} distinct approver(s) ({names}) for {where}; "
                      f"{required} required")]


def check_duties(
    report: ApprovalReport, rules: ApprovalRules, *, model_authors: Iterable[str] = ()
) -> list[Violation]:
    """Every separation-of-duties violation (empty: the approval stands)."""
    violations = _too_few(report, rules)
    checks = (
        ("approver_not_author", rules.approver_not_author, tuple(model_authors),
         "the MLflow run's author (mlflow.user)"),
        ("approver_not_requester", rules.approver_not_requester, report.requesters,
         "the person who started this pipeline run"),
        ("approver_not_committer", rules.approver_not_committer, report.commit_authors,
         "the author of the commit being deployed"),
    )
    for approval in report.approvals:
        ids = approval.identities or (approval.approver,)
        for rule, enabled, others, role in checks:
            shared = _overlap(ids, others) if enabled else set()
            if shared:
                message = f"approver {approval.approver!r} is also {role} (matched on {', '.join(sorted(shared))})"
                violations.append(Violation(rule, message, approval.approver))
    return violations
