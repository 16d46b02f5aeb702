"""The in-process state back-end (the default): memory only, one process.

The replay memory is :class:`~mlgate.service.worker.ReplayGuard` (bounded, with the expiry) and
the pending jobs run on :class:`~mlgate.service.worker.Dispatcher`'s threads. A restart forgets
both: a job acknowledged and not yet completed is lost (its check waits until the platform's own
timeout), and a delivery seen before the restart is processed again. Several replicas need the
``azure-storage`` back-end.
"""

from __future__ import annotations

import logging
import threading

from mlgate.service.logs import log_event
from mlgate.service.state.interface import Acceptance, Attempt, Job, Result, Runner, StateBackend
from mlgate.service.worker import Dispatcher, ReplayGuard


class _Once(Attempt):
    def __init__(self, backend: InProcessState, key: str) -> None:
        self._backend = backend
        self._key = key

    def claim(self) -> bool:
        return self._backend.claim(self._key)


class InProcessState(StateBackend):
    name = "in-process"

    def __init__(self, workers: int, max_pending: int, replay_ttl: float, replay_max: int) -> None:
        self.dispatcher = Dispatcher(workers, max_pending)
        self.replays = ReplayGuard(replay_ttl, replay_max)
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self._runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self._runner = runner

    def accept(self, job: Job) -> Acceptance:
        if not self.replays.first_time(job.key):
            return Acceptance.DUPLICATE
        if not self.dispatcher.submit(job.kind, lambda: self._run(job)):
            self.replays.forget(job.key)
            return Acceptance.BUSY
        return Acceptance.ACCEPTED

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def _run(self, job: Job) -> None:
        if self._runner is None:  # pragma: no cover (the app starts the back-end before serving)
            raise RuntimeError("state back-end not started")
        try:
            result = self._runner(job, _Once(self, job.key))
        finally:
            with self._lock:
                self._claimed.discard(job.key)
        if result is Result.RETRY:
            # Not completed: the platform's redelivery (same key) must be processed, not ignored.
            self.replays.forget(job.key)
            log_event(logging.WARNING, "job_not_completed", job=job.kind, retry="on the platform's redelivery")

    @property
    def pending(self) -> int:
        return self.dispatcher.pending

    def wait_idle(self, timeout: float) -> bool:
        return self.dispatcher.wait_idle(timeout)

    def close(self, *, wait: bool) -> None:
        self.dispatcher.shutdown(wait=wait)
