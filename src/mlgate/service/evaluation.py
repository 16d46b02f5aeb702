"""Running the gate for the service, and turning its result into what each CI shows.

The policy is loaded once, when the service starts (:func:`load_service_policy`, exit 2 when
it is malformed), and handed to the evaluator on every call. The evaluator is injectable: any
callable with the signature of :class:`Evaluator` returning a :class:`GateResult`; the default,
:func:`gate_evaluator`, runs :func:`mlgate.gate.evaluate` and maps its
:class:`~mlgate.gate.GateOutcome` into a :class:`GateResult`. Whatever happens inside it,
:func:`run_gate` returns a :class:`Verdict`; only a result whose ``passed`` is exactly ``True``
and that names no failed rule passes. An exception is a failure with the reason, never an
approval.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlgate.errors import Error
from mlgate.platforms.base import CIContext
from mlgate.redact import redact
from mlgate.refs import ModelRef
from mlgate.service.logs import log_event

if TYPE_CHECKING:
    from mlgate.gate import GateOutcome
    from mlgate.policy.loader import Policy

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class GateResult:
    """What the service needs of one gate evaluation."""

    passed: bool
    evidence_sha256: str
    evidence_json: str  # the evidence pack, as ``mlgate gate`` writes evidence.json
    markdown: str
    failed_rules: tuple[str, ...] = ()
    summary: str = ""

    @classmethod
    def from_outcome(cls, outcome: GateOutcome) -> GateResult:
        return cls(
            passed=outcome.passed,
            evidence_sha256=outcome.evidence_sha256,
            evidence_json=outcome.evidence.to_json().decode("utf-8"),
            markdown=outcome.markdown,
            failed_rules=tuple(outcome.failed_rules),
            summary=outcome.summary,
        )


class Evaluator(Protocol):
    def __call__(
        self,
        ref: ModelRef,
        *,
        policy: Policy,
        manifest_sha256: str | None,
        ci: CIContext,
        stage: str,
    ) -> GateResult: ...


def gate_evaluator(
    ref: ModelRef, *, policy: Policy, manifest_sha256: str | None, ci: CIContext, stage: str
) -> GateResult:
    """The real gate engine (imported on first use, so the service answers health at once)."""
    from mlgate.gate import evaluate

    outcome = evaluate(str(ref), policy=policy, manifest_sha256=manifest_sha256, ci=ci, stage=stage)
    return GateResult.from_outcome(outcome)


def load_service_policy(path: Path) -> Policy:
    """Read and validate the release policy once, at start-up (exit 2 naming the file when malformed)."""
    from mlgate.policy.loader import load_policy

    return load_policy(str(path))


@dataclass(frozen=True)
class Verdict:
    """What the service reports back: pass/fail, why, and where the full evidence is."""

    ref: str
    passed: bool
    headline: str
    summary: str = ""
    failed_rules: Sequence[str] = field(default_factory=tuple)
    markdown: str = ""
    evidence_sha256: str | None = None
    evidence_url: str | None = None
    error: str | None = None

    @property
    def decision(self) -> str:
        if self.error is not None:
            return "could not evaluate"
        return "passed" if self.passed else "refused"


class EvidenceStore:
    """Keeps each evidence pack under its SHA-256 so the comment/log can link the full pack."""

    def __init__(self, directory: Path, public_url: str | None) -> None:
        self.directory = directory
        self.public_url = public_url
        self._lock = threading.Lock()

    def put(self, digest: str, evidence_json: str, markdown: str) -> str | None:
        """Store the pack; return its public URL (None when no public URL is configured)."""
        if not _SHA256.match(digest):
            return None
        try:
            with self._lock:
                self.directory.mkdir(parents=True, exist_ok=True)
                if evidence_json:
                    (self.directory / f"{digest}.json").write_text(redact(evidence_json), encoding="utf-8")
                (self.directory / f"{digest}.md").write_text(redact(markdown), encoding="utf-8")
        except OSError as exc:
            log_event(logging.WARNING, "evidence_not_stored", evidence_sha256=digest, error=exc.strerror)
            return None
        return f"{self.public_url}/evidence/{digest}.md" if self.public_url else None

    def find(self, name: str) -> tuple[bytes, str] | None:
        """Return (content, media type) of ``<sha256>.json`` or ``<sha256>.md``, if stored."""
        digest, _, suffix = name.partition(".")
        if not _SHA256.match(digest) or suffix not in ("json", "md"):
            return None
        path = self.directory / f"{digest}.{suffix}"
        try:
            content = path.read_bytes()
        except OSError:
            return None
        media = "application/json" if suffix == "json" else "text/markdown; charset=utf-8"
        return content, media


@dataclass(frozen=True)
class GateCall:
    """One evaluation the service was asked for."""

    ref: ModelRef
    stage: str
    manifest_sha256: str | None
    ci: CIContext


def run_gate(evaluator: Evaluator, policy: Policy, call: GateCall, store: EvidenceStore | None) -> Verdict:
    """Evaluate ``call.ref``; every failure becomes a non-passing verdict naming the reason."""
    started = time.monotonic()
    ref = str(call.ref)
    try:
        result = evaluator(call.ref, policy=policy, manifest_sha256=call.manifest_sha256, ci=call.ci, stage=call.stage)
    except Error as exc:
        log_event(logging.WARNING, "gate_error", ref=ref, error=type(exc).__name__)
        return Verdict(ref, False, f"mlgate could not evaluate {ref}", error=redact(exc.diagnostics()))
    except Exception as exc:
        log_event(logging.ERROR, "gate_crashed", ref=ref, error=type(exc).__name__)
        return Verdict(
            ref,
            False,
            f"mlgate could not evaluate {ref}",
            error=f"internal error in the gate ({type(exc).__name__}); nothing was approved",
        )
    if not isinstance(result, GateResult):
        log_event(logging.ERROR, "gate_crashed", ref=ref, error=type(result).__name__)
        return failure(ref, f"the gate returned {type(result).__name__}, not a result; nothing was approved")
    failed = tuple(redact(rule) for rule in result.failed_rules)
    passed = result.passed is True and not failed  # a contradictory result fails closed
    markdown = redact(result.markdown)
    digest = result.evidence_sha256 if _SHA256.match(result.evidence_sha256) else None
    url = store.put(digest, result.evidence_json, markdown) if store and digest else None
    log_event(
        logging.INFO,
        "gate_evaluated",
        ref=ref,
        passed=passed,
        failed_rules=len(failed),
        evidence_sha256=digest,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    headline = f"mlgate gate {'passed' if passed else 'refused'} {ref}"
    return Verdict(ref, passed, headline, redact(result.summary), failed, markdown, digest, url)


def failure(ref: str, reason: str) -> Verdict:
    """A verdict for a request that could not even reach the gate (e.g. no model named)."""
    return Verdict(ref, False, f"mlgate could not evaluate {ref}", error=reason)


def summary_lines(verdict: Verdict) -> list[str]:
    """The short, plain-text summary shared by the check log and the rule comment."""
    lines = [] if verdict.summary.startswith("mlgate gate:") else [f"{verdict.headline}: {verdict.decision.upper()}"]
    if verdict.error:
        lines.append(f"reason: {verdict.error}")
    if verdict.summary:
        lines.extend(verdict.summary.splitlines())
    # The gate's summary already lists the failing rules with their messages; add only the others.
    unlisted = [rule for rule in verdict.failed_rules if rule.split(":")[0] not in verdict.summary]
    if unlisted:
        lines.append("failed rules:")
        lines.extend(f"  - {rule}" for rule in unlisted)
    if verdict.evidence_sha256 and verdict.evidence_sha256 not in verdict.summary:
        lines.append(f"evidence sha256: {verdict.evidence_sha256}")
    if verdict.evidence_url:
        lines.append(f"full evidence: {verdict.evidence_url}")
    return lines
