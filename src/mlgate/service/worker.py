"""The bounded background worker pool and the replay guard shared by both protocols."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from mlgate.service.logs import log_event


class Dispatcher:
    """Run jobs on ``workers`` threads with at most ``max_pending`` queued or running.

    :meth:`submit` never blocks: it returns ``False`` when the pool is full, so a request
    handler can answer 503 at once instead of missing the caller's acknowledgement deadline.
    A job's exception is logged (type only) and never kills a worker.
    """

    def __init__(self, workers: int, max_pending: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlgate-check")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, name: str, job: Callable[[], None]) -> bool:
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self._pending += 1

        def run() -> None:
            try:
                job()
            except Exception as exc:
                log_event(logging.ERROR, "job_crashed", job=name, error=type(exc).__name__)
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()
                self._slots.release()

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1
            self._slots.release()
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, *, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


class ReplayGuard:
    """Remember delivery ids for ``ttl`` seconds, at most ``max_entries`` of them (oldest dropped).

    In memory, per process (the ``in-process`` state): a restart forgets every id, and other
    instances never see them; several replicas use the ``azure-storage`` state's table instead
    (:mod:`mlgate.service.state.azure_storage`). GitHub deliveries about deployments older than
    the TTL are refused separately, in ``github_protection_rule.parse_event``.
    """

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen within the TTL (and remember it); False for a replay."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            if len(self._seen) >= self._max:
                self._seen.popitem(last=False)
            self._seen[key] = now + self._ttl
            return True

    def forget(self, key: Hashable) -> None:
        """Drop ``key`` again (its delivery was not accepted, so a redelivery must be processed)."""
        with self._lock:
            self._seen.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
