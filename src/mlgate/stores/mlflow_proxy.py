"""Back-end: the tracking server's ``mlflow-artifacts`` proxy (``mlflow server --serve-artifacts``).

URIs: ``mlflow-artifacts:/<path>`` and ``http(s)://<tracking server>/api/2.0/mlflow-artifacts/artifacts/<path>``
(only on the tracking server's own origin). Credentials: the tracking server's (``MLFLOW_TRACKING_*``).
An MLflow 3 logged model is listed through ``/logged-models/<id>/artifacts/directories``, a run's
directory through the proxy's list call; the client follows the pages of one directory itself, so
a :class:`~mlgate.stores.interface.Page` here is the whole directory. Files are streamed through the
proxy; the manifest is uploaded with a PUT to it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlgate.stores.interface import ArtifactStore, Entry, Page, parent_path

if TYPE_CHECKING:
    from mlgate.lineage.mlflow import MlflowClient


def open_proxy_store(uri: str, client: MlflowClient, *, what: str, model_id: str | None = None) -> ProxyStore | None:
    """The proxy location of ``uri``; None when it is not proxied; another origin is exit 3."""
    root = client.proxied(uri, what=what)
    return ProxyStore(client, root, model_id=model_id) if root is not None else None


class ProxyStore(ArtifactStore):
    kind = "the MLflow artifact proxy"

    def __init__(self, client: MlflowClient, root: str, *, model_id: str | None = None) -> None:
        self.client = client
        self.root = root.strip("/")
        self.model_id = model_id

    def list(self, directory: str, page_token: str | None = None) -> Page:
        if self.model_id:
            entries = [Entry(e.path, e.is_dir, e.file_size)
                       for e in self.client.list_logged_model_artifacts(self.model_id, directory or None)]
        else:
            base = f"{self.root}/{directory}".rstrip("/")
            entries = [Entry(posixpath.join(directory, e.path), e.is_dir, e.file_size)
                       for e in self.client.list_proxied_artifacts(base)]
        return Page(tuple(entries), None)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}" if name else self.root

    def open(self, name: str) -> Iterator[bytes]:
        return self.client.stream_artifact(self._path(name))

    def put(self, name: str, data: bytes) -> str:
        parent = parent_path(self.root)
        path = f"{parent}/{name}" if parent else name
        self.client.upload_artifact(path, data)
        return f"mlflow-artifacts:/{path}"

    def read(self, name: str, *, max_bytes: int) -> bytes:
        return self.client.download_artifact(self._path(name), max_bytes=max_bytes)
