"""Who approved this run's deployment: one result shape, one reader per CI system.

* :mod:`mlgate.approvals.azure_devops`: the build timeline's ``Checkpoint.Approval`` records
  for the stage, then the Approvals REST API with ``$expand=steps``;
* :mod:`mlgate.approvals.github`: the workflow run's review history for the environment;
* :mod:`mlgate.approvals.local`: ``--approver NAME --comment TEXT`` on a developer machine,
  never inside a CI run (see :meth:`mlgate.platforms.base.Platform.read_approvals`).

Every reader also reports who started the run and, when known, who authored the commit,
so :mod:`mlgate.approvals.duties` can enforce separation of duties.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Approval:
    """One named person's approval."""

    approver: str  # display name (Azure DevOps displayName, GitHub login, local name)
    approver_id: str | None  # a stable handle: Azure DevOps uniqueName/id, GitHub login id
    comment: str
    time: str | None  # when they approved (GitHub's review history has no time: None)
    source: str  # "azure-devops" | "github" | "local"
    identities: tuple[str, ...] = ()  # every handle naming this person, for duty checks

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.approver,
            "id": self.approver_id,
            "comment": self.comment,
            "time": self.time,
            "source": self.source,
            "identities": list(self.identities),
        }

    @property
    def person(self) -> str:
        """A key that is the same for the same person (to count distinct approvers)."""
        return (self.approver_id or self.approver).strip().lower()


@dataclass(frozen=True)
class ApprovalReport:
    """What the CI says about this run's approval and the people around it."""

    source: str
    approvals: tuple[Approval, ...]
    min_required: int | None = None  # what the CI itself required (Azure DevOps minRequiredApprovers)
    requesters: tuple[str, ...] = ()  # who started the run (every handle we know)
    commit_authors: tuple[str, ...] = ()  # who authored the commit being deployed, when known
    where: str = ""  # which stage / environment these approvals are for


@dataclass(frozen=True)
class ApprovalRequest:
    """What `record` / `rollback` ask of a platform: whose approval, for which stage.

    ``approvers`` and ``comment`` are the local-only ``--approver`` / ``--comment`` (or their
    ``MLGATE_APPROVER`` / ``MLGATE_COMMENT`` defaults); a CI platform refuses them.
    """

    stage: str
    approvers: tuple[str, ...] = ()
    comment: str | None = None
    approval_stage: str | None = None  # Azure DevOps: the stage whose environment approval to read
    environment: str | None = None  # GitHub: the environment whose reviewers to read

    @property
    def declared(self) -> tuple[str, ...]:
        """The options that declare an approval by hand (empty: none given)."""
        return tuple(
            option for option, given in (("--approver", self.approvers), ("--comment", self.comment)) if given
        )


def handles(*values: object) -> tuple[str, ...]:
    """The non-empty string handles among ``values``, de-duplicated, order kept."""
    seen: dict[str, None] = {}
    for value in values:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            seen.setdefault(str(value).strip(), None)
    return tuple(seen)


__all__ = ["Approval", "ApprovalReport", "ApprovalRequest", "handles"]
