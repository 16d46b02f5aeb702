"""`mlgate audit show REF`: who approved the model version at REF, when, why, with what evidence.

The answer joins three sources and cross-checks them: the MLflow model version (its tags and
lineage), the audit ledger (streamed and chain-checked while searching) and the version's
``mlgate.ledger.head`` anchor, which must name a ledger entry with exactly that hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlgate.errors import UsageError
from mlgate.ledger.anchors import HEAD_TAG, LEDGER_TAG, LOCATION_TAG, anchor_name, parse_anchor
from mlgate.ledger.base import Entry, Ledger, TamperedError

if TYPE_CHECKING:
    from mlgate.lineage.mlflow import MlflowClient

EVIDENCE_TAG = "mlgate.evidence.sha256"




def _approval(entry: Entry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "event": entry.event,
        "seq": entry.seq,
        "recorded_at": entry.get("time"),
        "stage": entry.get("stage"),
        "approvers": list(entry.get("approvers") or []),
        "actor": entry.get("actor"),
    }


def audit_answer(ref: str, ledger: Ledger, *, client: MlflowClient | None = None) -> dict[str, Any]:
    from mlgate.lineage.chain import trace
    from mlgate.lineage.mlflow import MlflowClient
    from mlgate.refs import ModelRef

    parsed = ModelRef.parse(ref)
    mlflow = client or MlflowClient.from_env()
    mv = mlflow.resolve(parsed)
    name, version = parsed.name, mv.version
    tags = mv.tags
    model = f"models:/{name}/{version}"
    recorded_in = tags.get(LEDGER_TAG)
    if recorded_in and recorded_in != anchor_name(ledger):
        where = tags.get(LOCATION_TAG) or recorded_in
        raise UsageError(
            f"{model} was recorded in the ledger {recorded_in} (at {where}), not in {ledger.location}",
            hint=f"pass --ledger {where} (or set MLGATE_LEDGER), or a copy of that ledger",
        )
    anchor_text = tags.get(HEAD_TAG)
    anchor = parse_anchor(anchor_text) if anchor_text else None
    if anchor_text and anchor is None:
        raise TamperedError(f"{model}: tag {HEAD_TAG} is malformed ({anchor_text[:80]!r})", line=0, seq=None)

    history: list[Entry] = []
    by_anchor: dict[str, Entry] = {}
    anchored: Entry | None = None
    count = 0
    for entry in ledger.entries():  # chain-checked while streaming
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
        if entry.get("model") == model:
            history.append(entry)
            by_anchor[entry.anchor] = entry
    if anchor and anchored is None:
        raise TamperedError(
            f"{model}: anchor {anchor_text} names entry seq {anchor[0]}, but the ledger ends at seq {count} "
            "(entries were removed)",
            line=count + 1,
            seq=anchor[0],
        )
    if anchored is not None and anchored.get("model") != model:
        raise TamperedError(
            f"{model}: anchor {anchor_text} names entry seq {anchored.seq}, which records "
            f"{anchored.get('model')!r}, not this version (the tag was copied or forged)",
            line=anchored.seq,
            seq=anchored.seq,
        )
    governing = [e for e in history if e.event in ("approved", "rolled_back")]
    current = (
        anchored
        if anchored is not None and anchored.event in ("approved", "rolled_back")
        else (governing[-1] if governing else None)
    )
    original: Entry | None = None
    if current is not None and current.event == "rolled_back":
        original = by_anchor.get(str((current.get("details") or {}).get("approved_entry")))
    lineage = trace(mlflow, parsed, model_version=mv)
    source = original or current
    evidence_sha = source.get("evidence_sha256") if source else None
    details = (current.get("details") or {}) if current else {}
    answer: dict[str, Any] = {
        "model": {
            "ref": str(parsed),
            "name": name,
            "version": version,
            "alias": parsed.alias,
            "aliases": list(mv.aliases),
        },
        "recorded": current is not None,
        "approval": _approval(current),
        "original_approval": _approval(original),
        "evidence": {
            "sha256": evidence_sha,
            "summary": ((source.get("details") or {}).get("evidence") if source else None),
            "tag": tags.get(EVIDENCE_TAG),
            "tag_matches": bool(evidence_sha) and tags.get(EVIDENCE_TAG) == evidence_sha,
        },
        "deployment": {
            "run_url": current.get("run_url") if current else None,
            "platform": details.get("platform"),
            "commit": details.get("commit"),
            "alias": details.get("alias") or (current.get("stage") if current else None),
            "previous_version": details.get("previous_version") or details.get("from_version"),
            "recorded_at": current.get("time") if current else None,
            "tag": tags.get("mlgate.deployment"),
        },
        "ledger": {
            "location": ledger.location,
            "entries_checked": count,
            "entry": {"seq": current.seq, "hash": current.hash} if current else None,
            "anchor": anchor_text,
            "anchor_verified": anchored is not None,
        },
        "lineage": lineage.to_dict(),
        "lineage_tree": lineage.tree(),
        "history": [
            {
                "seq": e.seq,
                "event": e.event,
                "time": e.get("time"),
                "stage": e.get("stage"),
                "approvers": [a.get("name") for a in e.get("approvers") or []],
                "run_url": e.get("run_url"),
            }
            for e in history
        ],
    }
    return answer


def _approver_lines(approval: dict[str, Any]) -> list[str]:
    lines = []
    for a in approval.get("approvers") or []:
        when = a.get("time") or f"not reported by the CI; recorded {approval.get('recorded_at')}"
        lines.append(f"  - {a.get('name')} ({a.get('id') or '-'}, via {a.get('source')}), {when}")
        lines.append(f"    comment: {a.get('comment') or '(none)'}")
    return lines


def render_text(answer: dict[str, Any]) -> str:
    m = answer["model"]
    title = f"{m['ref']}" + (f" = version {m['version']}" if m.get("alias") else "")
    lines = [f"audit: {title}"]
    approval = answer["approval"]
    if approval is None:
        lines.append("  NO GOVERNED RECORD: no approval of this version is in the ledger")
        return "\n".join(lines)
    verb = "rolled back to this version" if approval["event"] == "rolled_back" else "approved"
    lines.append(f"{verb} for {approval['stage']} (ledger seq {approval['seq']}, {approval['recorded_at']}) by:")
    lines += _approver_lines(approval)
    if answer["original_approval"]:
        lines.append("originally approved (ledger seq {}) by:".format(answer["original_approval"]["seq"]))
        lines += _approver_lines(answer["original_approval"])
    ev = answer["evidence"]
    summary = ev.get("summary") or {}
    lines.append(
        f"evidence: sha256 {ev['sha256'] or '-'}"
        + ("" if ev["tag_matches"] else f"  (version tag says {ev['tag'] or 'nothing'})")
    )
    if summary:
        failed = ", ".join(summary.get("failed_rules") or []) or "none"
        lines.append(
            f"  gate {summary.get('verdict')}: {summary.get('rules_total')} rules, failed: {failed}; "
            f"risk class {summary.get('risk_class')}; policy sha256 {summary.get('policy_sha256')}; "
            f"manifest sha256 {summary.get('manifest_sha256')}"
        )
    d = answer["deployment"]
    lines.append(
        f"deployment: {d['run_url'] or d['tag'] or '-'} ({d['platform'] or '-'}), alias {d['alias']}"
        + (f", previous version {d['previous_version']}" if d.get("previous_version") else "")
        + (f", commit {d['commit']}" if d.get("commit") else "")
    )
    led = answer["ledger"]
    anchor = "anchor verified" if led["anchor_verified"] else "NO ANCHOR on the version"
    lines.append(
        f"ledger: {led['location']}, {led['entries_checked']} entries chain-checked, {anchor} ({led['anchor'] or '-'})"
    )
    lines.append("lineage:")
    lines += ["  " + line for line in answer["lineage_tree"]]
    if len(answer["history"]) > 1:
        lines.append("history of this version:")
        for h in answer["history"]:
            lines.append(f"  seq {h['seq']} {h['time']} {h['event']} {h['stage']} by {', '.join(h['approvers'])}")
    return "\n".join(lines)
