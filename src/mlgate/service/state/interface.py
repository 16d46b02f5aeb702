"""The state back-end interface of `mlgate serve`: accept a job once, run it, complete it once.

A *job* is one evaluation the service acknowledged: its replay key (the GitHub delivery id, or
the Azure DevOps plan and check instance ids), its kind and its sealed payload
(:mod:`mlgate.service.jobs`). The back-end

* :meth:`StateBackend.accept` -- remembers the key (a replay within the expiry is
  :attr:`Acceptance.DUPLICATE`) and makes the job durable *before* the caller is acknowledged;
* runs each job on its workers through the :data:`Runner` the service gives to
  :meth:`StateBackend.start`, handing it an :class:`Attempt`;
* lets exactly one attempt send the completion (:meth:`Attempt.claim`): an attempt whose claim
  fails (the job was completed, or another worker holds it) sends nothing.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from mlgate.errors import EvaluationError


class StateError(EvaluationError):
    """The state store could not be reached or answered out of shape (nothing acknowledged)."""


class Acceptance(enum.Enum):
    ACCEPTED = "accepted"  # durable: it will be evaluated and completed, by this replica or another
    DUPLICATE = "duplicate"  # a replay of a key seen within the expiry: nothing evaluated
    BUSY = "busy"  # not accepted (the pool or the queue is full): the caller should retry
    IN_PROGRESS = "in progress"  # another replica is accepting this key right now: the caller should retry
    # (azure-storage: only an entry an earlier version is still writing; see state.azure_storage)


class Result(enum.Enum):
    COMPLETED = "completed"  # the completion was sent (or found already sent): the job is finished
    RETRY = "retry"  # the completion could not be sent: run the job again later
    SKIPPED = "skipped"  # another attempt holds or finished the job: nothing was sent


@dataclass(frozen=True)
class Job:
    key: str  # the replay key, e.g. "github:DELIVERY" or "azure-devops:PLAN:TASK"
    kind: str  # "github" or "azure-devops"
    sealed: str  # the payload, sealed (see mlgate.service.jobs)


class Attempt(ABC):
    """One run of a job, as the runner sees it."""

    number: int = 1
    # Why the job must be completed as failed without another evaluation (it failed too often).
    poisoned: str | None = None

    @abstractmethod
    def claim(self) -> bool:
        """Take the right to send the job's completion; False: do not send (done or held elsewhere)."""


Runner = Callable[[Job, Attempt], Result]


class StateBackend(ABC):
    """Replay memory plus pending jobs; see the module text for the contract."""

    name: str = "state"

    @abstractmethod
    def accept(self, job: Job) -> Acceptance:
        """Remember ``job.key`` and store the job durably; :class:`StateError` when the store failed."""

    @abstractmethod
    def start(self, runner: Runner) -> None:
        """Start the workers that run jobs with ``runner``."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Jobs this process has accepted or taken and not finished."""

    @abstractmethod
    def wait_idle(self, timeout: float) -> bool:
        """Wait until this process runs no job (tests, benchmarks, a graceful stop)."""

    @abstractmethod
    def close(self, *, wait: bool) -> None:
        """Stop taking jobs; with ``wait``, let the running ones finish."""
