"""The approvals rule: how many named people must approve, and who may not be among them.

One type for the whole path: the policy's ``approvals:`` block is parsed into it
(:mod:`mlgate.policy.loader`), the gate writes it into the evidence pack
(``requirements.approvals``, via :meth:`ApprovalRules.to_dict`), and ``record`` reads it back
from there (:meth:`ApprovalRules.from_dict`) and enforces it (:mod:`mlgate.approvals.duties`).

Every rule defaults to its strict setting: a block without some key (or no block at all) is
never laxer than one that spells the key out, and there is always at least one approver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlgate.errors import Error, InvalidInputError

DUTY_KEYS = ("approver_not_author", "approver_not_requester", "approver_not_committer")
KEYS = ("min_approvers", *DUTY_KEYS)


@dataclass(frozen=True)
class ApprovalRules:
    min_approvers: int = 1
    approver_not_author: bool = True
    approver_not_requester: bool = True
    approver_not_committer: bool = True

    @classmethod
    def from_dict(
        cls, block: object, *, where: str = "approvals", error: type[Error] = InvalidInputError
    ) -> ApprovalRules:
        """Validate an ``approvals`` block (``None``: the strict defaults); errors name the key."""
        if block is None:
            return cls()
        if not isinstance(block, Mapping):
            raise error(f"{where}: must be a mapping", hint="e.g. approvals: {min_approvers: 2}")
        for key in block:
            if key not in KEYS:
                raise error(f"{where}.{key}: unknown key", hint=f"known keys: {', '.join(KEYS)}")
        minimum = block.get("min_approvers", 1)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
            raise error(
                f"{where}.min_approvers: must be an integer >= 1 (got {minimum!r})",
                hint="a governed release needs at least one named approver",
            )
        duties = {key: block.get(key, True) for key in DUTY_KEYS}
        for key, value in duties.items():
            if not isinstance(value, bool):
                raise error(f"{where}.{key}: must be true or false (got {value!r})")
        return cls(minimum, **duties)

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "min_approvers": self.min_approvers,
            "approver_not_author": self.approver_not_author,
            "approver_not_requester": self.approver_not_requester,
            "approver_not_committer": self.approver_not_committer,
        }

    def tightened(self, block: Mapping[str, object]) -> ApprovalRules:
        """These rules with a stage's ``approvals`` block on top. The stage can only tighten:
        ``min_approvers`` is the larger of both, a duty rule is on if either side turns it on.
        A key the stage does not state adds nothing."""
        minimum = block.get("min_approvers", 1)
        return ApprovalRules(
            max(self.min_approvers, minimum if isinstance(minimum, int) else 1),
            self.approver_not_author or block.get("approver_not_author") is True,
            self.approver_not_requester or block.get("approver_not_requester") is True,
            self.approver_not_committer or block.get("approver_not_committer") is True,
        )


NO_DUTIES = ApprovalRules(1, False, False, False)  # a rollback: one named approver, no duty checks
