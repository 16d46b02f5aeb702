"""Separation of duties: the people who approve a release are not the people who made it.

Rules come from the policy's ``approvals:`` block (``min_approvers``, ``approver_not_author``,
``approver_not_requester``, ``approver_not_committer``); each defaults to the strict setting
(at least one approver, every check on), so a policy without the block is never laxer than
one with it. Any approver who is also the MLflow run's author (``mlflow.user``), the person
who started the pipeline (``Build.RequestedFor`` / ``github.triggering_actor``) or, when known,
the author of the commit being deployed is a violation, even when enough other people also
approved: a conflicted approval is not silently discounted.

People are matched on every handle the CI gives (display name, login, unique name, email,
id), case-insensitively; an email also matches its local part, a GitHub no-reply email its
login, and ``DOMAIN\\user`` its user. Matching errs on the side of refusing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlgate.approvals import ApprovalReport
from mlgate.errors import InvalidInputError

_NOREPLY = re.compile(r"^(?:\d+\+)?([a-z0-9-]+)@users\.noreply\.github\.com$")
_BOOL_RULES = ("approver_not_author", "approver_not_requester", "approver_not_committer")


@dataclass(frozen=True)
class DutyRules:
    min_approvers: int = 1
    approver_not_author: bool = True
    approver_not_requester: bool = True
    approver_not_committer: bool = True

    @classmethod
    def from_policy(cls, block: object, *, where: str = "approvals") -> DutyRules:
        """Validate a policy ``approvals:`` block; errors name the key."""
        if block is None:
            return cls()
        if not isinstance(block, Mapping):
            raise InvalidInputError(f"{where}: must be a mapping", hint="e.g. approvals: {min_approvers: 2}")
        values: dict[str, Any] = {}
        for key, value in block.items():
            if key == "min_approvers":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise InvalidInputError(
                        f"{where}.min_approvers: must be an integer >= 1 (got {value!r})",
                        hint="a governed release needs at least one named approver",
                    )
                values[key] = value
            elif key in _BOOL_RULES:
                if not isinstance(value, bool):
                    raise InvalidInputError(f"{where}.{key}: must be true or false (got {value!r})")
                values[key] = value
            else:
                known = ", ".join(("min_approvers", *_BOOL_RULES))
                raise InvalidInputError(f"{where}.{key}: unknown key", hint=f"known keys: {known}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_approvers": self.min_approvers,
            "approver_not_author": self.approver_not_author,
            "approver_not_requester": self.approver_not_requester,
            "approver_not_committer": self.approver_not_committer,
        }


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    approver: str | None = None

    def to_dict(self) -> dict[str, Any]:
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


def check_duties(
    report: ApprovalReport, rules: DutyRules, *, model_authors: Iterable[str] = ()
) -> list[Violation]:
    """Every separation-of-duties violation (empty: the approval stands)."""
    violations: list[Violation] = []
    authors = tuple(model_authors)
    distinct = {a.person for a in report.approvals}
    required = max(rules.min_approvers, report.min_required or 0)
    if len(distinct) < required:
        names = ", ".join(sorted({a.approver for a in report.approvals})) or "nobody"
        violations.append(
            Violation(
                "min_approvers",
                f"{len(distinct)} distinct approver(s) ({names}) for {report.where or report.source}; "
                f"{required} required",
            )
        )
    for approval in report.approvals:
        ids = approval.identities or (approval.approver,)
        checks = (
            (
                "approver_not_author",
                rules.approver_not_author,
                authors,
                "the MLflow run's author (mlflow.user)",
            ),
            (
                "approver_not_requester",
                rules.approver_not_requester,
                report.requesters,
                "the person who started this pipeline run",
            ),
            (
                "approver_not_committer",
                rules.approver_not_committer,
                report.commit_authors,
                "the author of the commit being deployed",
            ),
        )
        for rule, enabled, others, role in checks:
            if not enabled:
                continue
            shared = _overlap(ids, others)
            if shared:
                violations.append(
                    Violation(
                        rule,
                        f"approver {approval.approver!r} is also {role} "
                        f"(matched on {', '.join(sorted(shared))})",
                        approval.approver,
                    )
                )
    return violations
