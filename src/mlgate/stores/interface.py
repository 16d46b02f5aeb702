"""The artifact-store plug point: one interface, one module per back-end, chosen by the location URI.

A store is opened on one location (a directory URI, e.g. a model's root) and offers:

* :meth:`ArtifactStore.list`: one page of one directory (listing costs pages, never one request
  per file); entries carry POSIX paths relative to the location;
* :meth:`ArtifactStore.open`: a streamed read of one file (chunks, bounded memory, no temporary
  copy on disk);
* :meth:`ArtifactStore.put`: a small file (the sealed manifest) next to the location, in the
  same store; returns the URI it can be read back from.

Back-ends (:func:`open_store` picks one by scheme; heavy SDK imports happen only there):
``mlflow-artifacts:`` and the tracking server's own proxy URLs (:mod:`.mlflow_proxy`),
``wasbs://``, ``wasb://``, ``abfss://``, ``abfs://`` and ``https://<account>.blob|dfs.core.windows.net``
(:mod:`.azure_blob`), ``s3://`` (:mod:`.s3`, with the ``mlgate[s3]`` extra), ``azureml://`` run and
upload artifacts of an Azure ML workspace (:mod:`.azureml`). Any failure of a
store is a :class:`StoreError` (exit 3) naming the store,
the container or bucket and the identity used, never a credential.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgate.errors import EvaluationError, RefusedError

if TYPE_CHECKING:
    from mlgate.lineage.mlflow import MlflowClient

__all__ = ["ArtifactStore", "Entry", "Missing", "Page", "StoreError", "open_store", "split_location"]


@dataclass(frozen=True)
class Entry:
    """One entry of a directory listing: ``path`` relative to the store's location (POSIX)."""

    path: str
    is_dir: bool
    size: int | None


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_token`` is None on the last page."""

    entries: tuple[Entry, ...]
    next_token: str | None


class StoreError(EvaluationError):
    """A store could not be read or written (exit 3); the message names store, container and identity."""

    def __init__(self, store: str, container: str, identity: str, what: str, *, hint: str | None = None) -> None:
        super().__init__(f"{store} ({container}, as {identity}): {what}",
                         hint=hint or "check the store's address, that it is reachable, and the identity's access "
                         "to it; nothing was passed")


class Missing(RefusedError):
    """The file asked for is not in the store (for a sealed manifest: the store was altered, exit 1)."""


class ArtifactStore(ABC):
    """One location in one artifact store."""

    #: what the store is, as printed ("Azure Blob", "the MLflow artifact proxy")
    kind: str = "artifact store"

    @abstractmethod
    def list(self, directory: str, page_token: str | None = None) -> Page:
        """One page of ``directory`` ("" for the location itself); entries relative to the location."""

    @abstractmethod
    def open(self, name: str) -> Iterator[bytes]:
        """The bytes of file ``name`` (relative to the location), streamed in chunks."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> str:
        """Store ``data`` at ``name`` relative to the directory holding the location; its URI."""

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """A small file in memory, refusing more than ``max_bytes`` (exit 3)."""
        buffer = bytearray()
        for chunk in self.open(name):
            buffer += chunk
            if len(buffer) > max_bytes:
                raise EvaluationError(f"{self.kind}: {name} is larger than {max_bytes} bytes")
        return bytes(buffer)


def split_location(uri: str) -> tuple[str, str]:
    """``(directory URI, file name)`` of a file's URI."""
    head, _, tail = uri.rstrip("/").rpartition("/")
    return head, tail


def parent_path(path: str) -> str:
    """The directory holding ``path`` ("" at the top)."""
    return posixpath.dirname(path.rstrip("/"))


def open_store(uri: str, client: MlflowClient, *, what: str, model_id: str | None = None) -> ArtifactStore | None:
    """The store holding location ``uri`` (``what`` it holds, for messages), or None when no back-end reads it.

    ``client``: the tracking server (its proxy, and the origin check of ``http(s)`` locations);
    ``model_id``: the MLflow 3 logged model the location belongs to (the proxy lists it by id).
    An ``http(s)`` location is the proxy when it is on the tracking server's origin, a blob store
    when it names one, and otherwise refused (exit 3): a location elsewhere would let that host
    choose the bytes that are hashed.
    """
    from mlgate.http import same_origin

    scheme = urllib.parse.urlsplit(uri).scheme.lower() if ":" in uri else ""
    if scheme in ("wasbs", "wasb", "abfss", "abfs") or (
        scheme in ("http", "https") and not same_origin(uri, client.base_url) and _is_blob_url(uri)
    ):
        from mlgate.stores.azure_blob import open_blob_store

        return open_blob_store(uri)
    if scheme == "s3":
        from mlgate.stores.s3 import open_s3_store

        return open_s3_store(uri)
    if scheme == "azureml":
        from mlgate.stores.azureml import open_azureml_store

        return open_azureml_store(uri, client)
    if scheme in ("mlflow-artifacts", "http", "https"):
        from mlgate.stores.mlflow_proxy import open_proxy_store

        return open_proxy_store(uri, client, what=what, model_id=model_id)
    return None


def _is_blob_url(uri: str) -> bool:
    from mlgate.stores.azure_names import is_blob_url

    return is_blob_url(uri)
