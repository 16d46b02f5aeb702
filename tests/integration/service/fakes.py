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
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from tests.integration.service import specs

Answer = tuple[int, Any]


@dataclass
class Recorded:
    operation: str
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Callable[[Recorded], Answer]


@dataclass
class FakeServer:
    routes: list[Route] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # operation -> status to answer instead
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = fake.dispatch(self.command, self.path, dict(self.headers.items()), body)
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(raw_path)
        for route in self.routes:
            match = route.pattern.match(parts.path)
            if route.method == method and match:
                recorded = Recorded(
                    route.operation,
                    method,
                    parts.path,
                    match.groupdict(),
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in headers.items()},
                    body,
                )
                try:
                    status, answer = route.handler(recorded)
                except AssertionError as exc:
                    self.violation(f"{route.operation}: {exc}")
                    status, answer = 400, {"message": str(exc)}
                with self.arrived:
                    self.requests.append(recorded)
                    self.arrived.notify_all()
                if route.operation in self.fail:
                    return self.fail[route.operation], {"message": "injected failure"}
                return status, answer
        self.violation(f"no documented operation for {method} {parts.path}")
        return 404, {"message": "Not Found"}

    def of(self, operation: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.operation == operation]

    def wait_for(self, operation: str, count: int = 1, timeout: float = 30.0) -> list[Recorded]:
        with self.arrived:
            self.arrived.wait_for(
                lambda: sum(r.operation == operation for r in self.requests) >= count, timeout=timeout
            )
        found = self.of(operation)
        assert len(found) >= count, f"expected {count} {operation} request(s), got {len(found)}"
        return found


# -- Azure DevOps ---------------------------------------------------------------------------


def _example_answer(name: str) -> Answer:
    example = specs.ado_example(name)
    ((status, response),) = example["responses"].items()
    return int(status), copy.deepcopy(response.get("body"))


class FakeAzureDevOps(FakeServer):
    """distributedtask plan routes of distributedTask-7.1-task.json, authenticated with the job token."""

    ORGANIZATION = "fabrikam"

    def __init__(self, auth_token: str) -> None:
        super().__init__()
        self.auth_token = auth_token
        examples = {
            "Logs_Create": "POST__distributedtask_CreateLog_",
            "Logs_Append Log Content": "POST__distributedtask_AppendLogContent_",
            "Events_Post Event": "POST_distributedtask_PostEvent_",
        }
        for operation_id in ("Logs_Create", "Logs_Append Log Content", "Records_Update", "Events_Post Event"):
            method, template, operation = specs.ado_operation(operation_id)
            answer = _example_answer(examples[operation_id]) if operation_id in examples else None
            self.routes.append(
                Route(
                    method,
                    specs.path_regex(template),
                    operation_id,
                    self._handler(operation_id, operation, answer),
                )
            )
        # The recorded answers themselves must match the description's response schemas.
        for operation_id in ("Logs_Create", "Logs_Append Log Content"):
            schema = specs.ado_response_schema(operation_id)
            assert schema is not None
            _, body = _example_answer(examples[operation_id])
            specs.assert_valid(
                specs.ado_validator(schema), specs.without_nulls(body), f"example answer of {operation_id}"
            )

    @property
    def plan_url(self) -> str:
        return f"{self.base_url}/{self.ORGANIZATION}/"

    def _handler(
        self, operation_id: str, operation: dict[str, Any], answer: Answer | None
    ) -> Callable[[Recorded], Answer]:
        def handle(request: Recorded) -> Answer:
            self._check_common(request, operation)
            consumes = operation.get("consumes", ["application/json"])[0]
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            assert content_type == consumes, f"Content-Type {content_type!r}, the operation consumes {consumes!r}"
            if consumes == "application/json":
                body = request.json()
                schema = specs.ado_body_schema(operation_id)
                if operation_id == "Records_Update":
                    # VssJsonCollectionWrapper<T> is generic; T is TimelineRecord for this operation
                    # (its response schema). The description renders `value` as "string, format T".
                    wrapper = {k: v for k, v in body.items() if k != "value"}
                    specs.assert_valid(specs.ado_validator(schema), wrapper, "records wrapper")
                    assert isinstance(body.get("value"), list), "value must be the list of records"
                    assert body.get("count") == len(body["value"]), "count must equal len(value)"
                    record_schema = {"$ref": "#/definitions/TimelineRecord"}
                    for record in body["value"]:
                        specs.assert_valid(specs.ado_validator(record_schema), record, "timeline record")
                else:
                    specs.assert_valid(specs.ado_validator(schema), body, f"{operation_id} body")
            else:
                assert request.body, "empty log content"
                request.body.decode("utf-8")
            if operation_id == "Records_Update":
                records = request.json()["value"]
                answered = [{**r, "lastModified": "2022-12-02T09:33:14.873Z"} for r in records]
                response_schema = specs.ado_response_schema(operation_id)
                assert response_schema is not None
                specs.assert_valid(specs.ado_validator(response_schema), answered, "records answer")
                return 200, answered
            assert answer is not None
            return answer

        return handle

    def _check_common(self, request: Recorded, operation: dict[str, Any]) -> None:
        assert request.params.get("organization") == self.ORGANIZATION, "wrong organization"
        versions = request.query.get("api-version")
        assert versions and versions[0], "api-version is required"
        expected = "Basic " + base64.b64encode(f":{self.auth_token}".encode()).decode()
        assert request.headers.get("authorization") == expected, "not authenticated with the job's AuthToken"
        for parameter in operation["parameters"]:
            if parameter.get("in") == "path" and parameter.get("format") == "uuid":
                value = request.params[parameter["name"]]
                assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", value), f"{parameter['name']}"
            if parameter.get("in") == "path" and parameter.get("type") == "integer":
                assert request.params[parameter["name"]].isdigit(), parameter["name"]

    def log_text(self) -> str:
        return "".join(r.body.decode("utf-8") for r in self.of("Logs_Append Log Content"))

    def results(self) -> list[str]:
        return [r.json()["result"] for r in self.of("Events_Post Event")]


# -- GitHub ---------------------------------------------------------------------------------

TOKENS_PATH = "/app/installations/{installation_id}/access_tokens"
CALLBACK_PATH = "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule"


class FakeGitHub(FakeServer):
    """App installation tokens (JWT-authenticated) and the protection-rule callback (token-authenticated)."""

    def __init__(self, app_id: int, public_key_pem: bytes) -> None:
        super().__init__()
        self.app_id = app_id
        self.public_key_pem = public_key_pem
        token_answer = copy.deepcopy(specs.github_example("installation-token"))
        self.installation_token: str = token_answer["token"]
        self._token_answer = token_answer
        self.routes += [
            Route("POST", specs.path_regex(TOKENS_PATH), "apps/create-installation-access-token", self._token),
            Route("POST", specs.path_regex(CALLBACK_PATH), "actions/review-custom-gates-for-run", self._callback),
        ]
        self._token_schema = specs.github_response("POST", TOKENS_PATH, "201")["content"]["application/json"]["schema"]
        self._token_request = specs.github_validator(specs.github_request_schema("POST", TOKENS_PATH))
        self._callback_request = specs.github_validator(specs.github_request_schema("POST", CALLBACK_PATH))

    def callback_url(self, owner: str = "octo-org", repo: str = "models", run_id: int = 4242) -> str:
        return f"{self.base_url}/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule"

    def _token(self, request: Recorded) -> Answer:
        authorization = request.headers.get("authorization", "")
        assert authorization.startswith("Bearer "), "the token request needs the App's JWT"
        claims = jwt.decode(authorization[7:], self.public_key_pem, algorithms=["RS256"])
        assert str(claims["iss"]) == str(self.app_id), "JWT issuer is not the App id"
        if request.body:
            specs.assert_valid(self._token_request, request.json(), "installation token request")
        answer = copy.deepcopy(self._token_answer)
        # The recorded example expired in 2016; a live fake hands out a token valid for an hour.
        answer["expires_at"] = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        specs.assert_valid(specs.github_validator(self._token_schema), answer, "installation token answer")
        return 201, answer

    def _callback(self, request: Recorded) -> Answer:
        authorization = request.headers.get("authorization", "")
        assert authorization in (f"Bearer {self.installation_token}", f"token {self.installation_token}"), (
            "the callback needs the installation token"
        )
        specs.assert_valid(self._callback_request, request.json(), "protection rule review")
        assert "204" in specs.github_operation("POST", CALLBACK_PATH)["responses"]
        return 204, None

    def reviews(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.of("actions/review-custom-gates-for-run")]
