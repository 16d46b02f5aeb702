"""Azure DevOps: the named approvers of this run's stage.

1. ``GET {collection}{project}/_apis/build/builds/{buildId}/timeline``: environment approvals
   appear as ``Checkpoint.Approval`` records whose parent is the stage's ``Checkpoint`` record;
   their ``id`` is the approval id.
2. ``GET {collection}{project}/_apis/pipelines/approvals?approvalIds=...&$expand=steps``: each
   approved step's ``actualApprover`` (displayName, uniqueName, id), comment and time, and the
   approval's ``minRequiredApprovers``.

Both are plain REST with ``requests`` (bearer ``SYSTEM_ACCESSTOKEN``). The ``azure-devops``
package has no approvals client at all; it does have ``BuildClient.get_build_timeline``, but
using it for the timeline alone would add its import time (~0.3 s), an ``OPTIONS`` route
discovery round-trip and an on-disk location cache, and a second HTTP stack with different
timeout/retry behaviour, for one GET whose URL is documented and stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mlgate import redact
from mlgate.approvals import Approval, ApprovalReport, handles
from mlgate.errors import NetworkError, RefusedError, UsageError

API_VERSION = "7.1"
SOURCE = "azure-devops"
AUTH_HINT = (
    "map the job's token into the step (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)) and allow the "
    "build service identity to view builds and approvals in this project"
)


def _required(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set; cannot read this run's approvals from Azure DevOps", hint=hint)
    return value


def _unusable(what: str, why: str) -> NetworkError:
    return NetworkError(
        f"{what}: unexpected answer ({why})",
        hint="the Azure DevOps API answered an unknown shape; nothing was recorded",
    )


def read_approvals(env: Mapping[str, str], *, stage: str | None = None) -> ApprovalReport:
    """Read who approved the stage ``stage`` (default ``SYSTEM_STAGENAME``) of build ``BUILD_BUILDID``."""
    from mlgate.http import make_session

    token = _required(env, "SYSTEM_ACCESSTOKEN", AUTH_HINT)
    redact.register(token)
    collection = _required(env, "SYSTEM_COLLECTIONURI", "run inside an Azure Pipelines job").rstrip("/") + "/"
    project = env.get("SYSTEM_TEAMPROJECTID", "").strip() or _required(
        env, "SYSTEM_TEAMPROJECT", "run inside an Azure Pipelines job"
    )
    build_id = _required(env, "BUILD_BUILDID", "run inside an Azure Pipelines job")
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

    from mlgate.approvals._http import get_json

    timeline = get_json(
        session,
        f"{base}/build/builds/{quote(build_id, safe='')}/timeline",
        params={"api-version": API_VERSION},
        what="the Azure DevOps build timeline",
        auth_hint=AUTH_HINT,
    )
    approval_ids = approval_ids_for_stage(timeline, stage_name)
    requesters = handles(
        env.get("BUILD_REQUESTEDFOR"), env.get("BUILD_REQUESTEDFOREMAIL"), env.get("BUILD_REQUESTEDFORID")
    )
    if not approval_ids:
        return ApprovalReport(
            SOURCE,
            (),
            None,
            requesters,
            where=f"stage {stage_name}",
            details={"build_id": build_id, "approval_ids": []},
        )
    body = get_json(
        session,
        f"{base}/pipelines/approvals",
        params={"approvalIds": ",".join(approval_ids), "$expand": "steps", "api-version": API_VERSION},
        what="the Azure DevOps Approvals API",
        auth_hint=AUTH_HINT,
    )
    approvals, minimum = parse_approvals(body, approval_ids, stage_name)
    return ApprovalReport(
        SOURCE,
        approvals,
        minimum,
        requesters,
        where=f"stage {stage_name}",
        details={"build_id": build_id, "approval_ids": approval_ids},
    )


def approval_ids_for_stage(timeline: Any, stage: str) -> list[str]:
    """Ids of the ``Checkpoint.Approval`` records under the ``Checkpoint`` of stage ``stage``."""
    what = "the Azure DevOps build timeline"
    if not isinstance(timeline, dict) or not isinstance(timeline.get("records"), list):
        raise _unusable(what, "no records list")
    records = [r for r in timeline["records"] if isinstance(r, dict)]
    wanted = stage.lower()
    stages = {
        r.get("id")
        for r in records
        if r.get("type") == "Stage"
        and wanted in (str(r.get("identifier", "")).lower(), str(r.get("name", "")).lower())
    }
    if not stages:
        names = sorted(
            {str(r.get("identifier") or r.get("name")) for r in records if r.get("type") == "Stage"}
        )
        raise UsageError(
            f"stage {stage!r} is not in this run's timeline (stages: {', '.join(names) or 'none'})",
            hint="pass --approval-stage with the stage whose environment approval to record",
        )
    checkpoints = {
        r.get("id") for r in records if r.get("type") == "Checkpoint" and r.get("parentId") in stages
    }
    ids = [
        str(r["id"])
        for r in records
        if r.get("type") == "Checkpoint.Approval" and r.get("parentId") in checkpoints and r.get("id")
    ]
    return list(dict.fromkeys(ids))


def _identity(ref: object) -> tuple[str, str | None, tuple[str, ...]] | None:
    if not isinstance(ref, dict):
        return None
    name = ref.get("displayName")
    unique = ref.get("uniqueName")
    ident = ref.get("id")
    if not isinstance(name, str) or not name.strip():
        return None
    stable = (
        unique if isinstance(unique, str) and unique else ident if isinstance(ident, str) and ident else None
    )
    return name, stable, handles(name, unique, ident)


def parse_approvals(
    body: Any, approval_ids: list[str], stage: str
) -> tuple[tuple[Approval, ...], int | None]:
    """The approved steps of the approvals ``approval_ids`` (every one must be approved)."""
    what = "the Azure DevOps Approvals API"
    items = body.get("value") if isinstance(body, dict) else body  # wire form {count, value} or a list
    if not isinstance(items, list):
        raise _unusable(what, "no list of approvals")
    by_id = {str(a.get("id")): a for a in items if isinstance(a, dict)}
    approvals: list[Approval] = []
    minimum: int | None = None
    for approval_id in approval_ids:
        item = by_id.get(approval_id)
        if item is None:
            raise _unusable(what, f"approval {approval_id} missing from the answer")
        status = item.get("status")
        if status != "approved":
            raise RefusedError(
                f"the approval {approval_id} of stage {stage} is {status!r}, not approved",
                hint="record only after the environment's approval was granted",
            )
        required = item.get("minRequiredApprovers")
        if isinstance(required, int) and not isinstance(required, bool):
            minimum = max(minimum or 0, required)
        steps = item.get("steps")
        if not isinstance(steps, list):
            raise _unusable(what, f"approval {approval_id} has no steps (was $expand=steps honoured?)")
        for step in steps:
            if not isinstance(step, dict) or step.get("status") != "approved":
                continue
            identity = _identity(step.get("actualApprover"))
            if identity is None:
                raise _unusable(what, f"an approved step of {approval_id} names no actualApprover")
            name, stable, ids = identity
            comment = step.get("comment")
            when = step.get("lastModifiedOn")
            approvals.append(
                Approval(
                    approver=name,
                    approver_id=stable,
                    comment=comment if isinstance(comment, str) else "",
                    time=when if isinstance(when, str) else None,
                    source=SOURCE,
                    identities=ids,
                )
            )
    return tuple(approvals), minimum
