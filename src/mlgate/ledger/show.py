"""`mlgate audit show REF`: who approved the model version at REF, when, why, with what evidence.

The answer joins three sources and cross-checks them: the MLflow model version (its tags and
lineage), the audit ledger (streamed and chain-checked while searching) and the version's
``mlgate.ledger.head`` anchor, which must name a ledger entry with exactly that hash. What it
reads from MLflow and from the entries' evidence summary is parsed once into the typed records
below (a wrong-typed field is named: exit 3 for MLflow's answer, exit 1 for a ledger entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate import tags as tag_names
from mlgate.errors import RefusedError, UsageError
from mlgate.jsonvalue import Fields
from mlgate.ledger.anchors import HEAD_TAG, LEDGER_TAG, LOCATION_TAG, anchor_name, parse_anchor
from mlgate.ledger.base import Entry, Ledger, TamperedError

if TYPE_CHECKING:
    from mlgate.lineage.chain import Lineage
    from mlgate.lineage.mlflow import MlflowClient, ModelVersion
    from mlgate.refs import ModelRef

EVIDENCE_TAG = tag_names.EVIDENCE_SHA256
GOVERNING = ("approved", "rolled_back")


class MalformedEntryError(RefusedError):
    """A verified ledger entry carries a field of the wrong type (exit 1: whoever wrote it was not mlgate)."""


@dataclass(frozen=True)
class Summary:
    """The evidence summary `record` keeps in an entry's details (see governed.evidence.evidence_summary)."""

    verdict: str | None
    rules_total: int | None
    failed_rules: tuple[str, ...]
    risk_class: str | None
    policy_sha256: str | None
    manifest_sha256: str | None

    @classmethod
    def parse(cls, value: Mapping[str, Any], seq: int) -> Summary:
        f = Fields(value, f"ledger entry seq {seq}", path="details.evidence", error=MalformedEntryError)
        return cls(f.opt_text("verdict"), f.opt_integer("rules_total"), tuple(f.texts("failed_rules")),
                   f.opt_text("risk_class"), f.opt_text("policy_sha256"), f.opt_text("manifest_sha256"))


def _approval(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "event": entry.event,
        "seq": entry.seq,
        "recorded_at": entry.time,
        "stage": entry.stage,
        "approvers": list(entry.data["approvers"]) if entry.approvers else [],  # as stored
        "actor": entry.actor,
    }


@dataclass(frozen=True)
class AuditAnswer:
    """The answer to the audit question for one model version."""

    ref: ModelRef
    mv: ModelVersion
    current: Entry | None  # the entry that governs the version (approved / rolled back to)
    original: Entry | None  # for a rollback: the approval rolled back to
    ledger_location: str
    entries_checked: int
    anchor: str | None
    anchor_verified: bool
    lineage: Lineage
    history: tuple[Entry, ...]

    @property
    def recorded(self) -> bool:
        return self.current is not None

    @property
    def source(self) -> Entry | None:
        return self.original or self.current

    @property
    def evidence_sha(self) -> str | None:
        return self.source.evidence_sha256 if self.source else None

    @property
    def summary(self) -> Mapping[str, Any] | None:
        return self.source.details.obj("evidence") if self.source else None

    @property
    def tag_matches(self) -> bool:
        return bool(self.evidence_sha) and self.mv.tags.get(EVIDENCE_TAG) == self.evidence_sha

    def deployment(self) -> dict[str, Any]:
        current = self.current
        details = current.details if current else None
        text = details.text if details else (lambda name: None)
        return {
            "run_url": current.run_url if current else None,
            "platform": text("platform"),
            "commit": text("commit"),
            "alias": text("alias") or (current.stage if current else None),
            "previous_version": text("previous_version") or text("from_version"),
            "recorded_at": current.time if current else None,
            "tag": self.mv.tags.get(tag_names.DEPLOYMENT),
        }

    def to_json(self) -> dict[str, Any]:
        current = self.current
        return {
            "model": {"ref": str(self.ref), "name": self.ref.name, "version": self.mv.version,
                      "alias": self.ref.alias, "aliases": list(self.mv.aliases)},
            "recorded": self.recorded,
            "approval": _approval(current),
            "original_approval": _approval(self.original),
            "evidence": {"sha256": self.evidence_sha, "summary": self.summary,
                         "tag": self.mv.tags.get(EVIDENCE_TAG), "tag_matches": self.tag_matches},
            "deployment": self.deployment(),
            "ledger": {
                "location": self.ledger_location,
                "entries_checked": self.entries_checked,
                "entry": {"seq": current.seq, "hash": current.hash} if current else None,
                "anchor": self.anchor,
                "anchor_verified": self.anchor_verified,
            },
            "lineage": self.lineage.to_dict(),
            "lineage_tree": self.lineage.tree(),
            "history": [
                {"seq": e.seq, "event": e.event, "time": e.time, "stage": e.stage,
                 "approvers": e.approver_names, "run_url": e.run_url}
                for e in self.history
            ],
        }


@dataclass(frozen=True)
class _Found:
    history: tuple[Entry, ...]
    anchored: Entry | None
    count: int


def _scan(ledger: Ledger, model: str, anchor: tuple[int, str] | None, anchor_text: str | None) -> _Found:
    """Stream the ledger (chain-checked) for the version's entries and the one its anchor names."""
    history: list[Entry] = []
    anchored: Entry | None = None
    count = 0
    for entry in ledger.entries():
        count += 1
        if anchor and entry.seq == anchor[0]:
            if entry.hash != anchor[1]:
                raise TamperedError(
                    f"{model}: anchor {anchor_text} names entry seq {anchor[0]}, whose hash in the ledger is "
                    f"{entry.hash} (the ledger was rewritten)",
                    line=entry.seq,
                    seq=entry.seq,
                )
            anchored = entry
        if entry.model == model:
            history.append(entry)
    if anchor and anchored is None:
        raise TamperedError(
            f"{model}: anchor {anchor_text} names entry seq {anchor[0]}, but the ledger ends at seq {count} "
            "(entries were removed)",
            line=count + 1,
            seq=anchor[0],
        )
    if anchored is not None and anchored.model != model:
        raise TamperedError(
            f"{model}: anchor {anchor_text} names entry seq {anchored.seq}, which records "
            f"{anchored.model!r}, not this version (the tag was copied or forged)",
            line=anchored.seq,
            seq=anchored.seq,
        )
    return _Found(tuple(history), anchored, count)


def _anchor_of(model: str, facts: ModelVersion, ledger: Ledger) -> tuple[str | None, tuple[int, str] | None]:
    recorded_in = facts.tags.get(LEDGER_TAG)
    if recorded_in and recorded_in != anchor_name(ledger):
        where = facts.tags.get(LOCATION_TAG) or recorded_in
        if where == ledger.location:
            raise TamperedError(
                f"{model} was recorded in the ledger {recorded_in} at this very location ({where}), but the "
                f"ledger there now {'is empty' if ledger.identity() is None else 'has another identity'}: "
                "it was emptied, replaced or re-created",
                line=0,
                seq=None,
            )
        raise UsageError(
            f"{model} was recorded in the ledger {recorded_in} (at {where}), not in {ledger.location}",
            hint=f"pass --ledger {where} (or set MLGATE_LEDGER), or a copy of that ledger",
        )
    anchor_text = facts.tags.get(HEAD_TAG)
    anchor = parse_anchor(anchor_text) if anchor_text else None
    if anchor_text and anchor is None:
        raise TamperedError(f"{model}: tag {HEAD_TAG} is malformed ({anchor_text[:80]!r})", line=0, seq=None)
    return anchor_text, anchor


def audit_answer(ref: str, ledger: Ledger, *, client: MlflowClient | None = None) -> AuditAnswer:
    from mlgate.lineage.chain import trace
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    parsed = ModelRef.parse(ref)
    mlflow = client or MlflowClient.from_env()
    mv = mlflow.resolve(parsed)
    model = f"models:/{parsed.name}/{mv.version}"
    anchor_text, anchor = _anchor_of(model, mv, ledger)
    found = _scan(ledger, model, anchor, anchor_text)
    anchored = found.anchored
    governing = [e for e in found.history if e.event in GOVERNING]
    current = (
        anchored if anchored is not None and anchored.event in GOVERNING else (governing[-1] if governing else None)
    )
    original: Entry | None = None
    if current is not None and current.event == "rolled_back":
        by_anchor = {e.anchor: e for e in found.history}
        original = by_anchor.get(current.details.text("approved_entry") or "")
    lineage = trace(mlflow, parsed, model_version=mv)
    return AuditAnswer(parsed, mv, current, original, ledger.location, found.count, anchor_text,
                       anchored is not None, lineage, found.history)


def _approver_lines(entry: Entry) -> list[str]:
    lines = []
    for a in entry.approvers:
        when = a.time or f"not reported by the CI; recorded {entry.time}"
        lines.append(f"  - {a.name} ({a.id or '-'}, via {a.source}), {when}")
        lines.append(f"    comment: {a.comment or '(none)'}")
    return lines


def _evidence_lines(answer: AuditAnswer) -> list[str]:
    tag = answer.mv.tags.get(EVIDENCE_TAG)
    lines = [f"evidence: sha256 {answer.evidence_sha or '-'}"
             + ("" if answer.tag_matches else f"  (version tag says {tag or 'nothing'})")]
    raw = answer.summary
    if raw and answer.source is not None:
        s = Summary.parse(raw, answer.source.seq)
        failed = ", ".join(s.failed_rules) or "none"
        lines.append(
            f"  gate {s.verdict}: {s.rules_total} rules, failed: {failed}; "
            f"risk class {s.risk_class}; policy sha256 {s.policy_sha256}; "
            f"manifest sha256 {s.manifest_sha256}"
        )
    return lines


def render_text(answer: AuditAnswer) -> str:
    title = str(answer.ref) + (f" = version {answer.mv.version}" if answer.ref.alias else "")
    lines = [f"audit: {title}"]
    current = answer.current
    if current is None:
        lines.append("  NO GOVERNED RECORD: no approval of this version is in the ledger")
        return "\n".join(lines)
    verb = "rolled back to this version" if current.event == "rolled_back" else "approved"
    lines.append(f"{verb} for {current.stage} (ledger seq {current.seq}, {current.time}) by:")
    lines += _approver_lines(current)
    if answer.original:
        lines.append(f"originally approved (ledger seq {answer.original.seq}) by:")
        lines += _approver_lines(answer.original)
    lines += _evidence_lines(answer)
    d = answer.deployment()
    lines.append(
        f"deployment: {d['run_url'] or d['tag'] or '-'} ({d['platform'] or '-'}), alias {d['alias']}"
        + (f", previous version {d['previous_version']}" if d["previous_version"] else "")
        + (f", commit {d['commit']}" if d["commit"] else "")
    )
    anchor = "anchor verified" if answer.anchor_verified else "NO ANCHOR on the version"
    lines.append(
        f"ledger: {answer.ledger_location}, {answer.entries_checked} entries chain-checked, {anchor} "
        f"({answer.anchor or '-'})"
    )
    lines.append("lineage:")
    lines += ["  " + line for line in answer.lineage.tree()]
    if len(answer.history) > 1:
        lines.append("history of this version:")
        for h in answer.history:
            lines.append(f"  seq {h.seq} {h.time} {h.event} {h.stage} by {', '.join(h.approver_names)}")
    return "\n".join(lines)
