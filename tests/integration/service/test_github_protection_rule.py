"""The GitHub custom deployment protection rule, against a spec-backed fake GitHub."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from mlgate.errors import NetworkError
from mlgate.service.config import GITHUB_COMMENT_LIMIT
from mlgate.service.evaluation import GateResult
from mlgate.service.github_protection_rule import sign
from tests.fakes.specs import load
from tests.integration.service.conftest import (
    Running,
    ScriptedEvaluator,
    StartService,
    passing_outcome,
    raising,
    refused_outcome,
)
from tests.integration.service.fakes import FakeGitHub

pytestmark = pytest.mark.integration

INSTALLATION_ID = 424242


def rule_payload(
    fake: FakeGitHub, *, environment: str = "production", deployment_payload: Any = None, **overrides: Any
) -> dict[str, Any]:
    """A deployment_protection_rule 'requested' payload (GitHub publishes no example).

    Built from the recorded `deployment` webhook example's deployment, repository and sender,
    plus the fields the protection-rule schema adds, and validated against that schema.
    """
    examples = load("github/webhook-examples.json")
    deployment_example = next(e for e in examples if e["name"] == "deployment")["examples"][0]
    deployment = copy.deepcopy(deployment_example["deployment"])
    deployment["environment"] = environment
    deployment["created_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if deployment_payload is not None:
        deployment["payload"] = deployment_payload
    payload: dict[str, Any] = {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "sha": deployment["sha"],
        "ref": "refs/heads/main",
        "deployment_callback_url": fake.callback_url(),
        "deployment": deployment,
        "pull_requests": [],
        "repository": copy.deepcopy(deployment_example["repository"]),
        "installation": {"id": INSTALLATION_ID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0MjQy"},
        "sender": copy.deepcopy(deployment_example["sender"]),
    }
    payload.update(overrides)
    schema = fake.spec.webhook_schema("deployment-protection-rule-requested")
    fake.spec.check(payload, schema, "test webhook payload")
    return payload


def deliver(
    service: Running,
    payload: Any,
    *,
    secret: str | None = None,
    signature: str | None = None,
    delivery: str | None = None,
    event: str = "deployment_protection_rule",
) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/123abc",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
    }
    if signature is None:
        signature = sign(secret or service.secrets["webhook_secret"], body)
    if signature:
        headers["X-Hub-Signature-256"] = signature
    return requests.post(f"{service.base_url}/github/webhook", data=body, headers=headers, timeout=10)


MODEL = {"model": "models:/fraud-detector/3", "manifest_sha256": "c" * 64}


def assert_no_secret_in_logs(service: Running, fake: FakeGitHub, private_key: str) -> None:
    text = service.log.getvalue()
    assert text
    for value in (*service.secrets.values(), fake.installation_token, private_key):
        assert value not in text
    for line in private_key.splitlines()[1:-1]:
        assert line not in text


def test_passing_model_is_approved_with_the_evidence_summary(
    start_service: StartService, fake_github: FakeGitHub, app_key: tuple[str, bytes]
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)

    response = deliver(service, rule_payload(fake_github, deployment_payload=MODEL))

    assert response.status_code == 200, response.text
    review = fake_github.wait_for("actions/review-custom-gates-for-run")[0]
    assert review.params == {"owner": "octo-org", "repo": "models", "run_id": "4242"}
    body = review.json()
    assert body["environment_name"] == "production"
    assert body["state"] == "approved"
    assert body["comment"].startswith("### mlgate: **passed** `models:/fraud-detector/3`")
    assert "all 7 rules passed" in body["comment"]
    assert f"https://mlgate.example.org/evidence/{'a' * 64}.md" in body["comment"]
    token_requests = fake_github.of("apps/create-installation-access-token")
    assert [r.params["installation_id"] for r in token_requests] == [str(INSTALLATION_ID)]
    assert fake_github.violations == []
    call = evaluator.calls[0]
    assert call["ref"] == "models:/fraud-detector/3"
    assert call["manifest_sha256"] == "c" * 64
    assert call["ci"].platform == "github"
    assert call["ci"].repository == "Codertocat/Hello-World"
    # the linked evidence is served by the service
    evidence = requests.get(f"{service.base_url}/evidence/{'a' * 64}.md", timeout=5)
    assert evidence.status_code == 200
    assert "lineage.git_commit | passed" in evidence.text
    evidence_json = requests.get(f"{service.base_url}/evidence/{'a' * 64}.json", timeout=5).json()
    assert evidence_json["decision"] == "passed"
    assert_no_secret_in_logs(service, fake_github, app_key[0])


def test_refused_model_is_rejected_with_the_failing_rules(start_service: StartService, fake_github: FakeGitHub) -> None:
    service = start_service(ScriptedEvaluator(refused_outcome))
    assert deliver(service, rule_payload(fake_github, deployment_payload=MODEL)).status_code == 200
    body = fake_github.wait_for("actions/review-custom-gates-for-run")[0].json()
    assert body["state"] == "rejected"
    assert "metrics.auc: expected >= 0.80, got 0.61" in body["comment"]
    assert "tags_required.rollback_plan: missing" in body["comment"]
    assert fake_github.violations == []


def test_mlflow_down_is_rejected_with_the_reason_never_approved(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    down = NetworkError("MLflow at http://127.0.0.1:9 did not answer (ConnectionError)")
    service = start_service(ScriptedEvaluator(raising(down)))
    assert deliver(service, rule_payload(fake_github, deployment_payload=MODEL)).status_code == 200
    body = fake_github.wait_for("actions/review-custom-gates-for-run")[0].json()
    assert body["state"] == "rejected"
    assert "could not evaluate" in body["comment"]
    assert "MLflow at http://127.0.0.1:9 did not answer" in body["comment"]


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "sha1=abc", "wrong-secret"])
def test_bad_or_missing_signature_is_401_and_nothing_is_evaluated(
    start_service: StartService, fake_github: FakeGitHub, signature: str
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    if signature == "wrong-secret":
        signature = sign("not-the-secret", json.dumps(payload).encode())

    response = deliver(service, payload, signature=signature)

    assert response.status_code == 401
    service.app.state.wait_idle(5)
    assert evaluator.calls == []
    assert fake_github.requests == []


def test_a_signature_over_a_different_body_is_401(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    tampered = json.dumps({**payload, "environment": "staging"}).encode()
    signature = sign(service.secrets["webhook_secret"], json.dumps(payload).encode())
    assert deliver(service, tampered, signature=signature).status_code == 401
    assert evaluator.calls == []


def test_replayed_delivery_is_evaluated_once(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    delivery = str(uuid.uuid4())

    answers = [deliver(service, payload, delivery=delivery).json()["status"] for _ in range(3)]

    assert answers == ["accepted", "duplicate", "duplicate"]
    fake_github.wait_for("actions/review-custom-gates-for-run")
    service.app.state.wait_idle(10)
    assert len(evaluator.calls) == 1
    assert len(fake_github.reviews()) == 1


def test_body_over_the_cap_is_413_and_nothing_is_evaluated(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, max_body_bytes="4096")
    payload = rule_payload(fake_github, deployment_payload={**MODEL, "padding": "x" * 8192})
    assert deliver(service, payload).status_code == 413
    assert evaluator.calls == []


def test_model_from_the_environment_mapping(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, environment_models="production=models:/churn@champion,staging=churn/2")
    payload = rule_payload(fake_github, deployment=None)
    assert deliver(service, payload).status_code == 200
    fake_github.wait_for("actions/review-custom-gates-for-run")
    assert evaluator.calls[0]["ref"] == "models:/churn@champion"
    assert fake_github.reviews()[0]["state"] == "approved"


def test_a_string_deployment_payload_names_the_model(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    assert deliver(service, rule_payload(fake_github, deployment_payload=json.dumps(MODEL))).status_code == 200
    fake_github.wait_for("actions/review-custom-gates-for-run")
    assert evaluator.calls[0]["ref"] == "models:/fraud-detector/3"


def test_no_model_named_is_rejected_saying_how_to_name_one(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    assert deliver(service, rule_payload(fake_github, deployment=None)).status_code == 200
    review = fake_github.wait_for("actions/review-custom-gates-for-run")[0].json()
    assert review["state"] == "rejected"
    assert "no model named for environment 'production'" in review["comment"]
    assert evaluator.calls == []


def test_long_evidence_is_cut_to_githubs_limit_with_a_link_to_the_full_pack(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    long_markdown = "## evidence\n" + "\n".join(f"| rule.{i} | passed | {'x' * 80} |" for i in range(3000))

    def huge(ref: Any) -> GateResult:
        outcome = passing_outcome(ref)
        return replace(outcome, evidence_sha256="d" * 64, markdown=long_markdown, summary="all 3000 rules passed")

    service = start_service(ScriptedEvaluator(huge))
    assert deliver(service, rule_payload(fake_github, deployment_payload=MODEL)).status_code == 200
    comment = fake_github.wait_for("actions/review-custom-gates-for-run")[0].json()["comment"]
    assert len(long_markdown) > GITHUB_COMMENT_LIMIT
    assert len(comment) <= GITHUB_COMMENT_LIMIT
    link = f"https://mlgate.example.org/evidence/{'d' * 64}.md"
    assert comment.endswith(f"evidence truncated to fit GitHub's comment limit; [full evidence]({link})")
    full = requests.get(f"{service.base_url}/evidence/{'d' * 64}.md", timeout=5).text
    assert full == long_markdown


def test_ping_is_answered_and_other_events_ignored(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    assert deliver(service, {"zen": "Keep it logically awesome."}, event="ping").json() == {"status": "pong"}
    assert deliver(service, {"action": "created"}, event="deployment").status_code == 202
    assert evaluator.calls == []


def test_a_callback_url_outside_the_github_api_is_refused(start_service: StartService, fake_github: FakeGitHub) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(
        fake_github,
        deployment_payload=MODEL,
        deployment_callback_url="https://collector.example.com/repos/o/r/actions/runs/1/deployment_protection_rule",
    )
    response = deliver(service, payload)
    assert response.status_code == 400
    assert "deployment_callback_url" in response.json()["error"]
    assert evaluator.calls == []
    assert fake_github.requests == []


def test_the_installation_token_is_reused_across_deliveries(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    service = start_service(ScriptedEvaluator())
    for _ in range(3):
        assert deliver(service, rule_payload(fake_github, deployment_payload=MODEL)).status_code == 200
    fake_github.wait_for("actions/review-custom-gates-for-run", count=3)
    assert len(fake_github.of("apps/create-installation-access-token")) == 1


def test_health(start_service: StartService) -> None:
    service = start_service(ScriptedEvaluator())
    health = requests.get(f"{service.base_url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["github_protection_rule"] is True
    assert health.json()["azure_devops_check"] is True
    assert requests.post(f"{service.base_url}/healthz", timeout=5).status_code == 405
    assert requests.get(f"{service.base_url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{service.base_url}/github/webhook", timeout=5).status_code == 405
    assert requests.get(f"{service.base_url}/evidence/../../etc/passwd", timeout=5).status_code == 404


def test_a_redelivery_after_a_failed_callback_is_processed(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    delivery = str(uuid.uuid4())
    fake_github.fail["actions/review-custom-gates-for-run"] = 422

    assert deliver(service, payload, delivery=delivery).json()["status"] == "accepted"
    fake_github.wait_for("actions/review-custom-gates-for-run")
    service.app.state.wait_idle(10)
    failed = [line for line in service.log_lines() if line["event"] == "github_callback_failed"]
    assert failed and "422" in failed[0]["error"]

    del fake_github.fail["actions/review-custom-gates-for-run"]
    assert deliver(service, payload, delivery=delivery).json()["status"] == "accepted"  # GitHub's redelivery
    fake_github.wait_for("actions/review-custom-gates-for-run", count=2)
    service.app.state.wait_idle(10)
    assert len(evaluator.calls) == 2
    assert deliver(service, payload, delivery=delivery).json()["status"] == "duplicate"  # answered now


@pytest.mark.parametrize(
    "suffix",
    [
        "/repos/%2e%2e/app/installations",  # the server decodes it: the token would reach /app/installations
        "/repos/o/r/actions/runs/1/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/user",
        "/repos/o/r\\..\\..\\user",
        "/repos/o/r/actions/runs/1/deployment_protection_rule#x",
    ],
)
def test_a_callback_url_that_is_not_plain_is_refused(
    start_service: StartService, fake_github: FakeGitHub, suffix: str
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator)
    payload = rule_payload(fake_github, deployment_payload=MODEL, deployment_callback_url=fake_github.url + suffix)
    response = deliver(service, payload)
    service.app.state.wait_idle(10)
    assert response.status_code == 400
    assert "deployment_callback_url" in response.json()["error"]
    assert evaluator.calls == []
    assert fake_github.requests == []


@pytest.mark.parametrize("created_at", ["stale", "", "yesterday", "2024-01-01T00:00:00", 17])
def test_a_delivery_about_an_old_or_unreadably_dated_deployment_is_not_evaluated(
    start_service: StartService, fake_github: FakeGitHub, created_at: str | int
) -> None:
    # Replay protection forgets delivery ids on restart and after replay_ttl_seconds: a delivery
    # whose deployment is older than that window is refused instead of evaluated again.
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, replay_ttl_seconds="3600")
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    if created_at == "stale":
        stale = datetime.now(timezone.utc) - timedelta(seconds=3700)
        payload["deployment"]["created_at"] = stale.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        payload["deployment"]["created_at"] = created_at
    response = deliver(service, payload)
    service.app.state.wait_idle(10)
    assert response.status_code == 400
    assert "created" in response.json()["error"]
    assert evaluator.calls == []
    assert fake_github.requests == []


def test_a_delivery_about_a_recent_deployment_is_evaluated(
    start_service: StartService, fake_github: FakeGitHub
) -> None:
    evaluator = ScriptedEvaluator()
    service = start_service(evaluator, replay_ttl_seconds="3600")
    payload = rule_payload(fake_github, deployment_payload=MODEL)
    recent = datetime.now(timezone.utc) - timedelta(seconds=3000)
    payload["deployment"]["created_at"] = recent.isoformat()
    assert deliver(service, payload).status_code == 200
    service.app.state.wait_idle(10)
    assert len(evaluator.calls) == 1
