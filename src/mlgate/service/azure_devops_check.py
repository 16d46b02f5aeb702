"""Azure DevOps "Invoke REST API" check, asynchronous (callback) mode.

The check is configured on the environment (Approvals and checks -> Invoke REST API) with
completion event *Callback*. Azure DevOps calls ``POST /azure-devops/check`` with the plan
headers and a JSON body naming the model; we authenticate the call with the shared key,
answer 200 at once, evaluate the gate on the background pool, then, with the job's
``AuthToken``:

1. ``POST {PlanUrl}/{ProjectId}/_apis/distributedtask/hubs/{HubName}/plans/{PlanId}/logs``
   creates the check's log (TaskLog),
2. ``PATCH .../timelines/{TimelineId}/records`` attaches it to the check's timeline record
   (``TaskInstanceId``),
3. ``POST .../logs/{logId}`` appends the evidence summary,
4. ``POST .../events`` sends ``TaskCompleted`` with ``result`` ``succeeded`` or ``failed``.

Plain ``requests`` against these documented routes, not the ``azure-devops`` package: that
package has no plan-events call (step 4 would be raw REST anyway), its client discovers routes
with an extra ``OPTIONS {org}/_apis`` round trip and caches them on disk, and it costs about
0.3 s to import. Four documented POST/PATCH calls need none of that.

Authentication of the caller: the shared key, either as the password of HTTP Basic auth (a
*Generic* service connection whose password is the key; the user name is ignored) or in an
``X-Mlgate-Key`` header (set from a secret variable of a variable group), compared in
constant time. The ``AuthToken`` is only ever sent to a ``PlanUrl`` whose host is allowed
(``azure_devops_allowed_hosts``, default ``dev.azure.com`` and ``*.visualstudio.com``), and only
to the URL rebuilt from its strictly parsed parts (:mod:`mlgate.service.safe_url`).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from mlgate.errors import Error, NetworkError, UsageError
from mlgate.platforms.base import CIContext
from mlgate.refs import ModelRef
from mlgate.service.config import ServiceConfig
from mlgate.service.evaluation import Verdict, failure, summary_lines
from mlgate.service.handler import CheckHandler
from mlgate.service.http_types import Reply, Request, error_reply
from mlgate.service.logs import log_event
from mlgate.service.safe_url import parse_safe_url

API_VERSION = "7.1"
UUID_HEADERS = ("ProjectId", "PlanId", "JobId", "TimelineId", "TaskInstanceId")
_HUB = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CheckCall:
    plan_url: str
    project_id: str
    hub_name: str
    plan_id: str
    job_id: str
    timeline_id: str
    task_instance_id: str
    auth_token: str
    ref: ModelRef | None
    ref_text: str
    manifest_sha256: str | None
    stage: str | None

    def __repr__(self) -> str:  # never print the AuthToken
        return f"CheckCall(plan={self.plan_id}, task={self.task_instance_id}, ref={self.ref_text})"


def authenticate(request: Request, key: str) -> bool:
    """True when the call carries the shared key (Basic password or X-Mlgate-Key), constant time."""
    presented: str | None = request.header("x-mlgate-key")
    authorization = request.header("authorization") or ""
    if presented is None and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        presented = decoded.partition(":")[2]
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8"))


def allowed_plan_url(url: str, allowed: tuple[str, ...]) -> str | None:
    """The PlanUrl rebuilt from its strictly parsed parts when its host is allowed, else None.

    Only the rebuilt URL is ever used for plan calls: see :mod:`mlgate.service.safe_url` for
    why the URL as sent is never handed to ``requests``.
    """
    parts = parse_safe_url(url.rstrip("/"))
    if parts is None:
        return None
    if parts.scheme == "http" and parts.host not in ("127.0.0.1", "localhost", "::1"):
        return None  # the AuthToken never travels in clear text off this machine
    if not any(fnmatch.fnmatchcase(parts.host, pattern.lower()) for pattern in allowed):
        return None
    return parts.url


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    return allowed_plan_url(url, allowed) is not None


def parse_call(request: Request, config: ServiceConfig) -> CheckCall | Reply:
    """Read the plan headers and the body; a Reply (400) names what is wrong."""
    values: dict[str, str] = {}
    missing = [
        name for name in ("PlanUrl", "HubName", *UUID_HEADERS, "AuthToken") if not (request.header(name) or "").strip()
    ]
    if missing:
        return error_reply(
            400,
            f"missing header(s): {', '.join(missing)}; configure them in the check's headers (see the mlgate README)",
            missing=missing,
        )
    for name in ("PlanUrl", "HubName", *UUID_HEADERS, "AuthToken"):
        values[name] = (request.header(name) or "").strip()
    for name in UUID_HEADERS:
        try:
            values[name] = str(uuid.UUID(values[name]))
        except ValueError:
            return error_reply(400, f"header {name} is not a GUID")
    if not _HUB.match(values["HubName"]):
        return error_reply(400, "header HubName is not a hub name (e.g. 'checks')")
    plan_url = allowed_plan_url(values["PlanUrl"], config.azure_devops_allowed_hosts)
    if plan_url is None:
        return error_reply(
            400,
            "header PlanUrl is not an allowed Azure DevOps organisation URL "
            "(plain https://HOST/ORGANISATION, host in azure_devops_allowed_hosts; no userinfo, "
            "backslash, whitespace, percent-encoding, query or fragment)",
        )
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_reply(400, f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return error_reply(400, 'the body must be a JSON object: {"model": "models:/NAME/VERSION", ...}')
    ref_text = body.get("model")
    if not isinstance(ref_text, str) or not ref_text.strip():
        return error_reply(400, 'the body needs "model": "models:/NAME/VERSION" (or NAME@ALIAS)')
    ref: ModelRef | None
    try:
        ref = ModelRef.parse(ref_text)
    except UsageError:
        ref = None  # reported back through the check's log, as a failed check
    manifest = body.get("manifest_sha256")
    if manifest is not None and (not isinstance(manifest, str) or not _SHA256.match(manifest.lower())):
        return error_reply(400, '"manifest_sha256" must be 64 hexadecimal characters')
    stage = body.get("stage")
    if stage is not None and not isinstance(stage, str):
        return error_reply(400, '"stage" must be a string')
    return CheckCall(
        plan_url=plan_url,
        project_id=values["ProjectId"],
        hub_name=values["HubName"],
        plan_id=values["PlanId"],
        job_id=values["JobId"],
        timeline_id=values["TimelineId"],
        task_instance_id=values["TaskInstanceId"],
        auth_token=values["AuthToken"],
        ref=ref,
        ref_text=ref_text.strip()[:200],
        manifest_sha256=manifest.lower() if isinstance(manifest, str) else None,
        stage=stage,
    )


class PlanClient:
    """The four documented distributedtask calls a check makes, authenticated with AuthToken.

    Basic auth with an empty user name and the token as password, as the REST description's
    security definition says (and as Microsoft's own check samples do).
    """

    def __init__(self, call: CheckCall, session: requests.Session) -> None:
        self._call = call
        self._session = session
        self._base = (
            f"{call.plan_url}/{quote(call.project_id)}/_apis/distributedtask/hubs/"
            f"{quote(call.hub_name)}/plans/{quote(call.plan_id)}"
        )
        token = base64.b64encode(f":{call.auth_token}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {token}"}

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        url = f"{self._base}{path}"
        headers = {**self._auth, **kwargs.pop("headers", {})}
        try:
            response = self._session.request(
                method, url, params={"api-version": API_VERSION}, headers=headers, **kwargs
            )
        except requests.RequestException as exc:
            raise NetworkError(
                f"Azure DevOps did not answer {what} ({type(exc).__name__})",
                hint="check that the service can reach the organisation URL",
            ) from None
        if response.status_code >= 300:
            raise NetworkError(
                f"Azure DevOps answered {response.status_code} to {what}",
                hint="the check's AuthToken may have expired, or the plan was cancelled",
            )
        return response

    def create_log(self) -> int:
        body = {"path": f"logs\\mlgate-{self._call.task_instance_id}"}
        response = self._send("POST", "/logs", "create log", json=body)
        try:
            log_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            raise NetworkError("Azure DevOps answered create log without a log id") from None
        if not isinstance(log_id, int):
            raise NetworkError("Azure DevOps answered create log with a non-integer log id")
        return log_id

    def attach_log(self, log_id: int) -> None:
        record = {"id": self._call.task_instance_id, "log": {"id": log_id}}
        body = {"count": 1, "value": [record]}
        path = f"/timelines/{quote(self._call.timeline_id)}/records"
        self._send("PATCH", path, "update records", json=body)

    def append_log(self, log_id: int, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        self._send(
            "POST",
            f"/logs/{log_id}",
            "append log content",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def task_completed(self, result: str) -> None:
        body = {
            "name": "TaskCompleted",
            "taskId": self._call.task_instance_id,
            "jobId": self._call.job_id,
            "result": result,
        }
        self._send("POST", "/events", "TaskCompleted", json=body)


def log_lines(verdict: Verdict) -> list[str]:
    lines = summary_lines(verdict)
    if verdict.markdown:
        lines += ["", "---- evidence ----", *verdict.markdown.splitlines()]
    return lines


class AzureDevOpsCheck(CheckHandler):
    """Handles the check call and completes it in the background."""

    def handle(self, request: Request) -> Reply:
        key = self._config.azure_devops_key
        if key is None:
            return error_reply(404, "the Azure DevOps check is not configured on this service")
        if not authenticate(request, key):
            return error_reply(401, "missing or wrong shared key", reason="bad_key")
        parsed = parse_call(request, self._config)
        if isinstance(parsed, Reply):
            return parsed
        call = parsed
        fields = {"plan_id": call.plan_id, "task_instance_id": call.task_instance_id, "ref": call.ref_text}
        return self._accept(
            ("azure-devops", call.plan_id, call.task_instance_id),
            "azure-devops-check",
            lambda: self.complete(call),
            {"status": "accepted", "taskInstanceId": call.task_instance_id},
            fields,
        )

    def evaluate(self, call: CheckCall) -> Verdict:
        if call.ref is None:
            return failure(
                call.ref_text,
                f"not a model reference: {call.ref_text!r}; "
                "write models:/NAME/VERSION or models:/NAME@ALIAS in the check's body",
            )
        ci = CIContext(
            platform="azure-devops",
            run_id=call.plan_id,
            extra={"plan_id": call.plan_id, "job_id": call.job_id, "task_instance_id": call.task_instance_id},
        )
        stage = call.stage or self._config.stage
        return self._run_gate(call.ref, stage=stage, manifest_sha256=call.manifest_sha256, ci=ci)

    def complete(self, call: CheckCall) -> None:
        verdict = self.evaluate(call)
        client = PlanClient(call, self._session())
        result = "succeeded" if verdict.passed else "failed"
        try:
            log_id = client.create_log()
            client.attach_log(log_id)
            client.append_log(log_id, log_lines(verdict))
        except Error as exc:
            # The approver could not see the evidence: never let the check pass.
            log_event(
                logging.WARNING,
                "azure_devops_log_failed",
                task_instance_id=call.task_instance_id,
                error=exc.message,
            )
            result = "failed"
        try:
            client.task_completed(result)
        except Error as exc:
            # Not completed: a repeated call for this check must be processed, not ignored.
            self._replays.forget(("azure-devops", call.plan_id, call.task_instance_id))
            log_event(
                logging.ERROR,
                "azure_devops_complete_failed",
                task_instance_id=call.task_instance_id,
                error=exc.message,
            )
            return
        log_event(
            logging.INFO,
            "azure_devops_check_completed",
            task_instance_id=call.task_instance_id,
            plan_id=call.plan_id,
            ref=call.ref_text,
            result=result,
        )
