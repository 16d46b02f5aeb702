"""Azure DevOps: the named approvers of this run's stage.

1. ``GET {collection}{project}/_apis/build/builds/{buildId}/timeline``: environment approvals
   appear as ``Checkpoint.Approval`` records whose parent is the stage's ``Checkpoint`` record;
   their ``id`` is the approval id.
2. ``GET {collection}{project}/_apis/pipelines/approvals?approvalIds=...&$expand=steps``: each
   approved step's ``actualApprover`` (displayName, uniqueName, id), comment and time, and the
   approval's ``minRequiredApprovers`` (pages followed by ``x-ms-continuationtoken``, bounded).

Both answers are parsed once into the typed records below, every field's type checked
(:class:`mlgate.jsonvalue.Fields`): a wrong-typed field is exit 3 naming the field and the answer.

Both are plain REST with ``requests`` (bearer ``SYSTEM_ACCESSTOKEN``). The ``azure-devops``
package has no approvals client at all; it does have ``BuildClient.get_build_timeline``, but
using it for the timeline alone would add its import time (~0.3 s), an ``OPTIONS`` route
discovery round-trip and an on-disk location cache, and a second HTTP stack with different
timeout/retry behaviour, for one GET whose URL is documented and stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

from mlgate import redact
from mlgate.approvals import Approval, ApprovalReport, handles
from mlgate.errors import NetworkError, RefusedError, UsageError
from mlgate.jsonvalue import Fields

API_VERSION = "7.1"
SOURCE = "azure-devops"
TIMELINE = "the Azure DevOps build timeline"
APPROVALS = "the Azure DevOps Approvals API"
AUTH_HINT = (
    "map the job's token into the step (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)) and allow the "
    "build service identity to view builds and approvals in this project"
)


# ---------------------------------------------------------------------------- typed answers
@dataclass(frozen=True)
class TimelineRecord:
    id: str | None
    type: str | None
    parent_id: str | None
    identifier: str | None
    name: str | None

    @classmethod
    def parse(cls, f: Fields) -> TimelineRecord:
        return cls(f.opt_text("id"), f.opt_text("type"), f.opt_text("parentId"), f.opt_text("identifier"),
                   f.opt_text("name"))

    def is_stage(self, wanted: str) -> bool:
        return self.type == "Stage" and wanted.lower() in ((self.identifier or "").lower(), (self.name or "").lower())


@dataclass(frozen=True)
class Identity:
    display_name: str
    unique_name: str | None
    id: str | None

    @classmethod
    def parse(cls, f: Fields) -> Identity | None:
        name = f.opt_text("displayName")
        if not name or not name.strip():
            return None
        return cls(name, f.opt_text("uniqueName") or None, f.opt_text("id") or None)


@dataclass(frozen=True)
class Step:
    status: str | None
    approver: Identity | None
    comment: str
    time: str | None

    @classmethod
    def parse(cls, f: Fields) -> Step:
        approver = Identity.parse(f.obj("actualApprover")) if f.has("actualApprover") else None
        return cls(f.opt_text("status"), approver, f.opt_text("comment", "") or "", f.opt_text("lastModifiedOn"))


@dataclass(frozen=True)
class ApprovalItem:
    id: str
    status: str | None
    min_required: int | None
    steps: tuple[Step, ...] | None  # None: the answer has no steps list

    @classmethod
    def parse(cls, f: Fields) -> ApprovalItem:
        steps = tuple(Step.parse(s) for s in f.objs("steps")) if f.has("steps") else None
        return cls(f.text("id"), f.opt_text("status"), f.opt_integer("minRequiredApprovers"), steps)


def _unusable(what: str, field: str, why: str) -> NoReturn:
    raise NetworkError(f"{what}: field {field}: {why}",
                       hint="the Azure DevOps API answered an unknown shape; nothing was recorded")


def parse_timeline(body: Any) -> tuple[TimelineRecord, ...]:
    f = Fields(body, TIMELINE)
    if not isinstance(f.raw("records"), list):
        _unusable(TIMELINE, "records", "expected the list of timeline records")
    return tuple(TimelineRecord.parse(r) for r in f.objs("records"))


def parse_approval_items(body: Any) -> list[ApprovalItem]:
    """The approvals of one page: the wire form ``{count, value}`` (or a bare list)."""
    if isinstance(body, list):
        values: list[Any] = body
    else:
        f = Fields(body, APPROVALS)
        if not isinstance(f.raw("value"), list):
            _unusable(APPROVALS, "value", "expected the list of approvals")
        values = f.items("value")
    return [ApprovalItem.parse(Fields(item, APPROVALS, path=f"value[{i}]")) for i, item in enumerate(values)]


# ---------------------------------------------------------------------------- reading
def _required(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set; cannot read this run's approvals from Azure DevOps", hint=hint)
    return value


def read_approvals(env: Mapping[str, str], *, stage: str | None = None) -> ApprovalReport:
    """Read who approved the stage ``stage`` (default ``SYSTEM_STAGENAME``) of build ``BUILD_BUILDID``."""
    from mlgate.approvals._http import get_json, get_pages
    from mlgate.http import make_session

    token = _required(env, "SYSTEM_ACCESSTOKEN", AUTH_HINT)
    redact.register(token)
    job = "run inside an Azure Pipelines job"
    collection = _required(env, "SYSTEM_COLLECTIONURI", job).rstrip("/") + "/"
    project = env.get("SYSTEM_TEAMPROJECTID", "").strip() or _required(env, "SYSTEM_TEAMPROJECT", job)
    build_id = _required(env, "BUILD_BUILDID", job)
    stage_name = (stage or env.get("SYSTEM_STAGENAME", "")).strip()
    if not stage_name:
        raise UsageError(
            "no stage to read approvals for",
            hint="pass --approval-stage NAME, or run inside a stage (SYSTEM_STAGENAME)",
        )
    base = f"{collection}{quote(project, safe='')}/_apis"
    session = make_session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.headers["Accept"] = "application/json"
    timeline = get_json(session, f"{base}/build/builds/{quote(build_id, safe='')}/timeline",
                        params={"api-version": API_VERSION}, what=TIMELINE, auth_hint=AUTH_HINT)
    approval_ids = approval_ids_for_stage(timeline, stage_name)
    requesters = handles(
        env.get("BUILD_REQUESTEDFOR"), env.get("BUILD_REQUESTEDFOREMAIL"), env.get("BUILD_REQUESTEDFORID")
    )
    if not approval_ids:
        return ApprovalReport(SOURCE, (), None, requesters, where=f"stage {stage_name}")
    params = {"approvalIds": ",".join(approval_ids), "$expand": "steps", "api-version": API_VERSION}
    items = [item for page in get_pages(session, f"{base}/pipelines/approvals", params=params, what=APPROVALS,
                                        auth_hint=AUTH_HINT)
             for item in parse_approval_items(page)]
    approvals, minimum = approvals_of(items, approval_ids, stage_name)
    return ApprovalReport(SOURCE, approvals, minimum, requesters, where=f"stage {stage_name}")


def approval_ids_for_stage(timeline: Any, stage: str) -> list[str]:
    """Ids of the ``Checkpoint.Approval`` records under the ``Checkpoint`` of stage ``stage``."""
    records = parse_timeline(timeline)
    stages = {r.id for r in records if r.is_stage(stage) and r.id}
    if not stages:
        names = sorted({str(r.identifier or r.name) for r in records if r.type == "Stage"})
        raise UsageError(
            f"stage {stage!r} is not in this run's timeline (stages: {', '.join(names) or 'none'})",
            hint="pass --approval-stage with the stage whose environment approval to record",
        )
    checkpoints = {r.id for r in records if r.type == "Checkpoint" and r.parent_id in stages and r.id}
    ids = [r.id for r in records if r.type == "Checkpoint.Approval" and r.parent_id in checkpoints and r.id]
    return list(dict.fromkeys(ids))


def _approval(step: Step, approval_id: str) -> Approval:
    if step.approver is None:
        _unusable(APPROVALS, f"approval {approval_id} steps", "an approved step names no actualApprover")
    who = step.approver
    return Approval(
        approver=who.display_name,
        approver_id=who.unique_name or who.id,
        comment=step.comment,
        time=step.time,
        source=SOURCE,
        identities=handles(who.display_name, who.unique_name, who.id),
    )


def approvals_of(
    items: list[ApprovalItem], approval_ids: list[str], stage: str
) -> tuple[tuple[Approval, ...], int | None]:
    """The approved steps of the approvals ``approval_ids`` (every one must be approved)."""
    by_id = {item.id: item for item in items}
    approvals: list[Approval] = []
    minimum: int | None = None
    for approval_id in approval_ids:
        item = by_id.get(approval_id)
        if item is None:
            _unusable(APPROVALS, f"approval {approval_id}", "missing from the answer")
        if item.status != "approved":
            raise RefusedError(
                f"the approval {approval_id} of stage {stage} is {item.status!r}, not approved",
                hint="record only after the environment's approval was granted",
            )
        if item.min_required is not None:
            minimum = max(minimum or 0, item.min_required)
        if item.steps is None:
            _unusable(APPROVALS, f"approval {approval_id} steps", "no steps (was $expand=steps honoured?)")
        approvals += [_approval(step, approval_id) for step in item.steps if step.status == "approved"]
    return tuple(approvals), minimum


def parse_approvals(body: Any, approval_ids: list[str], stage: str) -> tuple[tuple[Approval, ...], int | None]:
    """:func:`approvals_of` one answer body (the wire form or a list)."""
    return approvals_of(parse_approval_items(body), approval_ids, stage)
