"""The Azure Storage state back-end: a queue of pending jobs, a table of keys and job states.

Shared by every replica and surviving restarts. For each job:

* **accept** -- send the job to the queue, then insert the key's entity into the table
  (``State=queued``, the queue's ``MessageId``, ``Expires``): two calls, and the caller is
  acknowledged once both are done. A key already there and not expired is a replay: nothing is
  run and the message just sent is deleted again. An expired key is taken over with a
  conditional write (ETag) naming the new message. When the table write fails the caller gets
  503 and the message stays: if the write landed after all its entry names the message and it
  runs; if not it is an *orphan* (also what an accept killed between its two calls leaves), and
  the redelivery is accepted at once on any replica with a new message.
* **run** -- a replica's worker takes a message with a visibility timeout and reads the key's
  entity. An entity naming *another* message means this one is a duplicate or an orphan: it is
  deleted and nothing is sent. No entity yet: the message is put back for a moment (its accept
  may be between its two calls) and dropped as an orphan after ``ORPHAN_SECONDS``, longer than
  an accept's table write can take (``ACCEPT_LIMIT`` plus the client timeouts). ``completed``:
  the message is deleted, nothing is sent. Before the completion is sent the worker *claims* the
  entity (``State=sending``, its owner) with the ETag it read: a claim that loses the race
  (another worker claimed or completed it) sends nothing. After the completion the entity
  becomes ``completed`` and the message is deleted. While this replica accepts, its workers wait
  (at most ``YIELD_SECONDS``) before each storage call: acknowledgements go first.
* **crash** -- a worker that dies leaves its message invisible until the timeout; then another
  replica takes it and finishes the job. A job that failed ``max_attempts`` times (``dequeue
  count``, less the times it was put back waiting for its entity) is *poisoned*: the runner
  completes the check as failed with the reason, without another evaluation. The one narrow
  window is a worker killed after the platform answered its completion and before the
  ``completed`` write: the next attempt finds ``sending`` and sends it again (at least once,
  never zero times; both platforms refuse a second completion).

An entity an earlier version wrote (``accepting`` first, then the send; no ``MessageId``) is
still honoured: ``accepting`` for less than ``ACCEPT_GRACE`` seconds answers 503 (retry), longer
is taken over.

Entities past their expiry are swept by one worker every ``SWEEP_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlgate.service.logs import log_event
from mlgate.service.state.interface import Acceptance, Attempt, Job, Result, Runner, StateBackend, StateError

ACCEPTING, QUEUED, SENDING, COMPLETED = "accepting", "queued", "sending", "completed"
ACCEPT_GRACE = 10.0  # an earlier version's accept (entry first, then the send) took at most this long
ORPHAN_SECONDS = 120  # a message no entry names is dropped after this: longer than an accept's table write can take
ACCEPT_LIMIT = 30.0  # no write naming a sent message starts later than this after the send (then 503)
YIELD_SECONDS = 1.0  # how long a worker lets this replica's accepts in flight go first, at most
SWEEP_SECONDS = 600.0
MESSAGE_LIMIT = 48 * 1024  # a queue message holds 64 KiB of base64 (48 KiB of content)
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10, "retry_total": 2}
POOL_MINIMUM = 10
REQUEST_THREADS = 16  # what `mlgate serve --threads` usually is, at most


@dataclass(frozen=True)
class StorageSettings:
    """Where the queue and the table are, and how long things last."""

    queue_name: str
    table_name: str
    replay_ttl: float
    visibility_timeout: int
    max_attempts: int
    workers: int
    poll_seconds: float
    connection_string: str | None = None
    queue_endpoint: str | None = None
    table_endpoint: str | None = None
    credential: Any = None


def replica_id(pid: int | None = None) -> str:
    """A replica's name in the table's ``Owner`` column: host name and process id (this process's by default)."""
    return f"{socket.gethostname()[:60]}:{os.getpid() if pid is None else pid}"


def _keys(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"k{digest[:2]}", digest  # 256 partitions; the row key never carries a character the table forbids


def make_clients(settings: StorageSettings) -> tuple[Any, Any]:
    """The azure-storage-queue QueueClient and azure-data-tables TableClient."""
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    pool = max(POOL_MINIMUM, settings.workers + REQUEST_THREADS)
    if settings.connection_string:
        queue = QueueClient.from_connection_string(settings.connection_string, settings.queue_name, **CLIENT_OPTIONS)
        table = TableClient.from_connection_string(settings.connection_string, settings.table_name, **CLIENT_OPTIONS)
        queue_url, table_url = queue.url, table.url
        queue.close()
        table.close()
    else:
        queue_url, table_url = settings.queue_endpoint or "", settings.table_endpoint or ""
    queue_options = {**CLIENT_OPTIONS, "transport": _transport(pool, queue_url)}
    table_options = {**CLIENT_OPTIONS, "transport": _transport(pool, table_url)}
    if settings.connection_string:
        queue = QueueClient.from_connection_string(settings.connection_string, settings.queue_name, **queue_options)
        table = TableClient.from_connection_string(settings.connection_string, settings.table_name, **table_options)
        return queue, table
    queue = QueueClient(queue_url, settings.queue_name, credential=settings.credential, **queue_options)
    table = TableClient(table_url, settings.table_name, credential=settings.credential, **table_options)
    return queue, table


def _transport(pool: int, url: str) -> Any:
    """azure-core's requests transport with a connection pool as large as the threads that share it.

    (Its default pool holds 10 connections; the request threads and the workers of one replica
    would open and drop connections past that.) Set up as azure-core sets up its own: no urllib3
    retries (the SDK's retry policy retries), environment proxy and CA-bundle settings honoured.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from requests.utils import get_environ_proxies
    from urllib3.util.retry import Retry

    session = requests.Session()
    # requests reads the environment (proxies, NO_PROXY, the CA bundle, ~/.netrc) again on every
    # call, a few milliseconds each; the client talks to one host, so read it once, here.
    session.trust_env = False
    session.proxies.update(get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    adapter = HTTPAdapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False), pool_maxsize=pool)
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return RequestsTransport(session=session, session_owner=True, **CLIENT_OPTIONS)


def _storage_error(what: str, exc: Exception) -> StateError:
    status = getattr(exc, "status_code", None)
    answered = f"answered {status}" if status else f"failed ({type(exc).__name__})"
    hint = (
        "grant the service's identity Storage Queue Data Contributor and Storage Table Data Contributor "
        "on the storage account" if status in (401, 403) else "check the storage account's endpoints and network"
    )
    return StateError(f"Azure Storage {answered} to {what}", hint=hint)


class _TableAttempt(Attempt):
    def __init__(self, backend: AzureStorageState, job: Job, number: int, entity: dict[str, Any] | None) -> None:
        self._backend = backend
        self._job = job
        self.number = number
        self.entity = entity
        self.claimed = False

    def claim(self) -> bool:
        self.entity = self._backend.claim(self._job, self.number, self.entity)
        self.claimed = self.entity is not None
        return self.claimed


class AzureStorageState(StateBackend):
    name = "azure-storage"

    def __init__(self, settings: StorageSettings, clients: tuple[Any, Any] | None = None) -> None:
        self._settings = settings
        self._queue, self._table = clients or make_clients(settings)
        self.owner = replica_id()
        self._runner: Runner | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._accepting = threading.Condition()  # guards _accepts: this replica's accepts in flight
        self._accepts = 0
        self._running = 0
        self._threads: list[threading.Thread] = []

    # -- set-up -----------------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the queue and the table when they do not exist (start-up; StateError when refused)."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        for what, create in (("create the queue", self._queue.create_queue), ("create the table",
                                                                              self._table.create_table)):
            try:
                create()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise _storage_error(what, exc) from None

    def start(self, runner: Runner) -> None:
        self._runner = runner
        for number in range(self._settings.workers):
            thread = threading.Thread(target=self._work, args=(number == 0,), name=f"mlgate-queue-{number}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- accept -----------------------------------------------------------------------------
    def accept(self, job: Job) -> Acceptance:
        from azure.core.exceptions import AzureError

        message = json.dumps({"key": job.key, "kind": job.kind, "sealed": job.sealed})
        if len(message) > MESSAGE_LIMIT:
            raise StateError(f"the job is {len(message)} bytes, more than a queue message holds ({MESSAGE_LIMIT})")
        with self._accepting:
            self._accepts += 1
        began = time.monotonic()  # before the send: the message's wait (ORPHAN_SECONDS) starts later
        try:
            try:
                sent = self._queue.send_message(message, time_to_live=int(self._settings.replay_ttl))
            except AzureError as exc:
                raise _storage_error("queue the job", exc) from None
            try:
                outcome = self._remember(job, str(sent.id), began + ACCEPT_LIMIT)
            except AzureError as exc:
                # The message stays: the write may have landed. If it did not, no entry names the
                # message and a worker drops it (ORPHAN_SECONDS); a redelivery is accepted anew.
                raise _storage_error("the delivery's table entry", exc) from None
            if outcome is not Acceptance.ACCEPTED:
                self._delete(sent)  # the key's entry names another message: this one is never run
        finally:
            with self._accepting:
                self._accepts -= 1
                if not self._accepts:
                    self._accepting.notify_all()
        if outcome is Acceptance.ACCEPTED:
            self._wake.set()
        return outcome

    def _remember(self, job: Job, message_id: str, deadline: float) -> Acceptance:
        """Write the key's entry naming the queued message, unless the key is taken (a replay).

        No write naming the message starts after ``deadline``: each ends (CLIENT_OPTIONS) well
        before a worker may drop the message as an orphan.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        partition, row = _keys(job.key)
        for _ in range(3):
            if time.monotonic() > deadline:
                break
            now = time.time()
            entity = {"PartitionKey": partition, "RowKey": row, "State": QUEUED, "Kind": job.kind,
                      "Owner": self.owner, "MessageId": message_id, "Expires": now + self._settings.replay_ttl,
                      "Updated": now}
            try:
                self._table.create_entity(entity)
                return Acceptance.ACCEPTED
            except ResourceExistsError:
                pass
            try:
                existing = self._table.get_entity(partition, row)
            except ResourceNotFoundError:
                continue  # swept meanwhile: create it again
            if existing.get("MessageId") == message_id:
                return Acceptance.ACCEPTED  # the create landed, its answer was lost and the SDK sent it again
            expired = float(existing.get("Expires", 0.0)) <= now
            if not expired and existing.get("State") != ACCEPTING:
                return Acceptance.DUPLICATE
            if not expired and float(existing.get("Updated", 0.0)) > now - ACCEPT_GRACE:
                return Acceptance.IN_PROGRESS  # an earlier version's accept (entry first, then the send) is under way
            if time.monotonic() > deadline:
                break
            try:  # expired, or an earlier version's accept died before its send: take it over
                self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=_etag(existing),
                                          match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # another replica took it over, or the sweep removed it: read it again
            if not expired:
                log_event(logging.WARNING, "accept_resumed", job=job.kind, previous_owner=str(existing.get("Owner")))
            return Acceptance.ACCEPTED
        # Contended or slow: unknown whether a write naming the message landed, so the message stays
        # (run if an entry names it, else dropped as an orphan) and the caller retries (503).
        raise StateError("Azure Storage: the delivery's table entry could not be settled in time",
                         hint="check the storage account's latency; the delivery is retried")

    def _forget(self, key: str) -> None:
        from azure.core.exceptions import AzureError

        partition, row = _keys(key)
        try:
            self._table.delete_entity(partition, row)
        except AzureError as exc:
            log_event(logging.ERROR, "state_forget_failed", error=type(exc).__name__)

    # -- run --------------------------------------------------------------------------------
    def _yield_to_accepts(self) -> None:
        """Before a worker's storage call: let this replica's accepts in flight go first (at most YIELD_SECONDS).

        The accepts and the workers share the connection pool and the interpreter; an
        acknowledgement is what a caller waits for, a callback can come a moment later.
        """
        with self._accepting:
            if self._accepts:
                self._accepting.wait_for(lambda: not self._accepts or self._stop.is_set(), timeout=YIELD_SECONDS)

    def _work(self, sweeper: bool) -> None:
        from azure.core.exceptions import AzureError

        idle = 0.05
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while not self._stop.is_set():
            if sweeper and time.monotonic() > next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + SWEEP_SECONDS
            self._yield_to_accepts()
            try:
                message = self._queue.receive_message(visibility_timeout=self._settings.visibility_timeout)
            except AzureError as exc:
                log_event(logging.WARNING, "state_receive_failed", error=type(exc).__name__)
                message = None
            if message is None:
                self._wake.wait(idle)
                self._wake.clear()
                idle = min(idle * 2, self._settings.poll_seconds)
                continue
            idle = 0.05
            self._track(+1)
            try:
                self._process(message)
            except Exception as exc:  # a bug or a storage failure: the message comes back after its timeout
                log_event(logging.ERROR, "job_crashed", error=type(exc).__name__)
            finally:
                self._track(-1)

    def _track(self, delta: int) -> None:
        with self._lock:
            self._running += delta
            if self._running == 0:
                self._idle.notify_all()

    def _decode(self, message: Any) -> tuple[Job, dict[str, Any]] | None:
        try:
            data = json.loads(message.content)
            return Job(str(data["key"]), str(data["kind"]), str(data["sealed"])), data
        except (ValueError, KeyError, TypeError):
            return None

    def _process(self, message: Any) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        decoded = self._decode(message)
        if decoded is None or self._runner is None:
            log_event(logging.ERROR, "job_unreadable", message_id=str(message.id), action="deleted")
            self._delete(message, worker=True)
            return
        job, data = decoded
        partition, row = _keys(job.key)
        self._yield_to_accepts()
        try:
            entity: dict[str, Any] | None = self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            entity = None
        if entity is None:
            self._unnamed(job, message, data)
            return
        named = entity.get("MessageId")
        if named is not None and named != message.id:  # (an entry of an earlier version names no message)
            log_event(logging.WARNING, "duplicate_message_dropped", job=job.kind, job_id=row[:16],
                      action="not run; the key's entry names another message")
            self._delete(message, worker=True)
            return
        if entity.get("State") == COMPLETED:
            log_event(logging.WARNING, "completion_already_sent", job=job.kind, job_id=row[:16],
                      attempt=message.dequeue_count, action="not sent again")
            self._delete(message, worker=True)
            return
        if entity.get("State") == SENDING:
            log_event(logging.WARNING, "completion_resumed", job=job.kind, previous_owner=str(entity.get("Owner")))
        number = max(1, int(message.dequeue_count) - _count(data, "postponed"))
        attempt = _TableAttempt(self, job, number, entity)
        log_event(logging.INFO, "job_started", job=job.kind, job_id=row[:16], attempt=attempt.number)
        if attempt.number > self._settings.max_attempts:
            attempt.poisoned = (
                f"the evaluation did not finish in {self._settings.max_attempts} attempts (the replica running it "
                "stopped or failed each time); completed as failed without evaluating again"
            )
        result = self._runner(job, attempt)
        self._finish(job, message, attempt, result)
        log_event(logging.INFO, "job_finished", job=job.kind, job_id=row[:16], attempt=attempt.number,
                  result=result.value)

    def _unnamed(self, job: Job, message: Any, data: dict[str, Any]) -> None:
        """A message no entry names yet: its accept is between its two calls, or was cut off (an orphan).

        The message is put back for a moment (``waited`` grows 1, 2, 4 ... 30 s); once it has
        waited ORPHAN_SECONDS -- longer than an accept's table write can take -- it is dropped:
        that accept failed (its caller got 503 or nothing) and a redelivery is accepted anew.
        """
        from azure.core.exceptions import AzureError

        waited = _count(data, "waited")
        if waited >= ORPHAN_SECONDS:
            log_event(logging.WARNING, "orphan_message_dropped", job=job.kind, waited=waited,
                      action="not run; its accept never wrote the key's entry")
            self._delete(message, worker=True)
            return
        pause = min(max(waited, 1), 30)
        content = json.dumps({**data, "waited": waited + pause, "postponed": _count(data, "postponed") + 1})
        self._yield_to_accepts()
        try:
            self._queue.update_message(message, content=content, visibility_timeout=pause)
        except AzureError as exc:  # it comes back after its visibility timeout instead
            log_event(logging.WARNING, "message_update_failed", error=type(exc).__name__)

    def _finish(self, job: Job, message: Any, attempt: _TableAttempt, result: Result) -> None:
        if result is Result.COMPLETED:
            self._set_state(job, attempt, COMPLETED)
            self._delete(message, worker=True)
        elif result is Result.RETRY and attempt.poisoned is None:
            if attempt.claimed:
                self._set_state(job, attempt, QUEUED)
            self._retry_later(message, attempt.number)
        elif result is Result.RETRY:  # even the failure could not be sent: give up, let a redelivery in
            log_event(logging.ERROR, "job_abandoned", job=job.kind, attempts=attempt.number)
            self._forget(job.key)
            self._delete(message, worker=True)
        # SKIPPED: another attempt holds the job; if it dies the message comes back to finish it

    def claim(self, job: Job, number: int, entity: dict[str, Any] | None) -> dict[str, Any] | None:
        """The job's entity claimed by this replica (``sending``), or None when another attempt holds or did it.

        The write is conditional on the ETag last read. When it loses, the entity is read again: a
        ``queued`` entry naming the same message is no competitor (the claim is tried again); a
        ``sending`` or ``completed`` written by another attempt is, and nothing is sent.
        """
        from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError

        partition, row = _keys(job.key)
        message_id = entity.get("MessageId") if entity else None
        for _ in range(3):
            if entity is None:
                break
            self._yield_to_accepts()
            try:
                return self._claim_once(number, entity)
            except (ResourceModifiedError, ResourceNotFoundError):
                try:
                    entity = self._table.get_entity(partition, row)
                except AzureError:
                    entity = None
                if entity is None or entity.get("State") not in (ACCEPTING, QUEUED) or (
                        entity.get("MessageId") != message_id):
                    break
            except AzureError as exc:
                log_event(logging.ERROR, "completion_claim_failed", job=job.kind, error=type(exc).__name__,
                          action="not sent; retried")
                return None
        log_event(logging.WARNING, "completion_claim_lost", job=job.kind, job_id=row[:16], attempt=number,
                  action="not sent")
        return None

    def _claim_once(self, number: int, entity: dict[str, Any]) -> dict[str, Any]:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        claimed = _fields(entity) | {"State": SENDING, "Owner": self.owner, "Attempt": number, "Updated": time.time()}
        answer = self._table.update_entity(claimed, mode=UpdateMode.REPLACE, etag=_etag(entity),
                                           match_condition=MatchConditions.IfNotModified)
        return _with_etag(claimed, answer)

    def _set_state(self, job: Job, attempt: _TableAttempt, state: str) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        entity = attempt.entity
        if entity is None:
            return
        update = _fields(entity) | {"State": state, "Updated": time.time()}
        self._yield_to_accepts()
        try:
            self._table.update_entity(update, mode=UpdateMode.REPLACE, etag=_etag(entity),
                                      match_condition=MatchConditions.IfNotModified)
        except AzureError as exc:
            log_event(logging.ERROR, "state_update_failed", job=job.kind, state=state, error=type(exc).__name__)

    def _delete(self, message: Any, *, worker: bool = False) -> None:
        from azure.core.exceptions import AzureError

        if worker:
            self._yield_to_accepts()
        try:
            self._queue.delete_message(message)
        except AzureError as exc:  # its timeout passed and another replica holds it: that one finishes
            log_event(logging.WARNING, "message_delete_failed", error=type(exc).__name__)

    def _retry_later(self, message: Any, number: int) -> None:
        from azure.core.exceptions import AzureError

        self._yield_to_accepts()
        try:
            self._queue.update_message(message, visibility_timeout=min(5 * 2**number, 300))
        except AzureError as exc:
            log_event(logging.WARNING, "message_update_failed", error=type(exc).__name__)

    def sweep(self, now: Callable[[], float] = time.time) -> int:
        """Delete the entities whose expiry has passed (replay memory older than the TTL); how many."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError

        removed = 0
        try:
            for entity in self._table.query_entities(f"Expires lt {now():.3f}", select=None):
                self._table.delete_entity(entity, etag=_etag(entity),
                                          match_condition=MatchConditions.IfNotModified)
                removed += 1
        except AzureError as exc:
            log_event(logging.WARNING, "state_sweep_failed", error=type(exc).__name__, removed=removed)
        return removed

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        with self._lock:
            return self._running

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, *, wait: bool) -> None:
        self._stop.set()
        self._wake.set()
        if wait:
            for thread in self._threads:
                thread.join(timeout=30)
        for client in (self._queue, self._table):
            client.close()


class _Written(dict[str, Any]):
    """An entity as this replica wrote it, with the ETag of that write (``metadata`` as the SDK's entities)."""

    def __init__(self, entity: dict[str, Any], etag: str | None) -> None:
        super().__init__(entity)
        self.metadata = {"etag": etag}


def _with_etag(entity: dict[str, Any], answer: Any) -> dict[str, Any]:
    """The entity as written, with the ETag of the write (what the next conditional write matches)."""
    return _Written(entity, answer.get("etag") if isinstance(answer, dict) else None)


def _fields(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity's columns, without the SDK's ``etag``/``metadata`` (what a REPLACE write carries over)."""
    return {key: value for key, value in entity.items() if key not in ("etag", "metadata")}


def _count(data: dict[str, Any], name: str) -> int:
    value = data.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _etag(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None)
    return metadata.get("etag") if isinstance(metadata, dict) else None
