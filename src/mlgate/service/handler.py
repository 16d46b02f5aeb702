"""What the two protocol handlers share: their dependencies, the accept step, the job run and the session.

:class:`~mlgate.service.azure_devops_check.AzureDevOpsCheck` and
:class:`~mlgate.service.github_protection_rule.GitHubProtectionRule` both authenticate a call,
turn it into a job (a sealed payload, :mod:`mlgate.service.jobs`) that the state back-end
accepts once (:mod:`mlgate.service.state`), and run it on a worker -- of this replica or
another: evaluate the gate, claim the completion, answer the platform on its callback. Only the
protocol differs; this base holds the rest.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import requests

from mlgate.http import make_session
from mlgate.jsonvalue import Fields
from mlgate.service.config import ServiceConfig
from mlgate.service.evaluation import Evaluator, EvidenceStore, GateCall, Verdict, failure, run_gate
from mlgate.service.http_types import Json, LogFields, Reply
from mlgate.service.jobs import Sealer, SealError
from mlgate.service.logs import log_event
from mlgate.service.state.interface import Acceptance, Attempt, Job, Result, StateBackend, StateError

if TYPE_CHECKING:
    from mlgate.policy.loader import Policy

Call = TypeVar("Call")


@dataclass(frozen=True)
class Services:
    """What both protocol handlers are built from (one of each per service process)."""

    config: ServiceConfig
    policy: Policy
    evaluator: Evaluator
    state: StateBackend
    store: EvidenceStore | None


class CheckHandler(ABC, Generic[Call]):
    kind = "check"

    def __init__(self, services: Services, secrets: Sequence[str | None]) -> None:
        self._config = services.config
        self._policy = services.policy
        self._evaluator = services.evaluator
        self._state = services.state
        self._store = services.store
        present = [secret for secret in secrets if secret]
        self._sealer = Sealer(present) if present else None
        self._local = threading.local()

    def _session(self) -> requests.Session:
        """This worker thread's session for callbacks (a ``requests.Session`` is not thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = make_session(total_retries=3, timeout=(5.0, self._config.callback_timeout_seconds))
            self._local.session = session
        return session

    def _accept(self, key: str, payload: dict[str, object], accepted: Mapping[str, Json], fields: LogFields) -> Reply:
        """Hand the job to the state back-end once per ``key``: 200 accepted or duplicate, 503 busy or unavailable.

        The 200 ``accepted`` is answered only once the back-end holds the job durably.
        """
        if self._sealer is None:  # pragma: no cover (a handler is only routed to when its secret is set)
            raise RuntimeError("handler without a secret")
        job = Job(key, self.kind, self._sealer.seal(key, payload))
        try:
            outcome = self._state.accept(job)
        except StateError as exc:
            log_event(logging.ERROR, "state_unavailable", error=exc.message, **fields)
            return Reply(503, {"error": "the service could not store the job; nothing was accepted; retry"},
                         headers={"Retry-After": "5"}, log_fields={**fields, "reason": "state_unavailable"})
        if outcome is Acceptance.DUPLICATE:
            return Reply(200, {"status": "duplicate"}, log_fields={**fields, "duplicate": True})
        if outcome is Acceptance.BUSY:
            return Reply(503, {"error": "busy; retry"}, headers={"Retry-After": "5"}, log_fields=fields)
        if outcome is Acceptance.IN_PROGRESS:
            return Reply(503, {"error": "this delivery is being accepted by another replica; retry"},
                         headers={"Retry-After": "10"}, log_fields={**fields, "reason": "in_progress"})
        return Reply(200, accepted, log_fields=fields)

    def run(self, job: Job, attempt: Attempt) -> Result:
        """Run one attempt of ``job``: evaluate (unless poisoned), claim the completion, send it."""
        try:
            if self._sealer is None:
                raise SealError(f"this replica does not serve {self.kind} checks")
            call = self.restore(self._sealer.open(job.key, job.sealed))
        except SealError as exc:
            log_event(logging.ERROR, "job_unreadable", job=self.kind, error=exc.message, attempt=attempt.number)
            return Result.RETRY
        if attempt.poisoned is not None:
            log_event(logging.ERROR, "job_poisoned", job=self.kind, attempts=attempt.number)
            verdict = failure(self.ref_text(call), attempt.poisoned)
        else:
            verdict = self.evaluate(call)
        if not attempt.claim():
            return Result.SKIPPED
        return Result.COMPLETED if self.send(call, verdict) else Result.RETRY

    def _run_gate(self, call: GateCall) -> Verdict:
        return run_gate(self._evaluator, self._policy, call, self._store)

    @abstractmethod
    def restore(self, payload: Fields) -> Call:
        """The call, read back from its opened payload."""

    @abstractmethod
    def ref_text(self, call: Call) -> str:
        """The model as the call named it (for a poisoned job's verdict)."""

    @abstractmethod
    def evaluate(self, call: Call) -> Verdict:
        """Run the gate for the call."""

    @abstractmethod
    def send(self, call: Call, verdict: Verdict) -> bool:
        """Answer the platform; False when the completion could not be sent (the job is run again)."""
