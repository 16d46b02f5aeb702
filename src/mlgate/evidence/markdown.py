"""Render evidence as Markdown: the verdict first, then one table per section.

Written for GitHub's job summary and Azure DevOps' run summary (both GitHub-flavoured tables);
cells are escaped and capped so the whole page stays far below 1 MiB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_CELL = 300
SECTIONS = (("integrity", "Integrity"), ("risk", "Risk class"), ("lineage", "Lineage rules"), ("tags", "Required tags"),
            ("metrics", "Metrics"), ("fairness", "Fairness"))


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def render(evidence: Mapping[str, Any]) -> str:
    lines = _head(evidence) + _rules(evidence) + _lineage(evidence) + _differences(evidence)
    lines += _approvals(evidence) + _ci(evidence)
    lines.append(f"<sub>mlgate {cell(evidence.get('mlgate_version'))} · evidence schema "
                 f"{cell(evidence.get('schema_version'))} · {cell(evidence.get('generated_at'))}</sub>")
    return "\n".join(lines) + "\n"


def _head(evidence: Mapping[str, Any]) -> list[str]:
    decision = evidence["decision"]
    model = evidence["model"]
    passed = decision["passed"]
    failed = decision["failed_rules"]
    head = "✅ PASSED" if passed else "❌ REFUSED"
    lines = [f"## mlgate gate: {head} — `{cell(model['ref'])}`", ""]
    if passed:
        lines.append(f"All {decision['rules_total']} rules passed.")
    else:
        lines.append(f"**{len(failed)} of {decision['rules_total']} rules failed:** "
                     + ", ".join(f"`{cell(r)}`" for r in failed))
    risk = evidence.get("risk") or {}
    return [
        *lines,
        "",
        f"Model version **{cell(model['name'])}/{cell(model['version'])}**"
        + (f" (alias @{cell(model['alias'])})" if model.get("alias") else "")
        + f" · risk class **{cell(risk.get('class') or 'unknown')}** ({cell(risk.get('source'))})"
        + (f" · stage **{cell(evidence.get('stage'))}**" if evidence.get("stage") else ""),
        "",
        f"Manifest `sha256:{cell((evidence.get('manifest') or {}).get('sha256') or 'none')}` · "
        f"policy `{cell(evidence['policy']['source'])}` `sha256:{cell(evidence['policy']['sha256'][:16])}…` · "
        f"evidence `sha256:{cell(evidence.get('evidence_sha256', ''))}`",
        "",
    ]


def _rules(evidence: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    rules = evidence.get("rules", [])
    for section, title in SECTIONS:
        rows = [["✅" if r["passed"] else "❌", f"`{r['id']}`", r["expected"], r["actual"], r["message"]]
                for r in rules if r["section"] == section]
        if rows:
            lines += [f"### {title}", "", *_table(["", "rule", "expected", "actual", "detail"], rows), ""]
    return lines


def _lineage(evidence: Mapping[str, Any]) -> list[str]:
    lineage = evidence.get("lineage") or {}
    links = lineage.get("links", [])
    if not links:
        return []
    link_rows = [["✅" if x["ok"] else "❌", x["id"], x["detail"]] for x in links]
    lines = ["### Lineage chain", "", *_table(["", "link", "detail"], link_rows), ""]
    datasets = lineage.get("training_datasets") or []
    if datasets:
        lines += ["Training datasets:", "", *_table(["name", "digest", "source"],
                                                    [[d["name"], d["digest"], d["source"]] for d in datasets]), ""]
    return lines


def _differences(evidence: Mapping[str, Any]) -> list[str]:
    integ = (evidence.get("manifest") or {}).get("integrity") or {}
    listed = [("changed", n) for n in integ.get("changed", [])] + [("missing", n) for n in integ.get("missing", [])] + [
        ("extra", n) for n in integ.get("extra", [])]
    if not listed:
        return []
    counts = integ.get("counts", {})
    return [f"### Files differing from the seal ({counts.get('changed', 0)} changed, "
            f"{counts.get('missing', 0)} missing, {counts.get('extra', 0)} extra; first 50 of each)", "",
            *_table(["what", "file"], [[k, f"`{n}`"] for k, n in listed]), ""]


def _approvals(evidence: Mapping[str, Any]) -> list[str]:
    approvals = ((evidence.get("requirements") or {}).get("approvals")) or {}
    if not approvals.get("min_approvers"):
        return []
    return ["### Approvals the release still needs", "",
            f"At least **{approvals['min_approvers']}** named approver(s)"
            + ("; not the model's author" if approvals.get("approver_not_author") else "")
            + ("; not the person who requested the run" if approvals.get("approver_not_requester") else "")
            + ". Checked when the release is recorded (`mlgate record`).", ""]


def _ci(evidence: Mapping[str, Any]) -> list[str]:
    ci = evidence.get("ci") or {}
    rows = [[k, ci.get(k)] for k in ("platform", "run_url", "commit", "requester", "repository") if ci.get(k)]
    return ["### CI run", "", *_table(["", ""], rows), ""] if rows else []
