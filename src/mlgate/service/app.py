"""The WSGI application of `mlgate serve`: routing, body cap, health, access logs.

Routes:

* ``GET /healthz`` -- liveness/readiness: which protocols are configured, the state back-end,
  the jobs this replica is running.
* ``POST /azure-devops/check`` -- the Azure DevOps "Invoke REST API" check (callback mode).
* ``POST /github/webhook`` -- the GitHub App's webhook (``deployment_protection_rule``).
* ``GET /evidence/<sha256>.md|.json`` -- the full evidence pack linked from the comment/log.

Any WSGI server can run it: ``mlgate serve`` uses waitress; gunicorn takes
``mlgate.service.wsgi:application``; an Azure Function wraps it with ``func.WsgiMiddleware``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate import __version__
from mlgate.service.azure_devops_check import AzureDevOpsCheck
from mlgate.service.config import ServiceConfig, load_config
from mlgate.service.evaluation import Evaluator, EvidenceStore, gate_evaluator, load_service_policy
from mlgate.service.github_protection_rule import GitHubProtectionRule
from mlgate.service.handler import Services
from mlgate.service.http_types import Json, Reply, Request, error_reply
from mlgate.service.logs import log_event
from mlgate.service.state.interface import Attempt, Job, Result, StateBackend

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from mlgate.policy.loader import Policy

_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ServiceApp:
    """The WSGI callable. Build it with :func:`create_app`."""

    def __init__(
        self, config: ServiceConfig, policy: Policy, evaluator: Evaluator, state: StateBackend | None = None
    ) -> None:
        self.config = config
        self.policy = policy
        self.state = state or build_state(config)
        evidence_dir = config.evidence_dir or Path(tempfile.mkdtemp(prefix="mlgate-evidence-"))
        self.store = EvidenceStore(evidence_dir, config.public_url)
        services = Services(config, policy, evaluator, self.state, self.store)
        self.azure_devops = AzureDevOpsCheck(services)
        self.github = GitHubProtectionRule(services)
        self._routes = {"/azure-devops/check": self.azure_devops.handle, "/github/webhook": self.github.handle}
        self._runners = {self.azure_devops.kind: self.azure_devops.run, self.github.kind: self.github.run}
        self.state.start(self.run_job)

    def run_job(self, job: Job, attempt: Attempt) -> Result:
        """Run one job on the handler of its kind (a worker of the state back-end calls this)."""
        runner = self._runners.get(job.kind)
        if runner is None:
            log_event(logging.ERROR, "job_unknown_kind", job=job.kind[:40])
            return Result.RETRY
        return runner(job, attempt)

    # -- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "") or "/")
        try:
            reply = self._dispatch(method, path, environ)
        except Exception as exc:  # a bug: answer 500, never a pass, never a traceback to the caller
            log_event(logging.ERROR, "request_crashed", path=path, error=type(exc).__name__)
            reply = error_reply(500, "internal error; nothing was evaluated or approved")
        if isinstance(reply.body, bytes):
            payload = reply.body
            content_type = reply.headers.get("Content-Type", "application/octet-stream")
        else:
            payload = json.dumps(reply.body).encode("utf-8")
            content_type = "application/json"
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *((k, v) for k, v in reply.headers.items() if k != "Content-Type"),
        ]
        start_response(f"{reply.status} {_REASONS.get(reply.status, 'Status')}", headers)
        log_event(
            logging.INFO if reply.status < 500 else logging.ERROR,
            "request",
            method=method,
            path=path[:200],
            status=reply.status,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            **dict(reply.log_fields),
        )
        return [payload]

    def _dispatch(self, method: str, path: str, environ: WSGIEnvironment) -> Reply:
        if path in ("/healthz", "/health"):
            if method not in ("GET", "HEAD"):
                return error_reply(405, "use GET")
            return Reply(200, self.health())
        if path.startswith("/evidence/"):
            if method not in ("GET", "HEAD"):
                return error_reply(405, "use GET")
            found = self.store.find(path[len("/evidence/") :])
            if found is None:
                return error_reply(404, "no such evidence")
            return Reply(200, found[0], headers={"Content-Type": found[1]})
        handler = self._routes.get(path.rstrip("/") or "/")
        if handler is None:
            return error_reply(404, "not found")
        if method != "POST":
            return error_reply(405, "use POST")
        body = self._read_body(environ)
        if isinstance(body, Reply):
            return body
        request = Request(method, path, _headers(environ), body, str(environ.get("REMOTE_ADDR", "")))
        return handler(request)

    def _read_body(self, environ: WSGIEnvironment) -> bytes | Reply:
        cap = self.config.max_body_bytes
        length_text = str(environ.get("CONTENT_LENGTH") or "").strip()
        stream = environ["wsgi.input"]
        if length_text:
            if not length_text.isdigit() or len(length_text) > 18:
                return error_reply(400, "bad Content-Length")
            length = int(length_text)
            if length > cap:
                return error_reply(413, f"body larger than {cap} bytes", content_length=length)
            data = stream.read(length) if length > 0 else b""
        else:
            data = stream.read(cap + 1)
        if len(data) > cap:
            return error_reply(413, f"body larger than {cap} bytes")
        return bytes(data)

    def health(self) -> Mapping[str, Json]:
        return {
            "status": "ok",
            "version": __version__,
            "azure_devops_check": self.config.azure_devops_enabled,
            "github_protection_rule": self.config.github_enabled,
            "state": self.state.name,
            "pending_evaluations": self.state.pending,
        }

    def close(self) -> None:
        self.state.close(wait=False)


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers["content-type"] = str(content_type)
    return headers


def build_state(config: ServiceConfig) -> StateBackend:
    """The state back-end the configuration names (azure-storage: queue and table created when missing)."""
    if config.state == "azure-storage":
        from mlgate.service.state.azure_storage import AzureStorageState, StorageSettings

        credential = None
        if not config.state_connection_string:
            from mlgate.secrets.credentials import IdentityOptions, choose

            options = IdentityOptions(identity=config.state_identity, client_id=config.state_client_id)
            credential = choose(options, os.environ).credential
        settings = StorageSettings(
            queue_name=config.state_queue,
            table_name=config.state_table,
            replay_ttl=config.replay_ttl_seconds,
            visibility_timeout=max(1, round(config.visibility_timeout_seconds)),
            max_attempts=config.max_attempts,
            workers=config.workers,
            poll_seconds=config.poll_seconds,
            connection_string=config.state_connection_string,
            queue_endpoint=config.state_queue_endpoint,
            table_endpoint=config.state_table_endpoint,
            credential=credential,
        )
        backend = AzureStorageState(settings)
        backend.ensure()
        return backend
    from mlgate.service.state.in_process import InProcessState

    return InProcessState(config.workers, config.max_pending, config.replay_ttl_seconds, config.replay_max_entries)


def create_app(config: ServiceConfig, *, evaluator: Evaluator | None = None) -> ServiceApp:
    """Build the WSGI app: the policy is read and validated here, once (exit 2 when malformed).

    ``evaluator`` defaults to :func:`~mlgate.service.evaluation.gate_evaluator` (the real gate).
    """
    policy = load_service_policy(config.policy)
    app = ServiceApp(config, policy, evaluator or gate_evaluator)
    log_event(logging.INFO, "service_configured", **config.describe())
    return app


def create_app_from_env(config_file: str | None = None) -> ServiceApp:
    """Build the app from ``MLGATE_SERVE_*`` variables (and ``MLGATE_SERVE_CONFIG``), for WSGI servers."""
    config = load_config(config_file=config_file)
    if config.mlflow_tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = config.mlflow_tracking_uri
    return create_app(config)
