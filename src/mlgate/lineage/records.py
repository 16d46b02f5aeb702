"""MLflow's answers as frozen records, each parsed and type-checked once, at the edge.

:class:`mlgate.lineage.mlflow.MlflowClient` turns every answer into one of these with
``Record.from_json(value, where)``; a field of the wrong type (a metric sent as ``true``,
``run.info`` as a string, tags that are not a list) raises :class:`mlgate.errors.NetworkError`
(exit 3) naming the field and the answer. Nothing past this module reads MLflow JSON.

Only the fields mlgate uses are kept. Identifiers MLflow documents as strings (a version, a run
or experiment id) are also accepted as JSON integers and kept as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mlgate.jsonvalue import Fields

#: how protobuf's JSON writes a non-finite double; such a metric is not a usable value
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


def ident(fields: Fields, key: str) -> str | None:
    """An identifier that MLflow sends as a string (some servers as a number): as text, or None."""
    value = fields.raw(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(fields.integer(key))
    return fields.opt_text(key)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (``model_version`` of ``model-versions/get`` and friends)."""

    name: str
    version: str
    source: str | None = None
    run_id: str | None = None
    status: str | None = None
    user_id: str | None = None
    model_id: str | None = None
    storage_location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    @classmethod
    def from_json(cls, value: object, where: str, *, path: str = "") -> ModelVersion:
        f = Fields(value, where, path=path)
        return cls(
            name=f.text("name"),
            version=ident(f, "version") or "",
            source=f.opt_text("source"),
            run_id=f.opt_text("run_id"),
            status=f.opt_text("status"),
            user_id=f.opt_text("user_id"),
            model_id=f.opt_text("model_id"),
            storage_location=f.opt_text("storage_location"),
            tags=f.tags(),
            aliases=tuple(f.texts("aliases")),
        )


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model (``registered_model`` of ``registered-models/get``)."""

    name: str
    tags: dict[str, str]
    aliases: dict[str, str]  # alias -> version

    @classmethod
    def from_json(cls, value: object, where: str, *, path: str = "") -> RegisteredModel:
        f = Fields(value, where, path=path)
        aliases: dict[str, str] = {}
        for item in f.objs("aliases"):
            aliases[item.text("alias")] = ident(item, "version") or ""
        return cls(name=f.text("name"), tags=f.tags(), aliases=aliases)


@dataclass(frozen=True)
class RunInfo:
    run_id: str | None
    experiment_id: str | None
    status: str | None
    lifecycle_stage: str | None
    artifact_uri: str | None
    user_id: str | None

    @classmethod
    def parse(cls, f: Fields) -> RunInfo:
        return cls(
            run_id=f.opt_text("run_id") or f.opt_text("run_uuid"),
            experiment_id=ident(f, "experiment_id"),
            status=f.opt_text("status"),
            lifecycle_stage=f.opt_text("lifecycle_stage"),
            artifact_uri=f.opt_text("artifact_uri"),
            user_id=f.opt_text("user_id"),
        )


@dataclass(frozen=True)
class RunData:
    """A run's latest metrics (finite floats), params and tags."""

    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    @classmethod
    def parse(cls, f: Fields) -> RunData:
        metrics: dict[str, float] = {}
        for item in f.objs("metrics"):
            key = item.text("key")
            value = item.raw("value")
            if isinstance(value, str) and value in _NON_FINITE:
                metrics.pop(key, None)  # NaN/inf: no usable value, so a rule on it cannot pass
                continue
            metrics[key] = item.number("value")
        return cls(metrics=metrics, params=f.tags("params"), tags=f.tags())


@dataclass(frozen=True)
class DatasetInput:
    """One of a run's dataset inputs (``inputs.dataset_inputs[]``)."""

    tags: dict[str, str]
    name: str
    digest: str
    source: str
    source_type: str

    @classmethod
    def parse(cls, f: Fields) -> DatasetInput:
        dataset = f.opt_obj("dataset")
        return cls(
            tags=f.tags(),
            name=dataset.opt_text("name", "") or "",
            digest=dataset.opt_text("digest", "") or "",
            source=dataset.opt_text("source", "") or "",
            source_type=dataset.opt_text("source_type", "") or "",
        )

    @property
    def source_location(self) -> str:
        """MLflow stores a dataset's source as JSON (``{"uri": ...}``); its location when it has one."""
        try:
            doc = json.loads(self.source)
        except ValueError:
            return self.source
        if isinstance(doc, dict):
            for key in ("uri", "url", "path", "table_name", "repo_id"):
                found = doc.get(key)
                if isinstance(found, str) and found:
                    return found
        return self.source


@dataclass(frozen=True)
class Run:
    """A run (``run`` of ``runs/get``): info, data and dataset inputs."""

    info: RunInfo
    data: RunData
    inputs: tuple[DatasetInput, ...] = ()

    @classmethod
    def from_json(cls, value: object, where: str, *, path: str = "") -> Run:
        f = Fields(value, where, path=path)
        inputs = f.opt_obj("inputs")
        return cls(
            info=RunInfo.parse(f.obj("info")),
            data=RunData.parse(f.opt_obj("data")),
            inputs=tuple(DatasetInput.parse(item) for item in inputs.objs("dataset_inputs")),
        )


@dataclass(frozen=True)
class LoggedModel:
    """An MLflow 3 logged model (``model`` of ``logged-models/{id}``; the fields of its ``info``)."""

    model_id: str
    name: str | None
    experiment_id: str | None
    source_run_id: str | None
    artifact_uri: str | None
    tags: dict[str, str]

    @classmethod
    def from_json(cls, value: object, where: str, *, path: str = "") -> LoggedModel:
        info = Fields(value, where, path=path).obj("info")
        return cls(
            model_id=info.text("model_id"),
            name=info.opt_text("name"),
            experiment_id=ident(info, "experiment_id"),
            source_run_id=info.opt_text("source_run_id"),
            artifact_uri=info.opt_text("artifact_uri"),
            tags=info.tags(),
        )


@dataclass(frozen=True)
class Experiment:
    """An experiment (``experiment`` of ``experiments/get``)."""

    experiment_id: str
    name: str | None
    lifecycle_stage: str | None
    artifact_location: str | None
    tags: dict[str, str]

    @classmethod
    def from_json(cls, value: object, where: str, *, path: str = "") -> Experiment:
        f = Fields(value, where, path=path)
        return cls(
            experiment_id=ident(f, "experiment_id") or "",
            name=f.opt_text("name"),
            lifecycle_stage=f.opt_text("lifecycle_stage"),
            artifact_location=f.opt_text("artifact_location"),
            tags=f.tags(),
        )


@dataclass(frozen=True)
class FileInfo:
    """One entry of an artifact directory listing."""

    path: str
    is_dir: bool
    file_size: int | None

    @classmethod
    def parse(cls, f: Fields) -> FileInfo:
        return cls(path=f.text("path"), is_dir=f.flag("is_dir", False), file_size=f.opt_integer("file_size"))
