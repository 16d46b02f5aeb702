"""What a complete lineage is: model version -> logged model -> run -> experiment -> commit -> data.

:func:`trace` asks MLflow a constant number of questions per model version (version, registered
model, logged model, run, experiment) and turns the answers into :class:`Link` s, each present or
missing with a reason. Only a missing model version raises (:class:`NotFound`, exit 1); every other
gap is data, so ``mlgate lineage`` and the gate can name all of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlgate.lineage.mlflow import MlflowClient, NotFound
from mlgate.refs import ModelRef

GIT_COMMIT_TAG = "mlflow.source.git.commit"
DATASET_CONTEXT_TAG = "mlflow.data.context"
_GIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_LOGGED_MODEL_SOURCE = re.compile(r"^models:/(m-[0-9A-Za-z]+)/?$")

#: every link id, in chain order; a policy's ``lineage:`` list names some of these
LINK_IDS = (
    "logged_model",
    "source_run",
    "source_run_finished",
    "experiment",
    "git_commit",
    "training_dataset",
    "owner",
    "use_case",
)
LINK_LABELS = {
    "logged_model": "logged model",
    "source_run": "source run",
    "source_run_finished": "source run finished",
    "experiment": "experiment",
    "git_commit": "git commit",
    "training_dataset": "training dataset",
    "owner": "owner tag",
    "use_case": "use case tag",
}


def tag_map(entity: dict[str, Any] | None) -> dict[str, str]:
    """MLflow's ``[{key, value}]`` tag list (or a ``{key: value}`` map) as a dict."""
    if not entity:
        return {}
    tags = entity.get("tags")
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t["key"]): str(t.get("value", "")) for t in tags if isinstance(t, dict) and "key" in t}
    return {}


def metric_map(run: dict[str, Any] | None) -> dict[str, float]:
    """The latest value of every metric of a run (what ``runs/get`` returns)."""
    out: dict[str, float] = {}
    if not run:
        return out
    data = run.get("data")
    metrics = data.get("metrics", []) if isinstance(data, dict) else []
    for m in metrics if isinstance(metrics, list) else []:
        if isinstance(m, dict) and isinstance(m.get("key"), str) and isinstance(m.get("value"), (int, float)):
            out[m["key"]] = float(m["value"])
    return out


@dataclass(frozen=True)
class Link:
    id: str
    ok: bool
    detail: str

    @property
    def label(self) -> str:
        return LINK_LABELS.get(self.id, self.id)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source: str
    source_type: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "digest": self.digest, "source": self.source, "source_type": self.source_type}


@dataclass(frozen=True)
class Lineage:
    """The traced chain of one model version."""

    ref: str
    name: str
    version: str
    model_version: dict[str, Any]
    registered_model: dict[str, Any] | None = None
    logged_model: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    experiment: dict[str, Any] | None = None
    git_commit: str | None = None
    datasets: list[Dataset] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(link.ok for link in self.links)

    @property
    def missing(self) -> list[Link]:
        return [link for link in self.links if not link.ok]

    def link(self, link_id: str) -> Link:
        for link in self.links:
            if link.id == link_id:
                return link
        raise KeyError(link_id)

    @property
    def tags(self) -> dict[str, str]:
        """Registered-model tags overlaid with the version's own tags (the version wins)."""
        return {**tag_map(self.registered_model), **tag_map(self.model_version)}

    @property
    def version_tags(self) -> dict[str, str]:
        return tag_map(self.model_version)

    @property
    def metrics(self) -> dict[str, float]:
        return metric_map(self.run)

    @property
    def run_id(self) -> str | None:
        if self.run:
            info = self.run.get("info", {})
            rid = info.get("run_id") or info.get("run_uuid")
            return str(rid) if rid else None
        rid = self.model_version.get("run_id")
        return str(rid) if rid else None

    @property
    def model_id(self) -> str | None:
        if self.logged_model:
            mid = self.logged_model.get("info", {}).get("model_id")
            return str(mid) if mid else None
        return logged_model_id(self.model_version)

    def to_dict(self) -> dict[str, Any]:
        run_info = (self.run or {}).get("info", {})
        return {
            "model": {"name": self.name, "version": self.version, "source": self.model_version.get("source"),
                      "status": self.model_version.get("status")},
            "logged_model": self.model_id,
            "run": {"id": self.run_id, "status": run_info.get("status"),
                    "lifecycle_stage": run_info.get("lifecycle_stage")} if self.run_id else None,
            "experiment": {"id": (self.experiment or {}).get("experiment_id"),
                           "name": (self.experiment or {}).get("name")} if self.experiment else None,
            "git_commit": self.git_commit,
            "training_datasets": [d.to_dict() for d in self.datasets],
            "owner": self.tags.get("owner") or None,
            "use_case": self.tags.get("use_case") or None,
            "links": [link.to_dict() for link in self.links],
            "complete": self.complete,
        }

    def tree(self) -> list[str]:
        """The chain as indented lines (what ``mlgate lineage`` prints)."""

        def mark(link_id: str) -> str:
            return "ok " if self.link(link_id).ok else "MISSING"

        def line(depth: int, link_id: str) -> str:
            link = self.link(link_id)
            return f"{'   ' * depth}└─ [{mark(link_id)}] {link.label}: {link.detail}"

        lines = [f"{self.ref}  (model version {self.name}/{self.version})"]
        lines.append(line(0, "logged_model"))
        lines.append(line(1, "source_run"))
        lines.append(line(2, "source_run_finished"))
        lines.append(line(2, "experiment"))
        lines.append(line(2, "git_commit"))
        lines.append(line(2, "training_dataset"))
        for d in self.datasets:
            lines.append(f"{'   ' * 3}   · {d.name} digest={d.digest} source={d.source}")
        lines.append(line(0, "owner"))
        lines.append(line(0, "use_case"))
        return lines


def logged_model_id(model_version: dict[str, Any]) -> str | None:
    """The MLflow 3 logged model a version points at (its ``source`` is ``models:/m-<id>``)."""
    mid = model_version.get("model_id")
    if isinstance(mid, str) and mid:
        return mid
    source = model_version.get("source")
    match = _LOGGED_MODEL_SOURCE.match(source) if isinstance(source, str) else None
    return match.group(1) if match else None


def _source_text(raw: object) -> str:
    """MLflow stores a dataset's source as JSON (``{"uri": ...}``); show its location when it has one."""
    import json

    text = "" if raw is None else str(raw)
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if isinstance(doc, dict):
        for key in ("uri", "url", "path", "table_name", "repo_id"):
            if isinstance(doc.get(key), str) and doc[key]:
                return str(doc[key])
    return text


def _datasets(run: dict[str, Any]) -> list[Dataset]:
    inputs = run.get("inputs")
    items = inputs.get("dataset_inputs", []) if isinstance(inputs, dict) else []
    found: list[Dataset] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        context = tag_map(item).get(DATASET_CONTEXT_TAG, "")
        dataset = item.get("dataset")
        if context != "training" or not isinstance(dataset, dict):
            continue
        found.append(Dataset(
            name=str(dataset.get("name", "")), digest=str(dataset.get("digest", "")),
            source=_source_text(dataset.get("source")), source_type=str(dataset.get("source_type", "")),
        ))
    return found


def trace(client: MlflowClient, ref: ModelRef | str, *, model_version: dict[str, Any] | None = None) -> Lineage:
    """Trace ``ref`` through MLflow. Raises :class:`NotFound` only when the version itself is missing."""
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    mv = model_version if model_version is not None else client.resolve(parsed)
    name, version = str(mv.get("name", parsed.name)), str(mv.get("version", parsed.version or ""))
    links: list[Link] = []

    try:
        registered: dict[str, Any] | None = client.get_registered_model(name)
    except NotFound:
        registered = None

    # logged model (MLflow 3)
    logged: dict[str, Any] | None = None
    mid = logged_model_id(mv)
    source = str(mv.get("source", ""))
    if mid:
        try:
            logged = client.get_logged_model(mid)
            links.append(Link("logged_model", True, mid))
        except NotFound:
            links.append(Link("logged_model", False, f"{mid} named by the version's source does not exist"))
    elif source:
        links.append(Link("logged_model", True, f"not an MLflow 3 logged model; source {source}"))
    else:
        links.append(Link("logged_model", False, "the version has no source"))

    # source run
    run: dict[str, Any] | None = None
    version_run = str(mv.get("run_id") or "")
    logged_run = str((logged or {}).get("info", {}).get("source_run_id") or "")
    run_id = version_run or logged_run
    if version_run and logged_run and version_run != logged_run:
        links.append(Link("source_run", False,
                          f"the version names run {version_run} but its logged model was made by run {logged_run}"))
    elif not run_id:
        links.append(Link("source_run", False, "the version names no run (register it from a run's model)"))
    else:
        try:
            run = client.get_run(run_id)
            links.append(Link("source_run", True, run_id))
        except NotFound:
            links.append(Link("source_run", False, f"run {run_id} does not exist"))

    info = (run or {}).get("info", {})
    status, stage = info.get("status"), info.get("lifecycle_stage", "active")
    if run is None:
        links.append(Link("source_run_finished", False, "no source run"))
    elif stage == "deleted":
        links.append(Link("source_run_finished", False, f"run {run_id} is deleted"))
    elif status != "FINISHED":
        links.append(Link("source_run_finished", False, f"run {run_id} is {status or 'of unknown status'}"))
    else:
        links.append(Link("source_run_finished", True, "FINISHED"))

    # experiment
    experiment: dict[str, Any] | None = None
    exp_id = info.get("experiment_id") or (logged or {}).get("info", {}).get("experiment_id")
    if not exp_id:
        links.append(Link("experiment", False, "no experiment (no source run)"))
    else:
        try:
            experiment = client.get_experiment(str(exp_id))
            if experiment.get("lifecycle_stage") == "deleted":
                links.append(Link("experiment", False, f"experiment {exp_id} is deleted"))
            else:
                links.append(Link("experiment", True, f"{experiment.get('name', '')} (id {exp_id})"))
        except NotFound:
            links.append(Link("experiment", False, f"experiment {exp_id} does not exist"))

    # git commit
    commit_raw = tag_map(run.get("data") if run else None).get(GIT_COMMIT_TAG, "")
    git_commit = commit_raw.strip().lower() if _GIT_SHA.match(commit_raw.strip().lower()) else None
    if run is None:
        links.append(Link("git_commit", False, "no source run"))
    elif not commit_raw:
        links.append(Link("git_commit", False, f"run tag {GIT_COMMIT_TAG} is not set"))
    elif git_commit is None:
        links.append(Link("git_commit", False, f"run tag {GIT_COMMIT_TAG} is not a 40-hex commit"))
    else:
        links.append(Link("git_commit", True, git_commit))

    # training datasets
    datasets = _datasets(run) if run else []
    if run is None:
        links.append(Link("training_dataset", False, "no source run"))
    elif not datasets:
        links.append(Link("training_dataset", False, "the run logged no dataset input with context 'training'"))
    elif not all(d.name and d.digest for d in datasets):
        links.append(Link("training_dataset", False, "a training dataset has no name or digest"))
    else:
        links.append(Link("training_dataset", True, ", ".join(f"{d.name}@{d.digest}" for d in datasets)))

    tags = {**tag_map(registered), **tag_map(mv)}
    for key in ("owner", "use_case"):
        value = tags.get(key, "").strip()
        links.append(Link(key, bool(value), value or f"tag '{key}' is not set on the registered model or version"))
    return Lineage(ref=str(parsed), name=name, version=version, model_version=mv, registered_model=registered,
                   logged_model=logged, run=run, experiment=experiment, git_commit=git_commit,
                   datasets=datasets, links=links)
