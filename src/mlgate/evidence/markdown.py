"""Render evidence as Markdown: the verdict first, then one table per section.

Written for GitHub's job summary and Azure DevOps' run summary (both GitHub-flavoured tables);
cells are escaped and capped so the whole page stays far below 1 MiB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.errors import InvalidInputError
from mlgate.jsonvalue import Fields

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
    """The Markdown page of an evidence document (as :meth:`Evidence.document` holds it)."""
    doc = Fields(evidence, "evidence", error=InvalidInputError)
    lines = _head(doc) + _rules(doc) + _lineage(doc) + _differences(doc) + _approvals(doc) + _ci(doc)
    lines.append(f"<sub>mlgate {cell(doc.raw('mlgate_version'))} · evidence schema "
                 f"{cell(doc.raw('schema_version'))} · {cell(doc.raw('generated_at'))}</sub>")
    return "\n".join(lines) + "\n"


def _head(doc: Fields) -> list[str]:
    decision, model = doc.obj("decision"), doc.obj("model")
    failed = decision.items("failed_rules")
    head = "✅ PASSED" if decision.raw("passed") else "❌ REFUSED"
    lines = [f"## mlgate gate: {head} — `{cell(model.raw('ref'))}`", ""]
    if decision.raw("passed"):
        lines.append(f"All {decision.raw('rules_total')} rules passed.")
    else:
        lines.append(f"**{len(failed)} of {decision.raw('rules_total')} rules failed:** "
                     + ", ".join(f"`{cell(r)}`" for r in failed))
    risk, policy = doc.opt_obj("risk"), doc.obj("policy")
    alias, stage = model.raw("alias"), doc.raw("stage")
    manifest = doc.opt_obj("manifest").raw("sha256") or "none"
    return [
        *lines,
        "",
        f"Model version **{cell(model.raw('name'))}/{cell(model.raw('version'))}**"
        + (f" (alias @{cell(alias)})" if alias else "")
        + f" · risk class **{cell(risk.raw('class') or 'unknown')}** ({cell(risk.raw('source'))})"
        + (f" · stage **{cell(stage)}**" if stage else ""),
        "",
        f"Manifest `sha256:{cell(manifest)}` · "
        f"policy `{cell(policy.raw('source'))}` `sha256:{cell(str(policy.raw('sha256') or '')[:16])}…` · "
        f"evidence `sha256:{cell(doc.raw('evidence_sha256') or '')}`",
        "",
    ]


def _rules(doc: Fields) -> list[str]:
    lines: list[str] = []
    rules = doc.objs("rules")
    for section, title in SECTIONS:
        rows = [["✅" if r.raw("passed") else "❌", f"`{r.raw('id')}`", r.raw("expected"), r.raw("actual"),
                 r.raw("message")] for r in rules if r.raw("section") == section]
        if rows:
            lines += [f"### {title}", "", *_table(["", "rule", "expected", "actual", "detail"], rows), ""]
    return lines


def _lineage(doc: Fields) -> list[str]:
    lineage = doc.opt_obj("lineage")
    links = lineage.objs("links")
    if not links:
        return []
    link_rows = [["✅" if x.raw("ok") else "❌", x.raw("id"), x.raw("detail")] for x in links]
    lines = ["### Lineage chain", "", *_table(["", "link", "detail"], link_rows), ""]
    datasets = lineage.objs("training_datasets")
    if datasets:
        rows = [[d.raw("name"), d.raw("digest"), d.raw("source")] for d in datasets]
        lines += ["Training datasets:", "", *_table(["name", "digest", "source"], rows), ""]
    return lines


def _differences(doc: Fields) -> list[str]:
    integ = doc.opt_obj("manifest").opt_obj("integrity")
    listed = [(kind, name) for kind in ("changed", "missing", "extra") for name in integ.items(kind)]
    if not listed:
        return []
    counts = integ.opt_obj("counts")
    return [f"### Files differing from the seal ({counts.raw('changed') or 0} changed, "
            f"{counts.raw('missing') or 0} missing, {counts.raw('extra') or 0} extra; first 50 of each)", "",
            *_table(["what", "file"], [[k, f"`{n}`"] for k, n in listed]), ""]


def _approvals(doc: Fields) -> list[str]:
    approvals = doc.opt_obj("requirements").opt_obj("approvals")
    if not approvals.raw("min_approvers"):
        return []
    return ["### Approvals the release still needs", "",
            f"At least **{approvals.raw('min_approvers')}** named approver(s)"
            + ("; not the model's author" if approvals.raw("approver_not_author") else "")
            + ("; not the person who requested the run" if approvals.raw("approver_not_requester") else "")
            + ". Checked when the release is recorded (`mlgate record`).", ""]


def _ci(doc: Fields) -> list[str]:
    ci = doc.opt_obj("ci")
    rows = [[k, ci.raw(k)] for k in ("platform", "run_url", "commit", "requester", "repository") if ci.raw(k)]
    return ["### CI run", "", *_table(["", ""], rows), ""] if rows else []
