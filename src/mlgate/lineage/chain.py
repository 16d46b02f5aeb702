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

from mlgate import tags
from mlgate.lineage.mlflow import MlflowClient, NotFound
from mlgate.lineage.records import Experiment, LoggedModel, ModelVersion, RegisteredModel, Run
from mlgate.refs import ModelRef

GIT_COMMIT_TAG = tags.GIT_COMMIT
DATASET_CONTEXT_TAG = tags.DATASET_CONTEXT
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
    model_version: ModelVersion
    registered_model: RegisteredModel | None = None
    logged_model: LoggedModel | None = None
    run: Run | None = None
    experiment: Experiment | None = None
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
        return {**(self.registered_model.tags if self.registered_model else {}), **self.model_version.tags}

    @property
    def version_tags(self) -> dict[str, str]:
        return self.model_version.tags

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of every metric of the source run."""
        return self.run.data.metrics if self.run else {}

    @property
    def run_id(self) -> str | None:
        if self.run:
            return self.run.info.run_id or None
        return self.model_version.run_id or None

    @property
    def model_id(self) -> str | None:
        if self.logged_model:
            return self.logged_model.model_id or None
        return logged_model_id(self.model_version)

    def to_dict(self) -> dict[str, Any]:
        info = self.run.info if self.run else None
        experiment = self.experiment
        return {
            "model": {"name": self.name, "version": self.version, "source": self.model_version.source,
                      "status": self.model_version.status},
            "logged_model": self.model_id,
            "run": {"id": self.run_id, "status": info.status if info else None,
                    "lifecycle_stage": info.lifecycle_stage if info else None} if self.run_id else None,
            "experiment": {"id": experiment.experiment_id or None, "name": experiment.name} if experiment else None,
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


def logged_model_id(model_version: ModelVersion) -> str | None:
    """The MLflow 3 logged model a version points at (its ``source`` is ``models:/m-<id>``)."""
    if model_version.model_id:
        return model_version.model_id
    match = _LOGGED_MODEL_SOURCE.match(model_version.source or "")
    return match.group(1) if match else None


def _datasets(run: Run) -> list[Dataset]:
    return [Dataset(name=item.name, digest=item.digest, source=item.source_location, source_type=item.source_type)
            for item in run.inputs if item.tags.get(DATASET_CONTEXT_TAG, "") == "training"]


def _logged_model_link(client: MlflowClient, mv: ModelVersion) -> tuple[LoggedModel | None, Link]:
    mid = logged_model_id(mv)
    if mid:
        try:
            return client.get_logged_model(mid), Link("logged_model", True, mid)
        except NotFound:
            return None, Link("logged_model", False, f"{mid} named by the version's source does not exist")
    if mv.source:
        return None, Link("logged_model", True, f"not an MLflow 3 logged model; source {mv.source}")
    return None, Link("logged_model", False, "the version has no source")


def _run_links(client: MlflowClient, mv: ModelVersion, logged: LoggedModel | None) -> tuple[Run | None, list[Link]]:
    version_run = mv.run_id or ""
    logged_run = (logged.source_run_id if logged else None) or ""
    run_id = version_run or logged_run
    run: Run | None = None
    if version_run and logged_run and version_run != logged_run:
        found = Link("source_run", False,
                     f"the version names run {version_run} but its logged model was made by run {logged_run}")
    elif not run_id:
        found = Link("source_run", False, "the version names no run (register it from a run's model)")
    else:
        try:
            run = client.get_run(run_id)
            found = Link("source_run", True, run_id)
        except NotFound:
            found = Link("source_run", False, f"run {run_id} does not exist")
    status, stage = (run.info.status, run.info.lifecycle_stage or "active") if run else (None, "active")
    if run is None:
        finished = Link("source_run_finished", False, "no source run")
    elif stage == "deleted":
        finished = Link("source_run_finished", False, f"run {run_id} is deleted")
    elif status != "FINISHED":
        finished = Link("source_run_finished", False, f"run {run_id} is {status or 'of unknown status'}")
    else:
        finished = Link("source_run_finished", True, "FINISHED")
    return run, [found, finished]


def _experiment_link(
    client: MlflowClient, run: Run | None, logged: LoggedModel | None
) -> tuple[Experiment | None, Link]:
    exp_id = (run.info.experiment_id if run else None) or (logged.experiment_id if logged else None)
    if not exp_id:
        return None, Link("experiment", False, "no experiment (no source run)")
    try:
        experiment = client.get_experiment(exp_id)
    except NotFound:
        return None, Link("experiment", False, f"experiment {exp_id} does not exist")
    if experiment.lifecycle_stage == "deleted":
        return experiment, Link("experiment", False, f"experiment {exp_id} is deleted")
    return experiment, Link("experiment", True, f"{experiment.name or ''} (id {exp_id})")


def _commit_link(run: Run | None) -> tuple[str | None, Link]:
    commit_raw = run.data.tags.get(GIT_COMMIT_TAG, "") if run else ""
    git_commit = commit_raw.strip().lower() if _GIT_SHA.match(commit_raw.strip().lower()) else None
    if run is None:
        return None, Link("git_commit", False, "no source run")
    if not commit_raw:
        return None, Link("git_commit", False, f"run tag {GIT_COMMIT_TAG} is not set")
    if git_commit is None:
        return None, Link("git_commit", False, f"run tag {GIT_COMMIT_TAG} is not a 40-hex commit")
    return git_commit, Link("git_commit", True, git_commit)


def _dataset_link(run: Run | None, datasets: list[Dataset]) -> Link:
    if run is None:
        return Link("training_dataset", False, "no source run")
    if not datasets:
        return Link("training_dataset", False, "the run logged no dataset input with context 'training'")
    if not all(d.name and d.digest for d in datasets):
        return Link("training_dataset", False, "a training dataset has no name or digest")
    return Link("training_dataset", True, ", ".join(f"{d.name}@{d.digest}" for d in datasets))


def trace(client: MlflowClient, ref: ModelRef | str, *, model_version: ModelVersion | None = None) -> Lineage:
    """Trace ``ref`` through MLflow. Raises :class:`NotFound` only when the version itself is missing."""
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    mv = model_version if model_version is not None else client.resolve(parsed)
    try:
        registered: RegisteredModel | None = client.get_registered_model(mv.name)
    except NotFound:
        registered = None
    logged, logged_link = _logged_model_link(client, mv)
    run, run_links = _run_links(client, mv, logged)
    experiment, experiment_link = _experiment_link(client, run, logged)
    git_commit, commit_link = _commit_link(run)
    datasets = _datasets(run) if run else []
    links = [logged_link, *run_links, experiment_link, commit_link, _dataset_link(run, datasets)]
    merged = {**(registered.tags if registered else {}), **mv.tags}
    for key in (tags.OWNER, tags.USE_CASE):
        value = merged.get(key, "").strip()
        links.append(Link(key, bool(value), value or f"tag '{key}' is not set on the registered model or version"))
    return Lineage(ref=str(parsed), name=mv.name, version=mv.version, model_version=mv, registered_model=registered,
                   logged_model=logged, run=run, experiment=experiment, git_commit=git_commit,
                   datasets=datasets, links=links)
