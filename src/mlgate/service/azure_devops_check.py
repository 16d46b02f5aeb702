"""Azure DevOps "Invoke REST API" check, asynchronous (callback) mode.

The check is configured on the environment (Approvals and checks -> Invoke REST API) with
completion event *Callback*. Azure DevOps calls ``POST /azure-devops/check`` with the plan
headers and a JSON body naming the model; we authenticate the call with the shared key,
answer 200 once the job is stored (:mod:`mlgate.service.state`), evaluate the gate on a
worker of this replica or another, then, with the job's
``AuthToken``:

1. ``POST {PlanUrl}/{ProjectId}/_apis/distributedtask/hubs/{HubName}/plans/{PlanId}/logs``
   creates the check's log (TaskLog),
2. ``PATCH .../timelines/{TimelineId}/records`` attaches it to the check's timeline record
   (``TaskInstanceId``),
3. ``POST .../logs/{logId}`` appends the evidence summary,
4. ``POST .../events`` sends ``TaskCompleted`` with ``result`` ``succeeded`` or ``failed``.

Plain REST against these documented routes, not the ``azure-devops`` package: that package has
no plan-events call (step 4 would be raw REST anyway), its client discovers routes with an extra
``OPTIONS {org}/_apis`` round trip and caches them on disk, and it costs about 0.3 s to import.
The calls go through :func:`mlgate.http.make_session` and are never redirected with the token
(a 3xx fails the call, and is reported in the service's log); every answer is read with a size
and time cap (:func:`mlgate.http.read_json`) and the log id is checked as an integer.

Authentication of the caller: the shared key, either as the password of HTTP Basic auth (a
*Generic* service connection whose password is the key; the user name is ignored) or in an
``X-Mlgate-Key`` header (set from a secret variable of a variable group), compared in
constant time.

Every plan header that becomes part of a URL is checked against its documented shape before
anything else happens (400 naming the header, nothing evaluated, no outbound call): the five
ids are GUIDs, ``HubName`` is a plain word (``checks``, ``build``...; never ``..`` or a path),
``AuthToken`` is printable, and ``PlanUrl`` is an organisation URL: its host allowed
(``azure_devops_allowed_hosts``, default ``dev.azure.com`` and ``*.visualstudio.com``), https
(http only on loopback), no userinfo, query or API path, and one of
``azure_devops_organizations`` when that is set. Only the URL rebuilt from its strictly parsed
parts (:mod:`mlgate.service.safe_url`) is used. The body is bounded JSON
(:func:`mlgate.jsonvalue.parse_json`: no 5000-digit numbers, no deep nesting, no NaN) read
field by field; anything else is 400.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote

import requests

from mlgate.errors import Error, InvalidInputError, NetworkError, UsageError
from mlgate.http import read_body, read_json
from mlgate.jsonvalue import Fields, parse_json
from mlgate.platforms.base import CIContext
from mlgate.refs import ModelRef
from mlgate.service.config import ServiceConfig
from mlgate.service.evaluation import GateCall, Verdict, failure, summary_lines
from mlgate.service.handler import CheckHandler, Services
from mlgate.service.http_types import Reply, Request, error_reply
from mlgate.service.logs import log_event
from mlgate.service.safe_url import parse_safe_url

API_VERSION = "7.1"
UUID_HEADERS = ("ProjectId", "PlanId", "JobId", "TimelineId", "TaskInstanceId")
HEADERS = ("PlanUrl", "HubName", *UUID_HEADERS, "AuthToken")  # PlanUrl first: it is checked on its own
# The documented shapes of the plan headers: GUIDs as Azure DevOps writes them; a hub name is a
# plain word ("checks", "build", "rm", "release", "deployment"), never a path piece.
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HUB = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,16384}$")  # printable ASCII, no space: it only ever goes into a header
_STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_PLAN_URL_SEGMENTS = 3  # dev.azure.com/ORG, or a server's /tfs/COLLECTION
ANSWER_LIMIT = 1 << 20  # Azure DevOps answers these calls with a few hundred bytes
BODY_HINT = 'send {"model": "models:/NAME/VERSION", "manifest_sha256": HEX, "stage": NAME} as the check\'s body'


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


@dataclass(frozen=True)
class CheckBody:
    ref: ModelRef | None
    ref_text: str
    manifest_sha256: str | None
    stage: str | None


def authenticate(request: Request, *keys: str | None) -> bool:
    """True when the call carries one of the shared keys (Basic password or X-Mlgate-Key), constant time.

    Two keys are accepted during a rotation (the current and the previous one); every key is
    compared, so the time taken does not say which one matched.
    """
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
    matches = [hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8")) for key in keys if key]
    return any(matches)


def allowed_plan_url(url: str, allowed: tuple[str, ...], organizations: tuple[str, ...] = ()) -> str | None:
    """The PlanUrl rebuilt from its strictly parsed parts when it is an allowed organisation URL, else None.

    Only the rebuilt URL is ever used for plan calls: see :mod:`mlgate.service.safe_url` for
    why the URL as sent is never handed to ``requests``. Its path names the organisation (or a
    server's collection): at most :data:`MAX_PLAN_URL_SEGMENTS` plain segments, none of them an
    API route (``_apis``...). With ``organizations`` given it must be one of them.
    """
    parts = parse_safe_url(url.rstrip("/"))
    if parts is None:
        return None
    if parts.scheme == "http" and parts.host not in ("127.0.0.1", "localhost", "::1"):
        return None  # the AuthToken never travels in clear text off this machine
    if not any(fnmatch.fnmatchcase(parts.host, pattern.lower()) for pattern in allowed):
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) > MAX_PLAN_URL_SEGMENTS or any(segment.startswith("_") for segment in segments):
        return None
    if organizations and parts.url.lower() not in organizations:
        return None
    return parts.url


PLAN_URL_PROBLEM = (
    "header PlanUrl is not an allowed Azure DevOps organisation URL "
    "(plain https://HOST/ORGANISATION, host in azure_devops_allowed_hosts, organisation in "
    "azure_devops_organizations when set; no userinfo, backslash, whitespace, percent-encoding, "
    "query, fragment or API path; set it to $(system.CollectionUri))"
)


def _header_problem(name: str, value: str) -> str | None:
    """Why the plan header ``name`` (not PlanUrl) does not have its documented shape (None: it does)."""
    if name in UUID_HEADERS:
        return None if _GUID.match(value) else f"header {name} is not a GUID (8-4-4-4-12 hexadecimal digits)"
    if name == "HubName":
        return None if _HUB.match(value) else (
            "header HubName is not a hub name (a plain word such as 'checks' or 'build': "
            "letters, digits, '-' and '_'; set it to $(system.HostType))"
        )
    return None if _TOKEN.match(value) else "header AuthToken is not a token (set it to $(system.AccessToken))"


def parse_headers(request: Request, config: ServiceConfig) -> dict[str, str] | Reply:
    """The plan headers, each checked against its documented shape; a Reply (400) names what is wrong."""
    values = {name: (request.header(name) or "").strip() for name in HEADERS}
    missing = [name for name in HEADERS if not values[name]]
    if missing:
        return error_reply(
            400,
            f"missing header(s): {', '.join(missing)}; configure them in the check's headers (see the mlgate README)",
            missing=missing,
        )
    plan_url = allowed_plan_url(values["PlanUrl"], config.azure_devops_allowed_hosts, config.azure_devops_organizations)
    if plan_url is None:
        return error_reply(400, PLAN_URL_PROBLEM, reason="bad_header", header="PlanUrl")
    for name in HEADERS[1:]:
        problem = _header_problem(name, values[name])
        if problem is not None:
            return error_reply(400, problem, reason="bad_header", header=name)
    return {**values, **{name: values[name].lower() for name in UUID_HEADERS}, "PlanUrl": plan_url}


def parse_body(body: bytes) -> CheckBody:
    """The check's JSON body; :class:`InvalidInputError` names what is wrong."""
    fields = Fields(parse_json(body, what="the body", error=InvalidInputError, hint=BODY_HINT), "the body",
                    error=InvalidInputError)
    ref_text = fields.text("model").strip()
    if not ref_text:
        fields.fail("model", 'empty; write "model": "models:/NAME/VERSION" (or NAME@ALIAS)')
    manifest = fields.opt_text("manifest_sha256")
    if manifest is not None and not _SHA256.match(manifest):
        fields.fail("manifest_sha256", "must be 64 hexadecimal characters")
    stage = fields.opt_text("stage") or None  # "" (an unset pipeline variable): the configured stage
    if stage is not None and not _STAGE.match(stage):
        fields.fail("stage", "must be a stage name of the policy (letters, digits, '.', '-', '_'; at most 64)")
    ref: ModelRef | None
    try:
        ref = ModelRef.parse(ref_text)
    except UsageError:
        ref = None  # reported back through the check's log, as a failed check
    return CheckBody(ref, ref_text[:200], manifest.lower() if manifest else None, stage)


def parse_call(request: Request, config: ServiceConfig) -> CheckCall | Reply:
    """Read the plan headers and the body; a Reply (400) names what is wrong."""
    headers = parse_headers(request, config)
    if isinstance(headers, Reply):
        return headers
    try:
        body = parse_body(request.body)
    except InvalidInputError as exc:
        return error_reply(400, exc.message, reason="bad_body")
    return CheckCall(
        plan_url=headers["PlanUrl"],
        project_id=headers["ProjectId"],
        hub_name=headers["HubName"],
        plan_id=headers["PlanId"],
        job_id=headers["JobId"],
        timeline_id=headers["TimelineId"],
        task_instance_id=headers["TaskInstanceId"],
        auth_token=headers["AuthToken"],
        ref=body.ref,
        ref_text=body.ref_text,
        manifest_sha256=body.manifest_sha256,
        stage=body.stage,
    )


class PlanClient:
    """The four documented distributedtask calls a check makes, authenticated with AuthToken.

    Basic auth with an empty user name and the token as password, as the REST description's
    security definition says (and as Microsoft's own check samples do). Every URL lies under
    ``{PlanUrl}/{ProjectId}/_apis/distributedtask/hubs/{HubName}/plans/{PlanId}/``, built from
    the checked headers; a redirect is never followed with the token (any 3xx fails the call),
    and every answer is read with a size and time cap.
    """

    def __init__(self, call: CheckCall, session: requests.Session, seconds: float) -> None:
        self._call = call
        self._session = session
        self._seconds = seconds
        self._base = (
            f"{call.plan_url}/{quote(call.project_id, safe='')}/_apis/distributedtask/hubs/"
            f"{quote(call.hub_name, safe='')}/plans/{quote(call.plan_id, safe='')}"
        )
        token = base64.b64encode(f":{call.auth_token}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {token}"}

    def _send(self, method: str, path: str, what: str, *, body: bytes, content_type: str) -> requests.Response:
        url = f"{self._base}{path}"
        headers = {**self._auth, "Content-Type": content_type}
        try:
            response = self._session.request(
                method, url, params={"api-version": API_VERSION}, headers=headers, data=body,
                allow_redirects=False, stream=True,
            )
        except requests.RequestException as exc:
            raise NetworkError(
                f"Azure DevOps did not answer {what} ({type(exc).__name__})",
                hint="check that the service can reach the organisation URL",
            ) from None
        if 300 <= response.status_code < 400:
            response.close()
            raise NetworkError(
                f"Azure DevOps answered {response.status_code} (a redirect) to {what}; not followed, "
                "so the job's AuthToken stayed with the plan's URL",
                hint="PlanUrl must be the organisation's own URL ($(system.CollectionUri))",
            )
        if response.status_code >= 300:
            response.close()
            raise NetworkError(
                f"Azure DevOps answered {response.status_code} to {what}",
                hint="the check's AuthToken may have expired, or the plan was cancelled",
            )
        return response

    def _json(self, method: str, path: str, what: str, body: object) -> requests.Response:
        data = json.dumps(body).encode("utf-8")
        return self._send(method, path, what, body=data, content_type="application/json")

    def create_log(self) -> int:
        what = "create log"
        response = self._json("POST", "/logs", what, {"path": f"logs\\mlgate-{self._call.task_instance_id}"})
        answer = Fields(read_json(response, what=f"Azure DevOps answer to {what}", limit=ANSWER_LIMIT,
                                  seconds=self._seconds), f"Azure DevOps answer to {what}")
        log_id = answer.integer("id")
        if log_id < 0:
            answer.fail("id", f"not a log id ({log_id})")
        return log_id

    def attach_log(self, log_id: int) -> None:
        record = {"id": self._call.task_instance_id, "log": {"id": log_id}}
        what = "update records"
        response = self._json("PATCH", f"/timelines/{quote(self._call.timeline_id, safe='')}/records", what,
                              {"count": 1, "value": [record]})
        self._drain(response, what)

    def append_log(self, log_id: int, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        what = "append log content"
        response = self._send("POST", f"/logs/{log_id}", what, body=data, content_type="application/octet-stream")
        self._drain(response, what)

    def task_completed(self, result: str) -> None:
        body = {
            "name": "TaskCompleted",
            "taskId": self._call.task_instance_id,
            "jobId": self._call.job_id,
            "result": result,
        }
        self._drain(self._json("POST", "/events", "TaskCompleted", body), "TaskCompleted")

    def _drain(self, response: requests.Response, what: str) -> None:
        read_body(response, what=f"Azure DevOps answer to {what}", limit=ANSWER_LIMIT, seconds=self._seconds)


def log_lines(verdict: Verdict) -> list[str]:
    lines = summary_lines(verdict)
    if verdict.markdown:
        lines += ["", "---- evidence ----", *verdict.markdown.splitlines()]
    return lines


def check_payload(call: CheckCall) -> dict[str, object]:
    """What a job stores of the call (sealed: it holds the AuthToken)."""
    return {
        "plan_url": call.plan_url, "project_id": call.project_id, "hub_name": call.hub_name, "plan_id": call.plan_id,
        "job_id": call.job_id, "timeline_id": call.timeline_id, "task_instance_id": call.task_instance_id,
        "auth_token": call.auth_token, "ref": str(call.ref) if call.ref else None, "ref_text": call.ref_text,
        "manifest_sha256": call.manifest_sha256, "stage": call.stage,
    }


def restore_call(payload: Fields) -> CheckCall:
    ref = payload.opt_text("ref")
    return CheckCall(
        plan_url=payload.text("plan_url"), project_id=payload.text("project_id"), hub_name=payload.text("hub_name"),
        plan_id=payload.text("plan_id"), job_id=payload.text("job_id"), timeline_id=payload.text("timeline_id"),
        task_instance_id=payload.text("task_instance_id"), auth_token=payload.text("auth_token"),
        ref=ModelRef.parse(ref) if ref else None, ref_text=payload.text("ref_text"),
        manifest_sha256=payload.opt_text("manifest_sha256"), stage=payload.opt_text("stage"),
    )


class AzureDevOpsCheck(CheckHandler[CheckCall]):
    """Handles the check call; a worker (of any replica) completes it."""

    kind = "azure-devops"

    def __init__(self, services: Services) -> None:
        config = services.config
        super().__init__(services, [config.azure_devops_key, config.azure_devops_key_previous])

    def handle(self, request: Request) -> Reply:
        key = self._config.azure_devops_key
        if key is None:
            return error_reply(404, "the Azure DevOps check is not configured on this service")
        if not authenticate(request, key, self._config.azure_devops_key_previous):
            return error_reply(401, "missing or wrong shared key", reason="bad_key")
        parsed = parse_call(request, self._config)
        if isinstance(parsed, Reply):
            return parsed
        call = parsed
        fields = {"plan_id": call.plan_id, "task_instance_id": call.task_instance_id, "ref": call.ref_text}
        return self._accept(
            f"azure-devops:{call.plan_id}:{call.task_instance_id}",
            check_payload(call),
            {"status": "accepted", "taskInstanceId": call.task_instance_id},
            fields,
        )

    def restore(self, payload: Fields) -> CheckCall:
        return restore_call(payload)

    def ref_text(self, call: CheckCall) -> str:
        return call.ref_text

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
        return self._run_gate(GateCall(call.ref, stage, call.manifest_sha256, ci))

    def send(self, call: CheckCall, verdict: Verdict) -> bool:
        client = PlanClient(call, self._session(), self._config.callback_timeout_seconds)
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
            # Not completed: the job is run again (or a repeated call for this check is processed).
            log_event(
                logging.ERROR,
                "azure_devops_complete_failed",
                task_instance_id=call.task_instance_id,
                error=exc.message,
            )
            return False
        log_event(
            logging.INFO,
            "azure_devops_check_completed",
            task_instance_id=call.task_instance_id,
            plan_id=call.plan_id,
            ref=call.ref_text,
            result=result,
        )
        return True
