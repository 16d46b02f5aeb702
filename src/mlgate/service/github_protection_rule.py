"""GitHub custom deployment protection rule (a GitHub App) answering ``deployment_protection_rule``.

GitHub sends ``POST /github/webhook`` with the ``deployment_protection_rule`` event (action
``requested``) when a job targets an environment that has the App as a protection rule. We:

* verify ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the webhook secret,
  ``hmac.compare_digest``) -> 401 and nothing evaluated when it is missing or wrong;
* ignore a replayed ``X-GitHub-Delivery`` id (in-memory, TTL, bounded);
* find the model: ``deployment.payload.model`` (``payload`` as an object or a JSON string;
  optional ``manifest_sha256``), else the configured environment -> model mapping; without
  either the rule is rejected, saying so;
* evaluate on the background pool and answer on ``deployment_callback_url`` with an
  installation token (PyGithub App auth): ``approved`` when the gate passes (the
  environment's required reviewers still decide), ``rejected`` otherwise, with the evidence
  summary as the comment (kept within GitHub's limit, linking the full evidence).

The callback URL must lie under the configured GitHub API URL, so a token is never sent
elsewhere. PyGithub has no method for the callback itself; it is one documented POST.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from mlgate.errors import Error, NetworkError, UsageError
from mlgate.platforms.base import CIContext
from mlgate.refs import ModelRef
from mlgate.service.config import GITHUB_COMMENT_LIMIT, ServiceConfig
from mlgate.service.evaluation import Evaluator, EvidenceStore, Verdict, failure, summary_lines
from mlgate.service.handler import CheckHandler
from mlgate.service.http_types import Reply, Request, error_reply
from mlgate.service.logs import log_event
from mlgate.service.safe_url import parse_safe_url
from mlgate.service.worker import Dispatcher, ReplayGuard

GITHUB_API_VERSION = "2022-11-28"


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` against the body, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (tests and benchmarks)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class RuleRequest:
    delivery: str
    environment: str
    callback_url: str
    installation_id: int
    ref: ModelRef | None
    ref_text: str
    ref_problem: str | None
    manifest_sha256: str | None
    repository: str | None
    sha: str | None
    requester: str | None


def _deployment_payload(deployment: Any) -> dict[str, Any]:
    if not isinstance(deployment, dict):
        return {}
    payload = deployment.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload.strip() else {}
        except json.JSONDecodeError:
            return {}
    return payload if isinstance(payload, dict) else {}


def callback_under(url: str, base: str) -> str | None:
    """``url`` rebuilt from its strictly parsed parts when it lies under ``base``/repos/, else None."""
    target, root = parse_safe_url(url), parse_safe_url(base.rstrip("/"))
    if target is None or root is None:
        return None
    same_origin = (
        target.scheme == root.scheme and target.host == root.host and target.effective_port == root.effective_port
    )
    if not same_origin or not target.path.startswith(root.path + "/repos/"):
        return None
    return target.url


def _deployment_age(deployment: Any, now: float) -> float | None:
    """Seconds since the deployment's ``created_at``: None without one (the payload's
    ``deployment`` may be null), ``inf`` when it is unreadable (treated as too old)."""
    created = deployment.get("created_at") if isinstance(deployment, dict) else None
    if created is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if stamp.tzinfo is None:
        return float("inf")
    return now - stamp.timestamp()


def parse_event(payload: Any, delivery: str, config: ServiceConfig) -> RuleRequest | Reply:
    if not isinstance(payload, dict):
        return error_reply(400, "the payload is not a JSON object")
    environment = payload.get("environment")
    callback = payload.get("deployment_callback_url")
    installation = payload.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    if not isinstance(environment, str) or not environment:
        return error_reply(400, "the payload has no environment")
    callback_url = callback_under(callback, config.github_api_url) if isinstance(callback, str) else None
    if callback_url is None:
        return error_reply(
            400,
            "the payload's deployment_callback_url is not a plain URL under the configured GitHub API URL",
        )
    if not isinstance(installation_id, int):
        return error_reply(400, "the payload has no installation.id")
    # Delivery ids are remembered in memory only (forgotten on restart) for replay_ttl_seconds:
    # a delivery about a deployment older than that could be a replay, so it is not evaluated.
    age = _deployment_age(payload.get("deployment"), time.time())
    if age is not None and age > config.replay_ttl_seconds:
        when = "at an unreadable time" if age == float("inf") else f"{int(age)} s ago"
        return error_reply(
            400,
            f"the deployment was created {when}, longer ago than replay_ttl_seconds "
            f"({int(config.replay_ttl_seconds)}); start a new deployment",
        )
    data = _deployment_payload(payload.get("deployment"))
    ref: ModelRef | None = None
    problem: str | None = None
    ref_text = data.get("model")
    manifest = data.get("manifest_sha256")
    if isinstance(ref_text, str) and ref_text.strip():
        try:
            ref = ModelRef.parse(ref_text)
        except UsageError as exc:
            problem = f"deployment payload: {exc.message}"
    elif environment in config.environment_models:
        ref = config.environment_models[environment]
        ref_text = str(ref)
    else:
        ref_text = "(no model)"
        problem = (
            f'no model named for environment {environment!r}: put "model" in the deployment\'s payload '
            "or map the environment in environment_models"
        )
    if manifest is not None and not (isinstance(manifest, str) and len(manifest) == 64):
        problem = problem or "deployment payload: manifest_sha256 must be 64 hexadecimal characters"
        manifest = None
    repository = payload.get("repository")
    sender = payload.get("sender")
    return RuleRequest(
        delivery=delivery,
        environment=environment,
        callback_url=callback_url,
        installation_id=installation_id,
        ref=ref,
        ref_text=str(ref_text)[:200],
        ref_problem=problem,
        manifest_sha256=manifest.lower() if isinstance(manifest, str) else None,
        repository=repository.get("full_name") if isinstance(repository, dict) else None,
        sha=payload.get("sha") if isinstance(payload.get("sha"), str) else None,
        requester=sender.get("login") if isinstance(sender, dict) else None,
    )


def _markdown_summary(verdict: Verdict, link: str) -> str:
    """The summary lines as markdown: list items stay a list, other lines become paragraphs."""
    blocks: list[str] = [f"### mlgate: **{verdict.decision}** `{verdict.ref}`"]
    for line in summary_lines(verdict):
        if line.startswith("full evidence: "):
            continue
        item = line.lstrip()
        if item.startswith("- "):
            blocks.append(item)
        else:
            blocks.append("")
            blocks.append(line)
    if link:
        blocks += ["", link]
    return "\n".join(blocks)


def comment_for(verdict: Verdict, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The review comment: verdict and failing rules first, then as much evidence as fits."""
    link = f"[full evidence]({verdict.evidence_url})" if verdict.evidence_url else ""
    head = _markdown_summary(verdict, link)
    text = head if not verdict.markdown else head + "\n\n" + verdict.markdown
    if len(text) <= limit:
        return text
    marker = f"\n\n... evidence truncated to fit GitHub's comment limit; {link or 'see the gate log'}"
    if len(head) + len(marker) > limit:
        return (head[: limit - len(marker)] + marker)[:limit]
    return text[: limit - len(marker)] + marker


class InstallationTokens:
    """Installation tokens from PyGithub App auth, cached per installation until near expiry."""

    def __init__(self, app_id: str, private_key: str, base_url: str) -> None:
        self._app_id = app_id
        self._private_key = private_key
        self._base_url = base_url
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[str, float]] = {}
        self._integration: Any = None

    def __repr__(self) -> str:
        return f"InstallationTokens(app_id={self._app_id})"

    def get(self, installation_id: int) -> str:
        with self._lock:
            cached = self._cache.get(installation_id)
            if cached and cached[1] - 300 > time.time():
                return cached[0]
            from github import Auth, GithubException, GithubIntegration

            if self._integration is None:
                self._integration = GithubIntegration(
                    auth=Auth.AppAuth(int(self._app_id), self._private_key),
                    base_url=self._base_url,
                    timeout=15,
                    retry=2,
                )
            try:
                grant = self._integration.get_access_token(installation_id)
            except GithubException as exc:
                raise NetworkError(
                    f"GitHub refused an installation token for installation {installation_id} (status {exc.status})",
                    hint="check the App id and private key, and that the App is installed on the repository",
                ) from None
            except (requests.RequestException, OSError) as exc:
                raise NetworkError(
                    f"GitHub did not answer the installation token request ({type(exc).__name__})"
                ) from None
            expires = grant.expires_at.timestamp() if grant.expires_at else time.time() + 600
            self._cache[installation_id] = (grant.token, expires)
            return str(grant.token)


class GitHubProtectionRule(CheckHandler):
    def __init__(
        self,
        config: ServiceConfig,
        evaluator: Evaluator,
        dispatcher: Dispatcher,
        replays: ReplayGuard,
        store: EvidenceStore | None,
    ) -> None:
        super().__init__(config, evaluator, dispatcher, replays, store)
        self._tokens = (
            InstallationTokens(config.github_app_id, config.github_private_key, config.github_api_url)
            if config.github_app_id and config.github_private_key
            else None
        )

    def handle(self, request: Request) -> Reply:
        secret = self._config.github_webhook_secret
        if secret is None:
            return error_reply(404, "the GitHub protection rule is not configured on this service")
        delivery = (request.header("x-github-delivery") or "").strip()[:100]
        if not signature_valid(secret, request.body, request.header("x-hub-signature-256")):
            return error_reply(401, "missing or wrong X-Hub-Signature-256", delivery=delivery, reason="bad_signature")
        event = request.header("x-github-event") or ""
        fields: dict[str, Any] = {"delivery": delivery, "github_event": event}
        if event == "ping":
            return Reply(200, {"status": "pong"}, log_fields=fields)
        if event != "deployment_protection_rule":
            ignored = {"status": "ignored", "reason": f"event {event!r} is not handled"}
            return Reply(202, ignored, log_fields=fields)
        if not delivery:
            return error_reply(400, "missing X-GitHub-Delivery", **fields)
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error_reply(400, f"the body is not JSON: {exc}", **fields)
        if isinstance(payload, dict) and payload.get("action") != "requested":
            return Reply(202, {"status": "ignored", "reason": "action is not 'requested'"}, log_fields=fields)
        parsed = parse_event(payload, delivery, self._config)
        if isinstance(parsed, Reply):
            return parsed
        fields.update(environment=parsed.environment, ref=parsed.ref_text)
        return self._accept(
            ("github", parsed.delivery),
            "github-protection-rule",
            lambda: self.complete(parsed),
            {"status": "accepted"},
            fields,
        )

    def evaluate(self, rule: RuleRequest) -> Verdict:
        if rule.ref is None:
            return failure(rule.ref_text, rule.ref_problem or "no model named")
        if rule.ref_problem:
            return failure(str(rule.ref), rule.ref_problem)
        ci = CIContext(
            platform="github",
            commit=rule.sha,
            requester=rule.requester,
            repository=rule.repository,
            extra={"environment": rule.environment, "delivery": rule.delivery},
        )
        return self._run_gate(rule.ref, stage=self._config.stage, manifest_sha256=rule.manifest_sha256, ci=ci)

    def complete(self, rule: RuleRequest) -> None:
        verdict = self.evaluate(rule)
        state = "approved" if verdict.passed else "rejected"
        body = {"environment_name": rule.environment, "state": state, "comment": comment_for(verdict)}
        try:
            self._callback(rule, body)
        except Error as exc:
            # Unanswered: forget the delivery so that GitHub's redelivery (same id) is processed.
            self._replays.forget(("github", rule.delivery))
            log_event(logging.ERROR, "github_callback_failed", delivery=rule.delivery, error=exc.message)
            return
        log_event(
            logging.INFO,
            "github_rule_answered",
            delivery=rule.delivery,
            environment=rule.environment,
            ref=rule.ref_text,
            state=state,
        )

    def _callback(self, rule: RuleRequest, body: dict[str, Any]) -> None:
        if self._tokens is None:
            raise UsageError("the GitHub App id and private key are not configured")
        token = self._tokens.get(rule.installation_id)
        try:
            response = self._session().post(
                rule.callback_url,
                json=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": GITHUB_API_VERSION,
                },
            )
        except requests.RequestException as exc:
            raise NetworkError(f"GitHub did not answer the protection rule callback ({type(exc).__name__})") from None
        if response.status_code not in (200, 204):
            raise NetworkError(f"GitHub answered {response.status_code} to the protection rule callback")
