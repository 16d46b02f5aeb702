"""What the two protocol handlers share: their dependencies, the accept step and the callback session.

:class:`~mlgate.service.azure_devops_check.AzureDevOpsCheck` and
:class:`~mlgate.service.github_protection_rule.GitHubProtectionRule` both authenticate a call,
accept it once (replay guard) onto the background pool, evaluate the gate there and answer the
platform on a callback. Only the protocol differs; this base holds the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from mlgate.http import make_session
from mlgate.service.config import ServiceConfig
from mlgate.service.evaluation import Evaluator, EvidenceStore, GateCall, Verdict, run_gate
from mlgate.service.http_types import Json, LogFields, Reply
from mlgate.service.worker import Dispatcher, ReplayGuard

if TYPE_CHECKING:
    from mlgate.policy.loader import Policy


@dataclass(frozen=True)
class Services:
    """What both protocol handlers are built from (one of each per service process)."""

    config: ServiceConfig
    policy: Policy
    evaluator: Evaluator
    dispatcher: Dispatcher
    replays: ReplayGuard
    store: EvidenceStore | None


class CheckHandler:
    def __init__(self, services: Services) -> None:
        self._config = services.config
        self._policy = services.policy
        self._evaluator = services.evaluator
        self._dispatcher = services.dispatcher
        self._replays = services.replays
        self._store = services.store
        self._local = threading.local()

    def _session(self) -> requests.Session:
        """This worker thread's session for callbacks (a ``requests.Session`` is not thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = make_session(total_retries=3, timeout=(5.0, self._config.callback_timeout_seconds))
            self._local.session = session
        return session

    def _accept(
        self,
        replay_key: tuple[str, ...],
        job_name: str,
        job: Callable[[], None],
        accepted: Mapping[str, Json],
        fields: LogFields,
    ) -> Reply:
        """Queue ``job`` once per ``replay_key``: 200 ``accepted``, 200 duplicate, or 503 when the pool is full."""
        if not self._replays.first_time(replay_key):
            return Reply(200, {"status": "duplicate"}, log_fields={**fields, "duplicate": True})
        if not self._dispatcher.submit(job_name, job):
            self._replays.forget(replay_key)
            return Reply(503, {"error": "busy; retry"}, headers={"Retry-After": "5"}, log_fields=fields)
        return Reply(200, accepted, log_fields=fields)

    def _run_gate(self, call: GateCall) -> Verdict:
        return run_gate(self._evaluator, self._policy, call, self._store)
