"""A model version's files in the MLflow artifact store: list them, hash them while streaming,
and keep the sealed manifest where it can be fetched again.

Listing costs one request per directory page (never one per file); each file is then one
streamed download, hashed as it arrives (nothing is written to disk).

Where the manifest lives (and why): MLflow stores no content hash of model files, and tag
values are size-limited (100,000 characters on open-source MLflow, less on some hosted
services) while a manifest grows with the file count (about 130 bytes per file). So the
manifest's canonical bytes are stored as an artifact next to -- never inside -- the model
directory, at ``<parent of the model root>/mlgate-manifests/<sha256>.json`` (for a ``runs:/``
source, the parent of the run's artifact root, where no version registered from that run can
contain it; content addressed, so a re-seal never overwrites an older one), and the version gets small tags:
``mlgate.manifest.sha256`` (the digest every check compares with), ``mlgate.manifest.uri``,
``mlgate.manifest.files`` and ``mlgate.manifest.bytes``. A fetched manifest is only trusted when
its digest equals the tag.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from mlgate.errors import EvaluationError, InvalidInputError, NetworkError, RefusedError
from mlgate.integrity.hashing import hash_chunks, hash_chunks_sharded
from mlgate.integrity.manifest import MAX_MANIFEST_BYTES, Comparison, Manifest, check_name
from mlgate.integrity.progress import Progress
from mlgate.integrity.serialization import FILES, SHARDS, Serialization, shard_name
from mlgate.lineage.chain import logged_model_id
from mlgate.lineage.mlflow import MAX_PAGES, MlflowClient, NotFound
from mlgate.lineage.records import LoggedModel, ModelVersion
from mlgate.stores.azure_names import shown
from mlgate.stores.interface import ArtifactStore, Missing, open_store, split_location
from mlgate.stores.mlflow_proxy import ProxyStore
from mlgate.tags import MANIFEST_BYTES as TAG_BYTES
from mlgate.tags import MANIFEST_FILES as TAG_FILES
from mlgate.tags import MANIFEST_SHA256 as TAG_SHA256
from mlgate.tags import MANIFEST_URI as TAG_URI
from mlgate.tags import RESEALED as TAG_RESEALED
from mlgate.tags import SEALED_AT as TAG_SEALED_AT
from mlgate.tags import SEALED_BY as TAG_SEALED_BY

__all__ = ["TAG_BYTES", "TAG_FILES", "TAG_RESEALED", "TAG_SEALED_AT", "TAG_SEALED_BY", "TAG_SHA256", "TAG_URI"]
MANIFEST_DIR = "mlgate-manifests"
DOWNLOAD_WORKERS = 8
MAX_DIRECTORIES = 100_000  # directories under one model
MAX_DIR_DEPTH = 64  # nesting levels under one model
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RUNS_SOURCE = re.compile(r"^runs:/([^/]+)/?(.*)$")


@dataclass(frozen=True)
class ModelFiles:
    """Where a version's files are: the store opened on the model's root, and for MLflow 3 the logged model."""

    store: ArtifactStore
    root: str  # the location: a path under the mlflow-artifacts proxy, or the store URI
    model_id: str | None
    #: where the manifest goes (next to this location): the model root, or for a ``runs:/`` source the
    #: run's artifact root, so that no other version registered from the same run contains it
    manifest_store: ArtifactStore | None = None
    manifest_root: str | None = None

    @property
    def manifest_dir(self) -> str:
        parent = posixpath.dirname((self.manifest_root or self.root).rstrip("/"))
        return f"{parent}/{MANIFEST_DIR}" if parent else MANIFEST_DIR


def locate(
    client: MlflowClient, model_version: ModelVersion, *, logged_model: LoggedModel | None = None
) -> ModelFiles:
    """Open the store holding the version's files (``logged_model``: already fetched)."""
    source = model_version.source or ""
    mid = logged_model_id(model_version)
    run_uri = ""
    if mid:
        logged = logged_model if logged_model is not None else client.get_logged_model(mid)
        uri = logged.artifact_uri or ""
    elif match := _RUNS_SOURCE.match(source):
        run_uri = (client.get_run(match.group(1)).info.artifact_uri or "").rstrip("/")
        uri = run_uri + ("/" + match.group(2).strip("/") if match.group(2).strip("/") else "")
    else:
        uri = source
    what = f"the files of {model_version.label}"
    store = open_store(uri, client, what=what, model_id=mid)
    if store is None:
        raise EvaluationError(
            f"the files of {model_version.label} are at {shown(uri) if uri else 'no location'}, "
            "which this MLflow server does not proxy and no artifact store of mlgate reads",
            hint="mlgate reads mlflow-artifacts:/ (--serve-artifacts), Azure Blob / ADLS Gen2, S3 and Azure ML "
            "(azureml://) locations; "
            "otherwise seal the downloaded directory with `mlgate seal DIR` and verify with --manifest",
        )
    root = store.root if isinstance(store, ProxyStore) else uri.rstrip("/")
    beside = open_store(run_uri, client, what=what) if run_uri and run_uri != uri.rstrip("/") else None
    if beside is None:
        return ModelFiles(store=store, root=root, model_id=mid)
    manifest_root = beside.root if isinstance(beside, ProxyStore) else run_uri
    return ModelFiles(store=store, root=root, model_id=mid, manifest_store=beside, manifest_root=manifest_root)


def _listing(where: ModelFiles, directory: str) -> list[tuple[str, bool, int | None]]:
    """``(path relative to the root, is_dir, size)`` of one directory's entries (every page)."""
    entries: list[tuple[str, bool, int | None]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = where.store.list(directory, token)
        entries.extend((e.path, e.is_dir, e.size) for e in page.entries)
        token = page.next_token
        if not token:
            break
    else:
        raise NetworkError(f"{where.store.kind} lists more than {MAX_PAGES} pages for directory {directory!r} "
                           "(limit); nothing was passed", hint="check the artifact store")
    for path, _, _ in entries:
        why = check_name(path)
        if why:
            raise RefusedError(f"MLflow lists an unsafe artifact name {path!r}: {why}")
        if directory and not path.startswith(directory + "/"):
            raise NetworkError(f"MLflow lists {path!r} inside directory {directory!r}, which does not hold it "
                               "(a directory listing that contains itself?); nothing was passed",
                               hint="check the tracking server and its artifact store")
    return entries


def list_files(client: MlflowClient | None, where: ModelFiles) -> dict[str, int]:
    """``{relative name: size}`` of every file, one listing request per directory page.

    Bounded: a directory listed twice (a cycle), nesting deeper than :data:`MAX_DIR_DEPTH` or more
    than :data:`MAX_DIRECTORIES` directories is exit 3 naming the limit.
    """
    files: dict[str, int] = {}
    pending = [""]
    seen: set[str] = set()
    while pending:
        directory = pending.pop()
        if directory in seen:
            raise NetworkError(f"MLflow lists directory {directory!r} twice (a directory cycle); nothing was passed",
                               hint="check the tracking server and its artifact store")
        seen.add(directory)
        if len(seen) > MAX_DIRECTORIES or directory.count("/") >= MAX_DIR_DEPTH:
            limit = (f"more than {MAX_DIRECTORIES} directories" if len(seen) > MAX_DIRECTORIES
                     else f"directories nested deeper than {MAX_DIR_DEPTH} levels")
            raise NetworkError(f"MLflow lists {limit} under the model (limit; a directory that contains "
                               "itself?); nothing was passed", hint="check the tracking server and its artifact store")
        for path, is_dir, size in _listing(where, directory):
            if is_dir:
                pending.append(path)
            else:
                files[path] = size if size is not None else -1
    return files


def hash_files(
    client: MlflowClient | None, where: ModelFiles, names: list[str], *, workers: int = DOWNLOAD_WORKERS,
    advance: Callable[[int], None] | None = None, sizes: dict[str, int] | None = None,
    shard_size: int | None = None,
) -> tuple[dict[str, str], int]:
    """Stream and hash every file (in parallel); ``({name: sha256}, total bytes)``.

    With ``shard_size``, each file's pieces instead (``{PATH:START:END: sha256}``, model-signing's
    ``shards``). When the listing gave a file's size, a download of another length is a failure
    (exit 3): a cut-off transfer must never be sealed or compared as if it were the file.
    """

    def one(name: str) -> tuple[dict[str, str], int]:
        if shard_size is None:
            digest, size = hash_chunks(where.store.open(name), advance)
            found = {name: digest}
        else:
            pieces, size = hash_chunks_sharded(where.store.open(name), shard_size, advance)
            found = {shard_name(name, start, end): digest for start, end, digest in pieces}
        listed = (sizes or {}).get(name, -1)
        if listed >= 0 and listed != size:
            raise NetworkError(f"download of {name} gave {size} bytes, the listing says {listed}",
                               hint="re-run; if it persists, check the artifact store")
        return found, size

    digests: dict[str, str] = {}
    total = 0
    if not names:
        return digests, 0
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(names))), thread_name_prefix="mlgate-dl")
    try:
        futures = [pool.submit(one, n) for n in names]
        for future in as_completed(futures):
            found, size = future.result()
            digests.update(found)
            total += size
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return digests, total


def seal_from_store(
    client: MlflowClient, model_version: ModelVersion, *, ci: bool = False,
    logged_model: LoggedModel | None = None, serialization: Serialization | None = None,
) -> tuple[Manifest, ModelFiles]:
    """The manifest of the version's files as the artifact store holds them now (model-signing v1.0 layout).

    ``serialization``: files (default) or shards, and the paths it ignores (a recorded manifest's).
    """
    chosen = serialization or Serialization.of(FILES)
    where = locate(client, model_version, logged_model=logged_model)
    listing = list_files(client, where)
    if chosen.ignore_paths:
        listing = {name: size for name, size in listing.items() if not chosen.ignored(name)}
    if not listing:
        raise RefusedError(
            f"model version {model_version.label} has no files in MLflow",
            hint="log the model's files before registering it",
        )
    total_listed = sum(v for v in listing.values() if v > 0)
    with Progress(total_listed, label="downloading and hashing", ci=ci) as progress:
        digests, total = hash_files(client, where, sorted(listing), sizes=listing, advance=progress.advance,
                                    shard_size=chosen.shard_size if chosen.method == SHARDS else None)
    return Manifest.of_resources(digests, total, chosen, model_version.name), where


def recorded_digest(model_version: ModelVersion) -> str | None:
    """The manifest digest recorded on the version, or None when it was never sealed."""
    value = model_version.tags.get(TAG_SHA256, "").strip()
    return value or None


def store_manifest(client: MlflowClient, where: ModelFiles, manifest: Manifest) -> str:
    """Upload the manifest's canonical bytes next to the model, in its store; return its URI."""
    store = where.manifest_store or where.store
    return store.put(f"{MANIFEST_DIR}/{manifest.digest}.json", manifest.canonical())


def load_manifest(client: MlflowClient, model_version: ModelVersion) -> Manifest:
    """The manifest recorded on the version, checked against its digest tag.

    Not sealed, or a stored manifest that is missing or differs from the digest tag: refused (exit 1).
    """
    tags = model_version.tags
    label = model_version.label
    digest = tags.get(TAG_SHA256, "").strip()
    if not digest:
        raise RefusedError(f"model version {label} was never sealed (no {TAG_SHA256} tag)",
                           hint=f"run `mlgate seal --model models:/{label}` when the model is registered")
    if not _SHA256.match(digest):
        raise RefusedError(f"model version {label}: tag {TAG_SHA256} is not a SHA-256 digest")
    uri = tags.get(TAG_URI, "")
    directory, name = split_location(uri) if uri else ("", "")
    store = open_store(directory, client, what=f"the sealed manifest of {label}") if name else None
    if store is None:
        raise RefusedError(f"model version {label} has no retrievable manifest ({TAG_URI} is missing or not in "
                           "an artifact store mlgate reads)", hint="re-seal it with `mlgate seal --model`")
    try:
        data = store.read(name, max_bytes=MAX_MANIFEST_BYTES)
    except (NotFound, Missing):
        raise RefusedError(f"the sealed manifest of {label} is missing from the artifact store ({uri})",
                           hint="the store was altered after sealing; investigate before releasing") from None
    try:
        manifest = Manifest.parse(data, source=f"the stored manifest of {label}")
    except InvalidInputError as exc:  # what the store holds is not the manifest it was given: tampering
        raise RefusedError(f"{exc.message} (the seal says sha256:{digest})",
                           hint="the manifest was replaced after sealing; investigate before releasing") from None
    if manifest.digest != digest:
        raise RefusedError(
            f"the stored manifest of {label} does not match its seal: expected sha256:{digest}, "
            f"got sha256:{manifest.digest}",
            hint="the manifest was altered after sealing; investigate before releasing",
        )
    return manifest


def load_sealed_manifest(ref: str) -> tuple[ModelVersion, Manifest]:
    """``ref``'s model version (``MLFLOW_TRACKING_URI``) and its recorded manifest, checked against its seal."""
    from mlgate.refs import ModelRef

    client = MlflowClient.from_env()
    version = client.resolve(ModelRef.parse(ref))
    return version, load_manifest(client, version)


def without_download_marker(directory: str, model_version: ModelVersion, manifest: Manifest,
                            result: Comparison) -> tuple[Comparison, bool]:
    """``result`` without MLflow's download marker when it is the only kind of extra it can be; (result, dropped)."""
    extra = [(n, d) for n, d in result.extra if n != REGISTERED_MODEL_META]
    if (len(extra) == len(result.extra) or REGISTERED_MODEL_META in manifest.subjects
            or not is_mlflow_download_marker(directory, model_version)):
        return result, False
    return dataclasses.replace(result, extra=extra, checked=result.checked - 1), True


REGISTERED_MODEL_META = "registered_model_meta"


def is_mlflow_download_marker(directory: str, model_version: ModelVersion) -> bool:
    """Whether ``DIR/registered_model_meta`` is exactly the file MLflow's client writes on download.

    ``mlflow.artifacts.download_artifacts("models:/NAME/VERSION")`` adds this small YAML file
    (``model_name``, ``model_version``) to the downloaded model's root; it is not part of the
    registered files. It is accepted only when it is a regular file holding these two keys and
    nothing else, naming this very version, or both null (what MLflow 3 writes when the download
    was ``models:/m-<model id>``).
    """
    import os
    import stat

    import yaml

    path = os.path.join(directory, REGISTERED_MODEL_META)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            return False
        with open(path, encoding="utf-8") as stream:
            doc = yaml.safe_load(stream)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(doc, dict) or set(doc) != {"model_name", "model_version"}:
        return False
    if doc["model_name"] is None and doc["model_version"] is None:  # MLflow 3 downloads of models:/m-<id>
        return True
    return str(doc["model_name"]) == model_version.name and str(doc["model_version"]) == model_version.version
