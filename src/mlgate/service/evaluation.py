"""Running the gate for the service, and turning its outcome into what each CI shows.

The evaluator is injectable: it is any callable with the signature of
:func:`mlgate.gate.evaluate` (``evaluate(ref, *, policy_path, artifacts_dir=None,
manifest_sha256=None, client=None, ci=None, stage=None) -> GateOutcome``). Whatever happens
inside it, :func:`run_gate` returns a :class:`Verdict`; only an outcome whose ``passed`` is
exactly ``True`` passes. An exception is a failure with the reason, never an approval.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlgate.errors import Error
from mlgate.platforms.base import CIContext
from mlgate.redact import redact
from mlgate.refs import ModelRef
from mlgate.service.logs import log_event

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Evaluator(Protocol):
    def __call__(
        self,
        ref: str,
        *,
        policy_path: str,
        manifest_sha256: str | None = ...,
        ci: CIContext | None = ...,
        stage: str | None = ...,
    ) -> Any: ...


def default_evaluator() -> Evaluator:
    """The real gate engine, imported on first use (keeps `mlgate --help` fast)."""
    from mlgate.gate import evaluate

    return evaluate


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


def _rule_text(rule: Any) -> str:
    if isinstance(rule, str):
        return rule
    if isinstance(rule, dict):
        rule_id = rule.get("id") or rule.get("rule") or "rule"
        message = rule.get("message") or ""
        return f"{rule_id}: {message}" if message else str(rule_id)
    rule_id = getattr(rule, "id", None) or getattr(rule, "rule_id", None)
    message = getattr(rule, "message", None)
    if rule_id is not None:
        return f"{rule_id}: {message}" if message else str(rule_id)
    return str(rule)


class EvidenceStore:
    """Keeps each evidence pack under its SHA-256 so the comment/log can link the full pack."""

    def __init__(self, directory: Path, public_url: str | None) -> None:
        self.directory = directory
        self.public_url = public_url
        self._lock = threading.Lock()

    def put(self, digest: str, evidence: Any, markdown: str) -> str | None:
        """Store the pack; return its public URL (None when no public URL is configured)."""
        if not _SHA256.match(digest):
            return None
        try:
            with self._lock:
                self.directory.mkdir(parents=True, exist_ok=True)
                if evidence is not None:
                    data = (
                        evidence
                        if isinstance(evidence, (bytes, str))
                        else json.dumps(evidence, indent=2, sort_keys=True, default=str)
                    )
                    text = data.decode("utf-8") if isinstance(data, bytes) else data
                    (self.directory / f"{digest}.json").write_text(redact(text), encoding="utf-8")
                (self.directory / f"{digest}.md").write_text(redact(markdown), encoding="utf-8")
        except OSError as exc:
            log_event(logging.WARNING, "evidence_not_stored", evidence_sha256=digest, error=exc.strerror)
            return None
        return f"{self.public_url}/evidence/{digest}.md" if self.public_url else None

    def get(self, name: str) -> tuple[bytes, str] | None:
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


def run_gate(
    evaluator: Evaluator,
    ref: ModelRef,
    *,
    policy_path: Path,
    stage: str | None,
    manifest_sha256: str | None,
    ci: CIContext,
    store: EvidenceStore | None,
) -> Verdict:
    """Evaluate ``ref``; every failure becomes a non-passing verdict naming the reason."""
    started = time.monotonic()
    try:
        outcome = evaluator(str(ref), policy_path=str(policy_path), manifest_sha256=manifest_sha256, ci=ci, stage=stage)
    except Error as exc:
        reason = exc.diagnostics()
        log_event(logging.WARNING, "gate_error", ref=str(ref), error=type(exc).__name__)
        return Verdict(str(ref), False, f"mlgate could not evaluate {ref}", error=redact(reason))
    except Exception as exc:
        log_event(logging.ERROR, "gate_crashed", ref=str(ref), error=type(exc).__name__)
        return Verdict(
            str(ref),
            False,
            f"mlgate could not evaluate {ref}",
            error=f"internal error in the gate ({type(exc).__name__}); nothing was approved",
        )
    passed = getattr(outcome, "passed", None) is True
    failed = tuple(redact(_rule_text(r)) for r in (getattr(outcome, "failed_rules", None) or ()))
    if passed and failed:  # contradictory outcome: fail closed
        passed = False
    markdown = redact(str(getattr(outcome, "markdown", "") or ""))
    summary = redact(str(getattr(outcome, "summary", "") or ""))
    digest = getattr(outcome, "evidence_sha256", None)
    digest = digest if isinstance(digest, str) and _SHA256.match(digest) else None
    evidence = getattr(outcome, "evidence", None)
    to_json = getattr(evidence, "to_json", None)  # a gate.GateOutcome's Evidence: its evidence.json bytes
    evidence = to_json() if callable(to_json) else evidence
    url = store.put(digest, evidence, markdown) if store and digest else None
    log_event(
        logging.INFO,
        "gate_evaluated",
        ref=str(ref),
        passed=passed,
        failed_rules=len(failed),
        evidence_sha256=digest,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    headline = f"mlgate gate {'passed' if passed else 'refused'} {ref}"
    return Verdict(str(ref), passed, headline, summary, failed, markdown, digest, url)


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


EvaluatorFactory = Callable[[], Evaluator]
