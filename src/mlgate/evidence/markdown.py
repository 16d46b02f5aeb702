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


FOLD_ROWS = 10  # a longer table is folded in <details>, so the verdict stays on the first screen


def folded_table(headers: list[str], rows: list[list[Any]], *, what: str) -> list[str]:
    """A table (and a blank line after it), folded in ``<details>`` when it has more than :data:`FOLD_ROWS` rows.

    GitHub and Azure DevOps render Markdown inside ``<details>`` only after a blank line.
    """
    table = _table(headers, rows)
    if len(rows) <= FOLD_ROWS:
        return [*table, ""]
    return [f"<details><summary>{len(rows)} {cell(what)}</summary>", "", *table, "", "</details>", ""]


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
            lines += [f"### {title}", "", *folded_table(["", "rule", "expected", "actual", "detail"], rows,
                                                        what=f"{title.lower()} rules")]
    return lines


def _lineage(doc: Fields) -> list[str]:
    lineage = doc.opt_obj("lineage")
    links = lineage.objs("links")
    if not links:
        return []
    link_rows = [["✅" if x.raw("ok") else "❌", x.raw("id"), x.raw("detail")] for x in links]
    lines = ["### Lineage chain", "", *mermaid_chain(doc), "", *folded_table(["", "link", "detail"], link_rows,
                                                                             what="lineage links")]
    datasets = lineage.objs("training_datasets")
    if datasets:
        rows = [[d.raw("name"), d.raw("digest"), d.raw("source")] for d in datasets]
        lines += ["Training datasets:", "", *folded_table(["name", "digest", "source"], rows, what="datasets")]
    return lines


MAX_LABEL = 60
MAX_DATASET_NODES = 5


def _label(text: Any) -> str:
    """A Mermaid node label: one line, no quote or markup that could end it, capped."""
    value = " ".join(("" if text is None else str(text)).split())
    value = value if len(value) <= MAX_LABEL else value[: MAX_LABEL - 1] + "…"
    for char, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("`", "#96;")):
        value = value.replace(char, entity)
    return value


def mermaid_chain(doc: Fields) -> list[str]:
    """The lineage chain as a Mermaid flowchart (GitHub renders it in the job summary): model version ->
    logged model -> run -> commit, experiment and training datasets; a missing link is drawn red and dashed."""
    lineage = doc.opt_obj("lineage")
    ok = {link.raw("id"): bool(link.raw("ok")) for link in lineage.objs("links")}
    model, run = lineage.opt_obj("model"), lineage.opt_obj("run")
    nodes = [("mv", f"model version {model.raw('name')}/{model.raw('version')}", True, None),
             ("lm", f"logged model {lineage.raw('logged_model') or 'missing'}", ok.get("logged_model", True), "mv"),
             ("run", f"run {run.raw('id') or 'missing'} {run.raw('status') or ''}",
              ok.get("source_run", True) and ok.get("source_run_finished", True), "lm"),
             ("exp", f"experiment {lineage.opt_obj('experiment').raw('name') or 'missing'}",
              ok.get("experiment", True), "run"),
             ("git", f"commit {str(lineage.raw('git_commit') or 'missing')[:12]}", ok.get("git_commit", True), "run")]
    datasets = lineage.objs("training_datasets")
    for index, dataset in enumerate(datasets[:MAX_DATASET_NODES]):
        nodes.append((f"ds{index}", f"dataset {dataset.raw('name')}", True, "run"))
    if len(datasets) > MAX_DATASET_NODES:
        nodes.append(("dsmore", f"{len(datasets) - MAX_DATASET_NODES} more datasets", True, "run"))
    if not datasets:
        nodes.append(("ds", "training dataset missing", ok.get("training_dataset", True), "run"))
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {node}["{_label(text)}"]' for node, text, _, _ in nodes]
    lines += [f"  {parent} --> {node}" for node, _, _, parent in nodes if parent]
    missing = [node for node, _, good, _ in nodes if not good]
    if missing:
        lines += ["  classDef missing stroke:#d1242f,stroke-width:2px,stroke-dasharray:4 2",
                  f"  class {','.join(missing)} missing"]
    return [*lines, "```"]


def _differences(doc: Fields) -> list[str]:
    integ = doc.opt_obj("manifest").opt_obj("integrity")
    listed = [(kind, name) for kind in ("changed", "missing", "extra") for name in integ.items(kind)]
    if not listed:
        return []
    counts = integ.opt_obj("counts")
    return [f"### Files differing from the seal ({counts.raw('changed') or 0} changed, "
            f"{counts.raw('missing') or 0} missing, {counts.raw('extra') or 0} extra; first 50 of each)", "",
            *folded_table(["what", "file"], [[k, f"`{n}`"] for k, n in listed], what="files")]


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
