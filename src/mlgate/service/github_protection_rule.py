"""GitHub custom deployment protection rule (a GitHub App) answering ``deployment_protection_rule``.

GitHub sends ``POST /github/webhook`` with the ``deployment_protection_rule`` event (action
``requested``) when a job targets an environment that has the App as a protection rule. We:

* verify ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the webhook secret,
  ``hmac.compare_digest``) -> 401 and nothing evaluated when it is missing or wrong;
* ignore a replayed ``X-GitHub-Delivery`` id (the state back-end's replay memory, with an expiry);
* find the model: ``deployment.payload.model`` (``payload`` as an object or a JSON string;
  optional ``manifest_sha256``), else the configured environment -> model mapping; without
  either the rule is rejected, saying so;
* read the payload as bounded JSON, each field with its documented type (a wrong-typed
  field, a 5000-digit number, deep nesting or NaN is 400, nothing evaluated);
* store the job (acknowledged once it is stored), evaluate on a worker and answer on ``deployment_callback_url`` with an
  installation token (the App's JWT signed by PyGithub's ``Auth.AppAuth``, the token request
  made through mlgate's session): ``approved`` when the gate passes (the environment's
  required reviewers still decide), ``rejected`` otherwise, with the evidence summary as the
  comment (kept within GitHub's limit, linking the full evidence).

The callback URL must be the documented callback (``/repos/OWNER/REPO/actions/runs/ID/
deployment_protection_rule``) under the configured GitHub API URL, so a token is never sent
elsewhere; a redirect is followed only on the same origin (:func:`mlgate.http.make_session`),
and every answer is read with a size and time cap. PyGithub has no method for the callback
itself; it is one documented POST.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import requests

from mlgate import redact
from mlgate.errors import Error, InvalidInputError, NetworkError, UsageError
from mlgate.http import read_body, read_json
from mlgate.jsonvalue import Fields, parse_json
from mlgate.platforms.base import CIContext
from mlgate.refs import ModelRef
from mlgate.service.config import GITHUB_COMMENT_LIMIT, ServiceConfig
from mlgate.service.evaluation import GateCall, Verdict, failure, summary_lines
from mlgate.service.handler import CheckHandler, Services
from mlgate.service.http_types import Json, Reply, Request, error_reply
from mlgate.service.logs import log_event
from mlgate.service.safe_url import parse_safe_url

GITHUB_API_VERSION = "2022-11-28"
# The documented callback: POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule
_CALLBACK_PATH = re.compile(r"^/repos/[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}/actions/runs/[0-9]{1,20}"
                            r"/deployment_protection_rule$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")
MAX_INSTALLATION_ID = 2**53  # a JSON integer GitHub can send
ANSWER_LIMIT = 1 << 20


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` against the body, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def signature_valid_any(secrets: tuple[str | None, ...], body: bytes, header: str | None) -> bool:
    """:func:`signature_valid` for each secret given (the current and, during a rotation, the previous one)."""
    matches = [signature_valid(secret, body, header) for secret in secrets if secret]
    return any(matches)


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


@dataclass(frozen=True)
class ModelChoice:
    """The model a delivery names (or why it names none)."""

    ref: ModelRef | None
    ref_text: str
    problem: str | None = None
    manifest_sha256: str | None = None


def callback_under(url: str, base: str) -> str | None:
    """``url`` rebuilt from its strictly parsed parts when it is the documented callback under ``base``, else None.

    Same origin as the configured API URL, and the path ``{base}/repos/OWNER/REPO/actions/runs/ID/
    deployment_protection_rule`` exactly, so the installation token never goes anywhere else.
    """
    target, root = parse_safe_url(url), parse_safe_url(base.rstrip("/"))
    if target is None or root is None:
        return None
    same_origin = (
        target.scheme == root.scheme and target.host == root.host and target.effective_port == root.effective_port
    )
    if not same_origin or not target.path.startswith(root.path + "/repos/"):
        return None
    if not _CALLBACK_PATH.match(target.path[len(root.path):]):
        return None
    return target.url


def _deployment_age(created: str | None, now: float) -> float | None:
    """Seconds since the deployment's ``created_at``: None without one (the payload's
    ``deployment`` may be null), ``inf`` when it is unreadable (treated as too old)."""
    if created is None:
        return None
    try:
        stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if stamp.tzinfo is None:
        return float("inf")
    return now - stamp.timestamp()


def _deployment_data(deployment: Fields) -> Fields:
    """The deployment's ``payload`` (an object, a JSON string of one, or empty)."""
    payload = deployment.raw("payload")
    if isinstance(payload, str):
        text = payload.strip()
        payload = parse_json(text, what="the deployment payload", error=InvalidInputError,
                             hint='write {"model": "models:/NAME/VERSION"} as the deployment payload') if text else None
    return Fields({} if payload is None else payload, "the deployment payload", error=InvalidInputError)


def choose_model(deployment: Fields, environment: str, config: ServiceConfig) -> ModelChoice:
    """The model of the deployment payload, else the environment's configured model."""
    try:
        data = _deployment_data(deployment)
        ref_text = (data.opt_text("model") or "").strip()
        manifest = data.opt_text("manifest_sha256")
        if manifest is not None and not _SHA256.match(manifest):
            data.fail("manifest_sha256", "must be 64 hexadecimal characters")
    except InvalidInputError as exc:
        return ModelChoice(None, "(no model)", f"deployment payload: {exc.message}")
    digest = manifest.lower() if manifest else None
    if ref_text:
        try:
            return ModelChoice(ModelRef.parse(ref_text), ref_text[:200], None, digest)
        except UsageError as exc:
            return ModelChoice(None, ref_text[:200], f"deployment payload: {exc.message}")
    if environment in config.environment_models:
        ref = config.environment_models[environment]
        return ModelChoice(ref, str(ref), None, digest)
    return ModelChoice(None, "(no model)", (
        f'no model named for environment {environment!r}: put "model" in the deployment\'s payload '
        "or map the environment in environment_models"
    ))


def _environment(fields: Fields) -> str:
    environment = fields.text("environment")
    if not environment or len(environment) > 255 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in environment):
        fields.fail("environment", "not an environment name (1 to 255 characters, no control characters)")
    return environment


def _installation_id(fields: Fields) -> int:
    installation = fields.obj("installation")
    value = installation.raw("id")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < MAX_INSTALLATION_ID:
        installation.fail("id", "expected a positive integer (the App installation's id)")
    return value


def parse_event(payload: Fields, delivery: str, config: ServiceConfig) -> RuleRequest | Reply:
    """A ``requested`` delivery, each field read with its documented type; a Reply (400) otherwise.

    :class:`InvalidInputError` from a wrong-typed field propagates (the caller answers 400).
    """
    environment = _environment(payload)
    callback_url = callback_under(payload.text("deployment_callback_url"), config.github_api_url)
    if callback_url is None:
        return error_reply(
            400,
            "the payload's deployment_callback_url is not the protection rule callback "
            "(a plain URL .../repos/OWNER/REPO/actions/runs/ID/deployment_protection_rule) under the "
            "configured GitHub API URL",
            reason="bad_callback_url",
        )
    installation_id = _installation_id(payload)
    deployment = payload.opt_obj("deployment")
    # Delivery ids are remembered for replay_ttl_seconds (in memory only with the in-process state):
    # a delivery about a deployment older than that could be a replay, so it is not evaluated.
    age = _deployment_age(deployment.opt_text("created_at"), time.time())
    if age is not None and age > config.replay_ttl_seconds:
        when = "at an unreadable time" if age == float("inf") else f"{int(age)} s ago"
        return error_reply(
            400,
            f"the deployment was created {when}, longer ago than replay_ttl_seconds "
            f"({int(config.replay_ttl_seconds)}); start a new deployment",
        )
    model = choose_model(deployment, environment, config)
    return RuleRequest(
        delivery=delivery,
        environment=environment,
        callback_url=callback_url,
        installation_id=installation_id,
        ref=model.ref,
        ref_text=model.ref_text,
        ref_problem=model.problem,
        manifest_sha256=model.manifest_sha256,
        repository=payload.opt_obj("repository").opt_text("full_name"),
        sha=payload.opt_text("sha"),
        requester=payload.opt_obj("sender").opt_text("login"),
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
    """Installation tokens of the GitHub App, cached per installation until near expiry.

    The App's JWT is signed by PyGithub (``Auth.AppAuth``); the token request itself goes
    through mlgate's session (same-origin redirects only) and its answer is read with a size
    and time cap and checked field by field.
    """

    def __init__(self, app_id: str, private_key: str, base_url: str, seconds: float) -> None:
        from github import Auth

        self._app_id = app_id
        try:
            self._auth = Auth.AppAuth(int(app_id), private_key)
            self._auth.create_jwt()  # a private key that cannot sign stops the start-up, not a delivery
        except Exception as exc:  # PyJWT's InvalidKeyError, ValueError, PyGithub's assertions
            raise InvalidInputError(
                f"the GitHub App id or private key cannot sign the App's token ({type(exc).__name__})",
                hint="give the App's numeric id and its PEM private key (MLGATE_SERVE_GITHUB_PRIVATE_KEY[_FILE])",
            ) from None
        self._base_url = base_url
        self._seconds = seconds
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"InstallationTokens(app_id={self._app_id})"

    def token(self, installation_id: int, session: requests.Session) -> str:
        with self._lock:
            cached = self._cache.get(installation_id)
            if cached and cached[1] - 300 > time.time():
                return cached[0]
            token, expires = self._request(installation_id, session)
            self._cache[installation_id] = (token, expires)
            return token

    def _request(self, installation_id: int, session: requests.Session) -> tuple[str, float]:
        what = f"GitHub answer to the installation token request (installation {installation_id})"
        url = f"{self._base_url}/app/installations/{installation_id}/access_tokens"
        headers = {**_api_headers(), "Authorization": f"Bearer {self._auth.create_jwt()}"}
        try:
            response = session.post(url, headers=headers, stream=True)
        except requests.RequestException as exc:
            raise NetworkError(f"GitHub did not answer the installation token request ({type(exc).__name__})") from None
        if response.status_code not in (200, 201):
            response.close()
            raise NetworkError(
                f"GitHub refused an installation token for installation {installation_id} "
                f"(status {response.status_code})",
                hint="check the App id and private key, and that the App is installed on the repository",
            )
        answer = Fields(read_json(response, what=what, limit=ANSWER_LIMIT, seconds=self._seconds), what)
        token = answer.text("token")
        if not _TOKEN.match(token):
            answer.fail("token", "not a token (printable characters, no spaces)")
        redact.register(token)
        expires = answer.opt_text("expires_at")
        return token, _expiry(answer, expires)


def _expiry(answer: Fields, expires: str | None) -> float:
    if expires is None:
        return time.time() + 600
    try:
        stamp = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        answer.fail("expires_at", "not an ISO 8601 time")
    if stamp.tzinfo is None:
        answer.fail("expires_at", "an ISO 8601 time without a time zone")
    return stamp.timestamp()


def _api_headers() -> dict[str, str]:
    return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": GITHUB_API_VERSION}


def rule_payload(rule: RuleRequest) -> dict[str, object]:
    """What a job stores of the delivery (sealed, like every job)."""
    return {
        "delivery": rule.delivery, "environment": rule.environment, "callback_url": rule.callback_url,
        "installation_id": rule.installation_id, "ref": str(rule.ref) if rule.ref else None,
        "ref_text": rule.ref_text, "ref_problem": rule.ref_problem, "manifest_sha256": rule.manifest_sha256,
        "repository": rule.repository, "sha": rule.sha, "requester": rule.requester,
    }


def restore_rule(payload: Fields) -> RuleRequest:
    ref = payload.opt_text("ref")
    return RuleRequest(
        delivery=payload.text("delivery"), environment=payload.text("environment"),
        callback_url=payload.text("callback_url"), installation_id=payload.integer("installation_id"),
        ref=ModelRef.parse(ref) if ref else None, ref_text=payload.text("ref_text"),
        ref_problem=payload.opt_text("ref_problem"), manifest_sha256=payload.opt_text("manifest_sha256"),
        repository=payload.opt_text("repository"), sha=payload.opt_text("sha"), requester=payload.opt_text("requester"),
    )


class GitHubProtectionRule(CheckHandler[RuleRequest]):
    kind = "github"

    def __init__(self, services: Services) -> None:
        config = services.config
        super().__init__(services, [config.github_webhook_secret, config.github_webhook_secret_previous])
        self._tokens = (
            InstallationTokens(config.github_app_id, config.github_private_key, config.github_api_url,
                               config.callback_timeout_seconds)
            if config.github_app_id and config.github_private_key
            else None
        )

    def handle(self, request: Request) -> Reply:
        secret = self._config.github_webhook_secret
        if secret is None:
            return error_reply(404, "the GitHub protection rule is not configured on this service")
        delivery = (request.header("x-github-delivery") or "").strip()[:100]
        secrets = (secret, self._config.github_webhook_secret_previous)
        if not signature_valid_any(secrets, request.body, request.header("x-hub-signature-256")):
            return error_reply(401, "missing or wrong X-Hub-Signature-256", delivery=delivery, reason="bad_signature")
        event = (request.header("x-github-event") or "")[:100]
        fields: dict[str, Json] = {"delivery": delivery, "github_event": event}
        if event == "ping":
            return Reply(200, {"status": "pong"}, log_fields=fields)
        if event != "deployment_protection_rule":
            ignored = {"status": "ignored", "reason": f"event {event!r} is not handled"}
            return Reply(202, ignored, log_fields=fields)
        if not delivery:
            return error_reply(400, "missing X-GitHub-Delivery", **fields)
        try:
            payload = Fields(parse_json(request.body, what="the payload", error=InvalidInputError),
                             "the payload", error=InvalidInputError)
            if payload.opt_text("action") != "requested":
                return Reply(202, {"status": "ignored", "reason": "action is not 'requested'"}, log_fields=fields)
            parsed = parse_event(payload, delivery, self._config)
        except InvalidInputError as exc:
            return error_reply(400, exc.message, reason="bad_payload", **fields)
        if isinstance(parsed, Reply):
            return parsed
        fields.update(environment=parsed.environment, ref=parsed.ref_text)
        return self._accept(f"github:{parsed.delivery}", rule_payload(parsed), {"status": "accepted"}, fields)

    def restore(self, payload: Fields) -> RuleRequest:
        return restore_rule(payload)

    def ref_text(self, call: RuleRequest) -> str:
        return str(call.ref) if call.ref else call.ref_text

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
        return self._run_gate(GateCall(rule.ref, self._config.stage, rule.manifest_sha256, ci))

    def send(self, rule: RuleRequest, verdict: Verdict) -> bool:
        state = "approved" if verdict.passed else "rejected"
        body: dict[str, Json] = {"environment_name": rule.environment, "state": state, "comment": comment_for(verdict)}
        try:
            self._callback(rule, body)
        except Error as exc:
            # Unanswered: the job is run again (in-process: GitHub's redelivery of the same id is processed).
            log_event(logging.ERROR, "github_callback_failed", delivery=rule.delivery, error=exc.message)
            return False
        log_event(
            logging.INFO,
            "github_rule_answered",
            delivery=rule.delivery,
            environment=rule.environment,
            ref=rule.ref_text,
            state=state,
        )
        return True

    def _callback(self, rule: RuleRequest, body: dict[str, Json]) -> None:
        if self._tokens is None:
            raise UsageError("the GitHub App id and private key are not configured")
        session = self._session()
        token = self._tokens.token(rule.installation_id, session)
        headers = {**_api_headers(), "Authorization": f"Bearer {token}"}
        try:
            response = session.post(rule.callback_url, json=body, headers=headers, stream=True)
        except requests.RequestException as exc:
            raise NetworkError(f"GitHub did not answer the protection rule callback ({type(exc).__name__})") from None
        read_body(response, what="GitHub answer to the protection rule callback", limit=ANSWER_LIMIT,
                  seconds=self._config.callback_timeout_seconds)
        if response.status_code not in (200, 204):
            raise NetworkError(f"GitHub answered {response.status_code} to the protection rule callback")
