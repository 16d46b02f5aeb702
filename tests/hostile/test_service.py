"""Hostile corpus of the check service: what an attacker or a broken platform sends it, and what it must do.

Four tables, each case asserting the exact HTTP status (or exit code), that no call carrying
the job's AuthToken or the installation token went anywhere but the documented path on the
documented origin, and that no canary (shared key, webhook secret, AuthToken, installation
token, private key) appears in a response or a log line:

* ``ADO_CALLS``: Azure DevOps check calls whose plan headers or body are hostile -> 400/401/413,
  nothing evaluated, no outbound call at all;
* ``GITHUB_DELIVERIES``: webhook deliveries that are unsigned, replayed, oversized, or signed but
  hostile -> 401/400/413, nothing evaluated, no outbound call;
* ``TARGETS``: a callback target (Azure DevOps plan, GitHub token endpoint or callback) answering a
  redirect to another origin, HTML, 5xx or wrong-typed fields -> the call is acknowledged, the
  check or rule is never passed, the failure is in the log, and the other origin received nothing;
* ``COMMANDS``: `mlgate serve` with a hostile configuration or policy -> exit 2 naming it.
"""

# ruff: noqa: F811  (the service fixtures are imported into this module, then named as parameters)
from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.server import FakeServer
from tests.fakes.server import Reply as FakeReply
from tests.fakes.server import Request as FakeRequest
from tests.hostile.harness import Case, assert_case, check_output, run_process
from tests.integration.service.conftest import (  # noqa: F401  (fixtures)
    Running,
    ScriptedEvaluator,
    StartService,
    app_key,
    canaries,
    fake_ado,
    fake_github,
    policy_file,
    start_service,
)
from tests.integration.service.fakes import CALLBACK_PATH, TOKENS_PATH, FakeAzureDevOps, FakeGitHub
from tests.integration.service.test_azure_devops_check import BODY, call, check_headers
from tests.integration.service.test_github_protection_rule import MODEL, deliver, rule_payload

pytestmark = pytest.mark.integration

GUID = "6f1a7c3e-9b2d-4e8f-a1c5-3d7e9f0b2a4c"
DIGITS_5000 = "7" * 5000
DEEP = b"[" * 100_000 + b"]" * 100_000
PLAN_PREFIX = "/fabrikam/"  # every plan call lies under {PlanUrl}/{ProjectId}/_apis/distributedtask/hubs/...


@pytest.fixture
def catcher() -> Iterator[FakeServer]:
    """Another origin (same host, another port): it must never receive a single request."""
    server = FakeServer().start()
    yield server
    server.stop()


def secrets_of(service: Running, *more: str) -> list[str]:
    return [*service.secrets.values(), *more]


def assert_clean(service: Running, *texts: str, more: tuple[str, ...] = ()) -> None:
    """No canary, traceback or "internal error" in the answers nor in the service's log."""
    for text in (*texts, service.log.getvalue()):
        check_output(text, canaries=secrets_of(service, *more))


def assert_plan_calls_on_path(fake: FakeAzureDevOps, headers: Mapping[str, str]) -> None:
    base = (f"/fabrikam/{headers['ProjectId']}/_apis/distributedtask/hubs/{headers['HubName']}"
            f"/plans/{headers['PlanId']}/")
    for request in fake.requests:
        assert request.path.startswith(base), f"a plan call left {base}: {request.method} {request.path}"


# -- Azure DevOps check calls -----------------------------------------------------------------


@dataclass(frozen=True)
class AdoCall:
    id: str
    status: int
    says: str
    headers: Mapping[str, str] = field(default_factory=dict)  # {base}: the fake's origin, {catcher}: another
    body: bytes | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    unauthenticated: bool = False


def _body(**extra: Any) -> bytes:
    return json.dumps({**BODY, **extra}).encode()


ADO_CALLS = [
    AdoCall("hub-dot-dot", 400, "HubName is not a hub name", {"HubName": ".."}),
    AdoCall("hub-traversal", 400, "HubName is not a hub name", {"HubName": "../../../_apis/projects"}),
    AdoCall("hub-slash", 400, "HubName is not a hub name", {"HubName": "checks/../build"}),
    AdoCall("hub-encoded-dots", 400, "HubName is not a hub name", {"HubName": "%2e%2e"}),
    AdoCall("hub-query", 400, "HubName is not a hub name", {"HubName": "checks?api-version=1"}),
    AdoCall("hub-too-long", 400, "HubName is not a hub name", {"HubName": "h" * 100}),
    AdoCall("hub-space", 400, "HubName is not a hub name", {"HubName": "che cks"}),
    AdoCall("plan-traversal", 400, "PlanId is not a GUID", {"PlanId": "../../../_apis/connectionData"}),
    AdoCall("plan-braces", 400, "PlanId is not a GUID", {"PlanId": "{" + GUID + "}"}),
    AdoCall("plan-no-hyphens", 400, "PlanId is not a GUID", {"PlanId": GUID.replace("-", "")}),
    AdoCall("plan-urn", 400, "PlanId is not a GUID", {"PlanId": "urn:uuid:" + GUID}),
    AdoCall("project-traversal", 400, "ProjectId is not a GUID", {"ProjectId": "../.."}),
    AdoCall("job-not-guid", 400, "JobId is not a GUID", {"JobId": "job"}),
    AdoCall("timeline-traversal", 400, "TimelineId is not a GUID", {"TimelineId": GUID + "/../../logs"}),
    AdoCall("task-encoded", 400, "TaskInstanceId is not a GUID", {"TaskInstanceId": GUID[:-1] + "%2f"}),
    AdoCall("token-with-space", 400, "AuthToken is not a token", {"AuthToken": "a b"}),
    AdoCall("plan-url-userinfo", 400, "PlanUrl is not an allowed", {"PlanUrl": "http://user:pw@{base}/fabrikam/"}),
    AdoCall("plan-url-off-origin", 400, "PlanUrl is not an allowed", {"PlanUrl": "https://attacker.example/fabrikam"}),
    AdoCall("plan-url-traversal", 400, "PlanUrl is not an allowed", {"PlanUrl": "http://{base}/fabrikam/../../x"}),
    AdoCall("plan-url-api-path", 400, "PlanUrl is not an allowed",
            {"PlanUrl": "http://{base}/fabrikam/_apis/distributedtask/hubs/checks/plans/" + GUID}),
    AdoCall("plan-url-deep-path", 400, "PlanUrl is not an allowed", {"PlanUrl": "http://{base}/a/b/c/d"}),
    AdoCall("plan-url-query", 400, "PlanUrl is not an allowed", {"PlanUrl": "http://{base}/fabrikam?x=1"}),
    AdoCall("plan-url-scheme", 400, "PlanUrl is not an allowed", {"PlanUrl": "ftp://{base}/fabrikam"}),
    AdoCall("plan-url-backslash", 400, "PlanUrl is not an allowed", {"PlanUrl": "http://{catcher}\\@{base}/x"}),
    AdoCall("plan-url-other-organisation", 400, "organisation in azure_devops_organizations",
            {"PlanUrl": "http://{base}/contoso/"}, settings={"azure_devops_organizations": "http://{base}/fabrikam"}),
    AdoCall("body-5000-digit-number", 400, "integer of 5000 digits", body=b'{"model": "m/1", "n": ' +
            DIGITS_5000.encode() + b"}"),
    AdoCall("body-deep-json", 400, "nested deeper than 64", body=DEEP),
    AdoCall("body-nan", 400, "non-finite number NaN", body=b'{"model": "m/1", "x": NaN}'),
    AdoCall("body-infinity", 400, "non-finite number -Infinity", body=b'{"model": "m/1", "x": -Infinity}'),
    AdoCall("body-overflow", 400, "overflows to infinity", body=b'{"model": "m/1", "x": 1e999}'),
    AdoCall("body-model-number", 400, "field model: expected a string, got a number", body=b'{"model": 3}'),
    AdoCall("body-model-list", 400, "field model: expected a string, got a list", body=b'{"model": ["m/1"]}'),
    AdoCall("body-manifest-object", 400, "field manifest_sha256: expected a string",
            body=_body(manifest_sha256={"sha": "c"})),
    AdoCall("body-stage-number", 400, "field stage: expected a string", body=_body(stage=1)),
    AdoCall("body-stage-traversal", 400, "field stage: must be a stage name", body=_body(stage="../prod")),
    AdoCall("body-array", 400, "expected an object, got a list", body=b'["models:/m/1"]'),
    AdoCall("body-not-utf8", 400, "not UTF-8", body=b'{"model": "\xff"}'),
    AdoCall("body-html", 400, "HTML or text, not JSON", body=b"<html><body>hi</body></html>"),
    AdoCall("body-oversized", 413, "body larger than 1024 bytes", body=_body(padding="x" * 4096),
            settings={"max_body_bytes": "1024"}),
    AdoCall("unauthenticated-hostile", 401, "missing or wrong shared key", {"HubName": ".."}, unauthenticated=True),
]


@pytest.mark.parametrize("case", ADO_CALLS, ids=[c.id for c in ADO_CALLS])
def test_hostile_check_calls_are_refused_before_any_outbound_call(
    case: AdoCall, start_service: StartService, fake_ado: FakeAzureDevOps, catcher: FakeServer
) -> None:
    base, other = fake_ado.url.removeprefix("http://"), catcher.url.removeprefix("http://")
    def fill(text: str) -> str:
        return text.replace("{base}", base).replace("{catcher}", other)

    settings = {k: fill(v) for k, v in case.settings.items()}
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **settings)
    key = None if case.unauthenticated else service.secrets["azure_devops_key"]
    overrides = {k: fill(v) for k, v in case.headers.items()}
    headers = check_headers(fake_ado, key, **overrides)

    response = call(service, headers, case.body if case.body is not None else BODY)
    service.app.state.wait_idle(10)

    assert response.status_code == case.status, response.text
    assert case.says in response.json()["error"]
    assert evaluator.calls == []
    assert fake_ado.requests == [] and catcher.requests == []  # not a single call with the AuthToken
    assert_clean(service, response.text)


# -- GitHub webhook deliveries ----------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    id: str
    status: int
    says: str
    mutate: Callable[[dict[str, Any], FakeGitHub, FakeServer], Any] | None = None  # returns the payload (or bytes)
    signature: str | None = None  # "" unsigned, "wrong" a wrong one, None the right one
    settings: Mapping[str, str] = field(default_factory=dict)


def _set(**fields: Any) -> Callable[[dict[str, Any], FakeGitHub, FakeServer], Any]:
    def mutate(payload: dict[str, Any], fake: FakeGitHub, catcher: FakeServer) -> Any:
        for name, value in fields.items():
            payload[name] = value(fake, catcher) if callable(value) else value
        return payload

    return mutate


def _callback(path: str) -> Callable[[FakeGitHub, FakeServer], str]:
    return lambda fake, catcher: path.format(api=fake.url, catcher=catcher.url, api_host=fake.url[7:])


def _raw(text: bytes) -> Callable[[dict[str, Any], FakeGitHub, FakeServer], Any]:
    return lambda payload, fake, catcher: text


def _deployment(**fields: Any) -> Callable[[dict[str, Any], FakeGitHub, FakeServer], Any]:
    def mutate(payload: dict[str, Any], fake: FakeGitHub, catcher: FakeServer) -> Any:
        payload["deployment"] = {**copy.deepcopy(payload["deployment"]), **fields}
        return payload

    return mutate


CALLBACK = "/repos/octo-org/models/actions/runs/4242/deployment_protection_rule"
GITHUB_DELIVERIES = [
    Delivery("unsigned", 401, "missing or wrong X-Hub-Signature-256", signature=""),
    Delivery("wrong-signature", 401, "missing or wrong X-Hub-Signature-256", signature="wrong"),
    Delivery("oversized", 413, "body larger than 2048 bytes", _set(padding="x" * 4096),
             settings={"max_body_bytes": "2048"}),
    Delivery("signed-5000-digit-number", 400, "integer of 5000 digits",
             _raw(b'{"action": "requested", "n": ' + DIGITS_5000.encode() + b"}")),
    Delivery("signed-deep-json", 400, "nested deeper than 64", _raw(DEEP)),
    Delivery("signed-nan", 400, "non-finite number NaN", _raw(b'{"action": "requested", "x": NaN}')),
    Delivery("signed-html", 400, "HTML or text, not JSON", _raw(b"<!doctype html><p>hi")),
    Delivery("callback-off-origin", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("{catcher}" + CALLBACK))),
    Delivery("callback-userinfo", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("http://x:y@{api_host}" + CALLBACK))),
    Delivery("callback-traversal", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("{api}/repos/o/r/../../app/installations/1/access_tokens"))),
    Delivery("callback-encoded-traversal", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("{api}/repos/o/%2e%2e/app/installations/1/access_tokens"))),
    Delivery("callback-other-api-route", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("{api}/repos/o/r/collaborators/x"))),
    Delivery("callback-backslash", 400, "deployment_callback_url is not the protection rule callback",
             _set(deployment_callback_url=_callback("http://{catcher}\\@{api_host}" + CALLBACK))),
    Delivery("callback-number", 400, "field deployment_callback_url: expected a string",
             _set(deployment_callback_url=4242)),
    Delivery("installation-id-path", 400, "field installation.id: expected a positive integer",
             _set(installation={"id": "1/../../../user"})),
    Delivery("installation-id-boolean", 400, "field installation.id: expected a positive integer",
             _set(installation={"id": True})),
    Delivery("installation-id-huge", 400, "field installation.id: expected a positive integer",
             _set(installation={"id": 10**30})),
    Delivery("installation-id-negative", 400, "field installation.id: expected a positive integer",
             _set(installation={"id": -1})),
    Delivery("environment-object", 400, "field environment: expected a string", _set(environment={"name": "x"})),
    Delivery("environment-control-characters", 400, "field environment: not an environment name",
             _set(environment="prod\r\nX-Injected: 1")),
    Delivery("deployment-string", 400, "field deployment: expected an object", _set(deployment="prod")),
    Delivery("created-at-number", 400, "field deployment.created_at: expected a string",
             _deployment(created_at=1700000000)),
    Delivery("repository-name-list", 400, "field repository.full_name: expected a string",
             _set(repository={"full_name": ["o", "r"]})),
]


@pytest.mark.parametrize("case", GITHUB_DELIVERIES, ids=[c.id for c in GITHUB_DELIVERIES])
def test_hostile_deliveries_are_refused_before_any_outbound_call(
    case: Delivery, start_service: StartService, fake_github: FakeGitHub, catcher: FakeServer, app_key: Any
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, **case.settings)
    payload: Any = rule_payload(fake_github, deployment_payload=MODEL)
    if case.mutate is not None:
        payload = case.mutate(payload, fake_github, catcher)
    signature = None if case.signature is None else {"": "", "wrong": "sha256=" + "0" * 64}[case.signature]

    response = deliver(service, payload, signature=signature)
    service.app.state.wait_idle(10)

    assert response.status_code == case.status, response.text
    assert case.says in response.json()["error"]
    assert evaluator.calls == []
    assert fake_github.requests == [] and catcher.requests == []  # no token asked for, no callback made
    assert_clean(service, response.text, more=(fake_github.installation_token, *app_key[0].splitlines()[1:-1]))


def test_a_replayed_delivery_is_evaluated_and_answered_once(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    delivery = str(uuid.uuid4())

    first = deliver(service, payload, delivery=delivery)
    fake_github.wait_for("actions/review-custom-gates-for-run")
    replayed = deliver(service, payload, delivery=delivery)
    service.app.state.wait_idle(10)

    assert (first.status_code, replayed.status_code) == (200, 200)
    assert replayed.json() == {"status": "duplicate"}
    assert len(evaluator.calls) == 1 and len(fake_github.reviews()) == 1
    assert_clean(service, first.text, replayed.text, more=(fake_github.installation_token,))


def test_a_hostile_deployment_payload_is_rejected_not_evaluated(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    """Signed and well-formed, but the deployment's own payload is hostile: the rule is rejected, saying why."""
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload='{"model": "m/1", "n": ' + DIGITS_5000 + "}")

    assert deliver(service, payload).status_code == 200
    review = fake_github.wait_for("actions/review-custom-gates-for-run")[0].json()

    assert review["state"] == "rejected"
    assert "integer of 5000 digits" in review["comment"]
    assert evaluator.calls == []


# -- callback targets that answer badly -------------------------------------------------------


def redirect_to(catcher: FakeServer, status: int = 302) -> Callable[[FakeRequest], FakeReply]:
    return lambda request: FakeReply(status, b"", headers={"Location": f"{catcher.url}/steal{request.path}"})


def html(request: FakeRequest) -> FakeReply:
    return FakeReply(200, b"<html><body>Sign in</body></html>", headers={"Content-Type": "text/html"})


def server_error(request: FakeRequest) -> FakeReply:
    return FakeReply(503, {"message": "unavailable"})


def answer(body: Any, status: int = 200) -> Callable[[FakeRequest], FakeReply]:
    return lambda request: FakeReply(status, body)


@dataclass(frozen=True)
class Target:
    id: str
    operation: str  # the fake's operation answered by ``reply``
    reply: Callable[[FakeServer], Callable[[FakeRequest], FakeReply]]
    says: str  # in the failure's log line


ADO_LOGS = "/{organization}/{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/logs"
ADO_EVENTS = "/{organization}/{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/events"
def redirect_out_of_the_plan(request: FakeRequest) -> FakeReply:
    """A redirect on the same origin but out of the plan's path (another organisation's API)."""
    return FakeReply(302, b"", headers={"Location": "/contoso/_apis/connectionData"})


ADO_TARGETS = [
    Target("ado-log-redirect-off-origin", "Logs_Create", redirect_to, "redirecting to another origin"),
    Target("ado-log-redirect-307-off-origin", "Logs_Create", lambda c: redirect_to(c, 307),
           "answered 307 redirecting to another origin"),
    Target("ado-log-redirect-out-of-the-plan", "Logs_Create", lambda c: redirect_out_of_the_plan,
           "answered 302 (a redirect) to create log; not followed"),
    Target("ado-log-html", "Logs_Create", lambda c: html, "HTML or text, not JSON"),
    Target("ado-log-5xx", "Logs_Create", lambda c: server_error, "answered 503 to create log"),
    Target("ado-log-id-string", "Logs_Create", lambda c: answer({"id": "three"}), "field id: expected an integer"),
    Target("ado-log-id-huge", "Logs_Create", lambda c: answer(b'{"id": ' + DIGITS_5000.encode() + b"}"),
           "integer of 5000 digits"),
    Target("ado-log-id-negative", "Logs_Create", lambda c: answer({"id": -3}), "field id: not a log id"),
    Target("ado-events-redirect-off-origin", "Events_Post Event", redirect_to, "redirecting to another origin"),
]


@pytest.mark.parametrize("case", ADO_TARGETS, ids=[c.id for c in ADO_TARGETS])
def test_a_plan_answering_badly_never_passes_the_check_nor_sends_the_token_elsewhere(
    case: Target, start_service: StartService, fake_ado: FakeAzureDevOps, catcher: FakeServer
) -> None:
    template = ADO_LOGS if case.operation == "Logs_Create" else ADO_EVENTS
    fake_ado.add("POST", template, case.reply(catcher), name=case.operation)
    service = start_service(ScriptedEvaluator())  # the gate passes: only the platform misbehaves
    headers = check_headers(fake_ado, service.secrets["azure_devops_key"])

    response = call(service, headers, BODY)
    service.app.state.wait_idle(60)

    assert response.status_code == 200
    if case.operation == "Logs_Create":  # the approver could not see the evidence: the check fails
        assert fake_ado.results() == ["failed"]
        event = "azure_devops_log_failed"
    else:  # the completion itself was answered badly: not completed, so a repeated call is processed
        event = "azure_devops_complete_failed"
    failures = [line for line in service.log_lines() if line["event"] == event]
    assert failures and case.says in failures[0]["error"], service.log.getvalue()
    assert catcher.requests == []
    assert_plan_calls_on_path(fake_ado, headers)
    assert_clean(service, response.text)


GITHUB_TARGETS = [
    Target("token-redirect-off-origin", "apps/create-installation-access-token", redirect_to,
           "redirecting to another origin"),
    Target("token-html", "apps/create-installation-access-token", lambda c: html, "HTML or text, not JSON"),
    Target("token-5xx", "apps/create-installation-access-token", lambda c: server_error, "status 503"),
    Target("token-object", "apps/create-installation-access-token", lambda c: answer({"token": {"v": 1}}, 201),
           "field token: expected a string"),
    Target("token-expiry-unreadable", "apps/create-installation-access-token",
           lambda c: answer({"token": "ghs_x", "expires_at": "soon"}, 201), "field expires_at: not an ISO 8601"),
    Target("callback-redirect-off-origin", "actions/review-custom-gates-for-run", lambda c: redirect_to(c, 307),
           "redirecting to another origin"),
    Target("callback-5xx", "actions/review-custom-gates-for-run", lambda c: server_error, "answered 503"),
]


@pytest.mark.parametrize("case", GITHUB_TARGETS, ids=[c.id for c in GITHUB_TARGETS])
def test_github_answering_badly_never_approves_nor_sends_the_token_elsewhere(
    case: Target, start_service: StartService, fake_github: FakeGitHub, catcher: FakeServer, app_key: Any
) -> None:
    template = TOKENS_PATH if case.operation.startswith("apps/") else CALLBACK_PATH
    fake_github.add("POST", template, case.reply(catcher), name=case.operation)
    service = start_service(ScriptedEvaluator())

    response = deliver(service, rule_payload(fake_github, deployment_payload=MODEL))
    service.app.state.wait_idle(60)

    assert response.status_code == 200
    if case.operation.startswith("apps/"):
        assert fake_github.reviews() == []  # no token, so no callback at all
    failures = [line for line in service.log_lines() if line["event"] == "github_callback_failed"]
    assert failures and case.says in failures[0]["error"], service.log.getvalue()
    assert catcher.requests == []
    for request in fake_github.requests:
        assert request.path in ("/app/installations/424242/access_tokens", CALLBACK_PATH.format(
            owner="octo-org", repo="models", run_id=4242)), request.path
    assert_clean(service, response.text, more=(fake_github.installation_token, *app_key[0].splitlines()[1:-1]))


# -- `mlgate serve` with a hostile configuration ----------------------------------------------

KEY = "serve-hostile-key-canary-41d7"


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def command_cases(tmp: Path, policy: Path) -> list[Case]:
    """Each a configuration `mlgate serve` must refuse with exit 2 before it listens."""
    env = {"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_AZURE_DEVOPS_KEY": KEY}
    bad_policy = tmp / "bad-policy.yaml"
    bad_policy.write_text("version: 1\nrisk_classes: [unclosed\n")
    bomb = tmp / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\npolicy: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n")
    digits = tmp / "digits.yaml"
    digits.write_text(f"policy: {policy}\nworkers: {DIGITS_5000}\n")
    deep = tmp / "deep.json"
    deep.write_bytes(b'{"policy": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    typed = tmp / "typed.yaml"
    typed.write_text(f"policy: {policy}\nworkers: [1, 2]\n")
    infinite = tmp / "infinite.yaml"
    infinite.write_text(f"policy: {policy}\ncallback_timeout_seconds: .inf\n")
    serve = ("serve", "--port", "0")
    return [
        Case("malformed-policy", serve, 2, {**env, "MLGATE_SERVE_POLICY": str(bad_policy)},
             (KEY,), ("bad-policy.yaml",)),
        Case("policy-fifo", serve, 2, {**env, "MLGATE_SERVE_POLICY": _fifo(tmp / "policy.fifo")}, (KEY,),
             ("policy.fifo",)),
        Case("config-alias-bomb", (*serve, "--config", str(bomb)), 2, env, (KEY,), ("YAML aliases",)),
        Case("config-5000-digits", (*serve, "--config", str(digits)), 2, env, (KEY,), ("digits.yaml",)),
        Case("config-deep-json", (*serve, "--config", str(deep)), 2, env, (KEY,), ("nested deeper than 64",)),
        Case("config-wrong-type", (*serve, "--config", str(typed)), 2, env, (KEY,),
             ("field workers: expected an integer, got a list",)),
        Case("config-infinite-timeout", (*serve, "--config", str(infinite)), 2, env, (KEY,),
             ("field callback_timeout_seconds",)),
        Case("config-fifo", (*serve, "--config", _fifo(tmp / "serve.fifo")), 2, env, (KEY,),
             ("not a regular file",)),
        Case("env-workers-huge", serve, 2, {**env, "MLGATE_SERVE_WORKERS": "100000"}, (KEY,),
             ("field workers: expected a positive integer of at most 256",)),
        Case("env-timeout-nan", serve, 2, {**env, "MLGATE_SERVE_CALLBACK_TIMEOUT_SECONDS": "nan"}, (KEY,),
             ("field callback_timeout_seconds: expected a finite number",)),
        Case("secret-file-fifo", serve, 2,
             {"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_AZURE_DEVOPS_KEY_FILE": _fifo(tmp / "key.fifo")},
             (), ("not a regular file",)),
        Case("organisation-url-userinfo", serve, 2,
             {**env, "MLGATE_SERVE_AZURE_DEVOPS_ORGANIZATIONS": "https://u:pw-canary-9@dev.azure.com/org"},
             (KEY, "pw-canary-9"), ("azure_devops_organizations",)),
        Case("github-key-cannot-sign", serve, 2,
             {"MLGATE_SERVE_POLICY": str(policy), "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": KEY,
              "MLGATE_SERVE_GITHUB_APP_ID": "7",
              "MLGATE_SERVE_GITHUB_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nkey-canary-3\n-----END"},
             (KEY, "key-canary-3"), ("cannot sign the App's token",)),
    ]


COMMAND_IDS = [
    "malformed-policy", "policy-fifo", "config-alias-bomb", "config-5000-digits", "config-deep-json",
    "config-wrong-type", "config-infinite-timeout", "config-fifo", "env-workers-huge", "env-timeout-nan",
    "secret-file-fifo", "organisation-url-userinfo", "github-key-cannot-sign",
]


@pytest.mark.parametrize("case_id", COMMAND_IDS)
def test_serve_refuses_a_hostile_configuration_with_exit_2(case_id: str, tmp_path: Path, policy_file: Path) -> None:
    cases = command_cases(tmp_path, policy_file)
    assert [c.id for c in cases] == COMMAND_IDS
    case = next(c for c in cases if c.id == case_id)
    clean = {name: "" for name in os.environ if name.startswith("MLGATE_SERVE_")}
    # a child process: were a case not refused, the service would listen, and the timeout catches it
    code, output = run_process(case.argv, env={**clean, **case.env}, timeout=60)
    assert_case(case, code, output)


class Trickler:
    """A plan server on loopback that answers every call 200, then one byte every 0.3 s."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.port = int(self._socket.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.paths.append(data.split(b" ", 2)[1].decode())
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
                for _ in range(200):
                    conn.sendall(b" ")
                    time.sleep(0.3)
            except OSError:
                return

    def close(self) -> None:
        self._socket.close()


def test_a_trickling_plan_server_is_cut_off_at_the_time_cap_and_the_check_never_passes(
    start_service: StartService, fake_ado: FakeAzureDevOps
) -> None:
    trickler = Trickler()
    try:
        service = start_service(ScriptedEvaluator(), callback_timeout_seconds="1")
        headers = check_headers(fake_ado, service.secrets["azure_devops_key"],
                                PlanUrl=f"http://127.0.0.1:{trickler.port}/fabrikam")
        response = call(service, headers, BODY)
        assert service.app.state.wait_idle(30)
    finally:
        trickler.close()
    assert response.status_code == 200
    failed = {line["event"]: line["error"] for line in service.log_lines() if line["event"].endswith("_failed")}
    assert "took more than 1 s to arrive" in failed["azure_devops_log_failed"]
    assert "took more than 1 s to arrive" in failed["azure_devops_complete_failed"]  # never completed, never passed
    plan = f"/fabrikam/{headers['ProjectId']}/_apis/distributedtask/hubs/checks/plans/{headers['PlanId']}/"
    assert trickler.paths and all(path.startswith(plan) for path in trickler.paths)
    assert_clean(service, response.text)
