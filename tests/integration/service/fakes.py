"""Loopback fakes of Azure DevOps (distributedtask plans) and GitHub (App tokens, protection rule callback).

Each fake routes by the path templates of the vendor description, checks every request it
receives against the operation's schema (and authentication), answers with the documented
shape (Microsoft's recorded examples for Azure DevOps; the OpenAPI examples for GitHub), and
records any deviation in ``violations`` so a test can assert there were none.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import threading
from typing import Any

import jwt

from tests.fakes.server import FakeServer, Handler, Reply, Request
from tests.fakes.specs import Spec, recorded_answer, without_nulls


class CheckedServer(FakeServer):
    """A :class:`FakeServer` whose handlers assert what a request must be.

    A failed assertion is recorded in ``violations`` and answered 400 (the caller sent something
    the description does not allow); so is a request no documented operation matches (404).
    ``fail[operation] = status`` answers that operation with ``status`` instead (after checking it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.fail: dict[str, int] = {}  # operation -> status to answer instead
        self._violations_lock = threading.Lock()

    def violation(self, text: str) -> None:
        with self._violations_lock:
            self.violations.append(text)

    def answer(self, handler: Handler, request: Request) -> Reply:
        try:
            reply = handler(request)
        except AssertionError as exc:
            self.violation(f"{request.operation}: {exc}")
            reply = Reply(400, {"message": str(exc)})
        if request.operation in self.fail:
            return Reply(self.fail[request.operation], {"message": "injected failure"})
        return reply

    def unmatched(self, request: Request) -> Reply:
        self.violation(f"no documented operation for {request.method} {request.path}")
        return Reply(404, {"message": "Not Found"})


# -- Azure DevOps ---------------------------------------------------------------------------

TASKS = "azure-devops/distributedTask-7.1-task.json"
EXAMPLES = {  # Microsoft's recorded answer of each operation
    "Logs_Create": "azure-devops/examples/POST__distributedtask_CreateLog_.json",
    "Logs_Append Log Content": "azure-devops/examples/POST__distributedtask_AppendLogContent_.json",
    "Events_Post Event": "azure-devops/examples/POST_distributedtask_PostEvent_.json",
}
UUID = re.compile(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}")


class FakeAzureDevOps(CheckedServer):
    """distributedtask plan routes of distributedTask-7.1-task.json, authenticated with the job token."""

    ORGANIZATION = "fabrikam"

    def __init__(self, auth_token: str) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.spec = Spec(TASKS)
        for operation_id in ("Logs_Create", "Logs_Append Log Content", "Records_Update", "Events_Post Event"):
            method, template, _ = self.spec.operation_by_id(operation_id)
            self.add(method, template, self._handler(operation_id), name=operation_id)
        # The recorded answers themselves must match the description's response schemas.
        for operation_id in ("Logs_Create", "Logs_Append Log Content"):
            method, template, _ = self.spec.operation_by_id(operation_id)
            _, body = recorded_answer(EXAMPLES[operation_id])
            self.spec.check(
                without_nulls(body), self.spec.response_schema(template, method), f"example answer of {operation_id}"
            )

    @property
    def plan_url(self) -> str:
        return f"{self.url}/{self.ORGANIZATION}/"

    def _handler(self, operation_id: str) -> Handler:
        method, template, operation = self.spec.operation_by_id(operation_id)

        def handle(request: Request) -> Reply:
            self._check_common(request, operation)
            consumes = operation.get("consumes", ["application/json"])[0]
            content_type = (request.header("Content-Type") or "").split(";")[0].strip()
            assert content_type == consumes, f"Content-Type {content_type!r}, the operation consumes {consumes!r}"
            if consumes == "application/json":
                body = request.json()
                schema = self.spec.request_schema(template, method)
                if operation_id == "Records_Update":
                    # T of VssJsonCollectionWrapper<T> is TimelineRecord here (the response type).
                    self.spec.check_collection(body, schema, "#/definitions/TimelineRecord", "records")
                else:
                    self.spec.check(body, schema, f"{operation_id} body")
            else:
                assert request.body, "empty log content"
                request.body.decode("utf-8")
            if operation_id == "Records_Update":
                records = request.json()["value"]
                answered = [{**r, "lastModified": "2022-12-02T09:33:14.873Z"} for r in records]
                self.spec.check(answered, self.spec.response_schema(template, method), "records answer")
                return Reply(200, answered)
            status, answer = recorded_answer(EXAMPLES[operation_id])
            return Reply(status, answer)

        return handle

    def _check_common(self, request: Request, operation: dict[str, Any]) -> None:
        assert request.params.get("organization") == self.ORGANIZATION, "wrong organization"
        versions = request.query.get("api-version")
        assert versions and versions[0], "api-version is required"
        expected = "Basic " + base64.b64encode(f":{self.auth_token}".encode()).decode()
        assert request.header("Authorization") == expected, "not authenticated with the job's AuthToken"
        for parameter in operation["parameters"]:
            if parameter.get("in") == "path" and parameter.get("format") == "uuid":
                value = request.params[parameter["name"]]
                assert UUID.fullmatch(value), f"{parameter['name']}"
            if parameter.get("in") == "path" and parameter.get("type") == "integer":
                assert request.params[parameter["name"]].isdigit(), parameter["name"]

    def log_text(self) -> str:
        return "".join(r.body.decode("utf-8") for r in self.of("Logs_Append Log Content"))

    def results(self) -> list[str]:
        return [r.json()["result"] for r in self.of("Events_Post Event")]


# -- GitHub ---------------------------------------------------------------------------------

TOKENS_PATH = "/app/installations/{installation_id}/access_tokens"
CALLBACK_PATH = "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule"


class FakeGitHub(CheckedServer):
    """App installation tokens (JWT-authenticated) and the protection-rule callback (token-authenticated)."""

    def __init__(self, app_id: int, public_key_pem: bytes) -> None:
        super().__init__()
        self.app_id = app_id
        self.public_key_pem = public_key_pem
        self.spec = Spec("github/openapi-subset.json")
        self._token_answer = self.spec.example("installation-token")
        self.installation_token: str = self._token_answer["token"]
        self.add("POST", TOKENS_PATH, self._token, name="apps/create-installation-access-token")
        self.add("POST", CALLBACK_PATH, self._callback, name="actions/review-custom-gates-for-run")

    def callback_url(self, owner: str = "octo-org", repo: str = "models", run_id: int = 4242) -> str:
        return f"{self.url}/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule"

    def _token(self, request: Request) -> Reply:
        authorization = request.header("Authorization") or ""
        assert authorization.startswith("Bearer "), "the token request needs the App's JWT"
        claims = jwt.decode(authorization[7:], self.public_key_pem, algorithms=["RS256"])
        assert str(claims["iss"]) == str(self.app_id), "JWT issuer is not the App id"
        if request.body:
            self.spec.check(request.json(), self.spec.request_schema(TOKENS_PATH, "POST"), "installation token request")
        answer = copy.deepcopy(self._token_answer)
        # The recorded example expired in 2016; a live fake hands out a token valid for an hour.
        answer["expires_at"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.spec.check(answer, self.spec.response_schema(TOKENS_PATH, "POST", "201"), "installation token answer")
        return Reply(201, answer)

    def _callback(self, request: Request) -> Reply:
        authorization = request.header("Authorization") or ""
        assert authorization in (f"Bearer {self.installation_token}", f"token {self.installation_token}"), (
            "the callback needs the installation token"
        )
        self.spec.check(request.json(), self.spec.request_schema(CALLBACK_PATH, "POST"), "protection rule review")
        assert "204" in self.spec.operation(CALLBACK_PATH, "POST")["responses"]
        return Reply(204)

    def reviews(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.of("actions/review-custom-gates-for-run")]
