"""Back-end: Azure ML workspace artifacts (``azureml://`` locations), as the ``azureml-mlflow`` plugin reads them.

URIs (the plugin's own decomposition): ``azureml://<host>/.../experiments/<experiment>/runs/<run>/artifacts/<path>``
(or the short ``azureml://experiments/<experiment>/runs/<run>/artifacts/<path>``) for run and model
artifacts, and ``azureml://<any>/<origin>/<container>/<path>`` (e.g. ``azureml://artifacts/LocalUpload/<container>/...``)
for uploads outside a run. The workspace is always the tracking URI's (``MLFLOW_TRACKING_URI`` must be
the workspace's ``azureml://`` URI), as the plugin takes it from its tracking store.

Calls (``tests/specs/azureml/artifacts-api.json``): the run-history API
``/history/v1.0<workspace>/experiments/<experiment>/runs/<run>/artifacts``
(``/artifact/v2.0<workspace>/artifacts/<origin>/<container>`` outside a run) lists every artifact of
the run in pages, followed by their ``nextLink`` (same host only, never the same link twice);
``.../contentinfo?path=`` answers a SAS ``contentUri`` the file is read from (azure-storage-blob, in
parallel ranges for a large file: :mod:`.ranges`); the manifest is put as the plugin uploads: ``POST
.../batch/metadata`` creates the artifact and answers the SAS URL its bytes are written to.

Credentials: the tracking client's (an azure-identity token for the workspace cloud's resource
manager: the identities of `mlgate secrets` with ``MLGATE_IDENTITY``, else DefaultAzureCredential;
or ``MLFLOW_TRACKING_TOKEN``). A SAS URL is itself a secret: its query is registered as one and never
printed, and only ``https://<account>.blob.<the cloud's storage suffix>/...`` (or a loopback
emulator over http) is accepted: a content URL elsewhere would let that host choose the bytes hashed.

Limits: the API has no per-directory listing and gives no sizes, so one listing is the run's whole
artifact list (pages of what the service sends), filtered to the model's directory; a listed path
with ``..``, a backslash or an empty segment is refused.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from mlgate import redact
from mlgate.errors import Error, NetworkError, UsageError
from mlgate.http import read_body, same_origin
from mlgate.jsonvalue import Fields, parse_json
from mlgate.lineage.azure_clouds import PUBLIC
from mlgate.stores.azure_names import _loopback
from mlgate.stores.interface import ArtifactStore, Entry, Missing, Page, StoreError, parent_path
from mlgate.urls import safe_url

if TYPE_CHECKING:
    from mlgate.lineage.mlflow import MlflowClient

KIND = "Azure ML"
MAX_ANSWER_BYTES = 32 << 20
_WORKSPACE = re.compile(r".*(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices"
                        r"/workspaces/[^/]+)")
_RUN = re.compile(r"^.*?/([^/]+)/runs/([^/]+)(/artifacts(?:/.*)?)?$")  # the first /<experiment>/runs/<run>
_ROLE_HINT = ("grant the identity a role on the workspace that reads run artifacts (AzureML Data Scientist), "
              "with write access to seal; check MLGATE_IDENTITY or the token")


@dataclass(frozen=True)
class Where:
    """One Azure ML artifact location: the API container it is in and the path prefix inside it."""

    api: str  # https://<tracking host>/history/v1.0<workspace>/experiments/<e>/runs/<r>/artifacts, or the v2 form
    path: str  # artifact path prefix inside the container, no leading or trailing slash
    prefix: str  # the location URI's form of the container's top, for URIs given back
    shown: str  # as printed: "run <r> of experiment <e> in workspace <w>"


def parse_location(uri: str, tracking_base: str) -> Where:
    """The location ``uri`` names in the workspace of ``tracking_base`` (the rewritten tracking URI)."""
    base = urllib.parse.urlsplit(tracking_base)
    workspace = _WORKSPACE.match(base.path)
    if workspace is None:
        raise UsageError("MLFLOW_TRACKING_URI names no Azure ML workspace (/subscriptions/.../workspaces/<name>)",
                         hint="copy the workspace's MLflow tracking URI (az ml workspace show --query "
                         "mlflow_tracking_uri)")
    scope, host = workspace.group(1), f"{base.scheme}://{base.netloc}"
    workspace_name = scope.rsplit("/", 1)[1]
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "azureml" or parts.query or parts.fragment:
        raise _bad(uri)
    quote = urllib.parse.quote
    if run := _RUN.match(parts.path):
        experiment, run_id = urllib.parse.unquote(run.group(1)), urllib.parse.unquote(run.group(2))
        path = (run.group(3) or "/artifacts")[len("/artifacts"):]
        api = (f"{host}/history/v1.0{scope}/experiments/{quote(experiment, safe='')}/runs/"
               f"{quote(run_id, safe='')}/artifacts")
        prefix = uri[: len(uri) - len(path)].rstrip("/") if path else uri.rstrip("/").removesuffix("/artifacts")
        prefix = prefix if prefix.endswith("/artifacts") else prefix + "/artifacts"
        shown = f"run {run_id} of experiment {experiment} in workspace {workspace_name}"
    else:
        segments = parts.path.lstrip("/").split("/", 2)
        if len(segments) < 2 or not all(segments[:2]):
            raise _bad(uri)
        origin, container = segments[0], segments[1]
        path = "/" + segments[2] if len(segments) > 2 else ""
        api = f"{host}/artifact/v2.0{scope}/artifacts/{quote(origin, safe='')}/{quote(container, safe='')}"
        prefix = f"azureml://{parts.netloc}/{origin}/{container}"
        shown = f"container {container} ({origin}) in workspace {workspace_name}"
    path = urllib.parse.unquote(path).strip("/")
    if unsafe(path):
        raise _bad(uri)
    return Where(api, path, prefix, shown)


def unsafe(path: str) -> bool:
    """A path that could name something outside its root: ``..``, ``.``, empty segments, backslashes."""
    return "\\" in path or any(s in ("", ".", "..") for s in path.split("/")) if path else False


def _bad(uri: str) -> UsageError:
    return UsageError(f"not an Azure ML artifact location: {safe_url(uri)}",
                      hint="expected azureml://.../experiments/<experiment>/runs/<run>/artifacts/<path> or "
                      "azureml://artifacts/<origin>/<container>/<path>")


def open_azureml_store(uri: str, client: MlflowClient) -> AzureMLStore:
    """The store for ``uri``, read with ``client``'s workspace session (see the module)."""
    if client.azure_cloud is None:
        raise UsageError(f"the files are in an Azure ML workspace ({safe_url(uri)}), and MLFLOW_TRACKING_URI is "
                         "not that workspace's azureml:// URI", hint="export MLFLOW_TRACKING_URI=azureml://<region>."
                         "api.azureml.ms/mlflow/v1.0/subscriptions/.../workspaces/<name>")
    import os

    from mlgate.stores.azure_auth import identity_name

    identity = "MLFLOW_TRACKING_TOKEN" if os.environ.get("MLFLOW_TRACKING_TOKEN") else identity_name(os.environ)
    return AzureMLStore(client, parse_location(uri, client.base_url), identity)


class AzureMLStore(ArtifactStore):
    kind = KIND

    def __init__(self, client: MlflowClient, where: Where, identity: str) -> None:
        self.client, self.where, self.identity = client, where, identity
        self.cloud = client.azure_cloud or PUBLIC
        self._links: set[str] = set()  # nextLinks already followed: a service sending one twice never ends

    def _fail(self, what: str, hint: str | None = None) -> StoreError:
        return StoreError(KIND, self.where.shown, self.identity, what, hint=hint)

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.where.path, name.strip("/")) if p)

    # ------------------------------------------------------------------ the workspace API
    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> Fields:
        """One call to the workspace's artifact API, its JSON answer as typed fields (every failure exit 3)."""
        try:
            response = self.client.session.request(method, url, stream=True, **kwargs)
        except Error:
            raise
        except requests.exceptions.RequestException as exc:
            raise self._fail(f"{what}: cannot reach the workspace ({type(exc).__name__})",
                             "check the workspace host and the network; re-run") from None
        status = response.status_code
        if status in (401, 403):
            response.close()
            raise self._fail(f"{what}: access refused (HTTP {status})", _ROLE_HINT)
        if status == 404:
            response.close()
            raise Missing(f"{KIND} ({self.where.shown}): {what}: not found",
                          hint="the workspace holds no such artifact; check the location")
        if status == 429:
            response.close()
            raise self._fail(f"{what}: the workspace kept throttling (HTTP 429) after bounded retries",
                             "re-run later; nothing was passed")
        if status >= 400:
            response.close()
            raise self._fail(f"{what}: the workspace answered HTTP {status}")
        try:
            data = parse_json(read_body(response, what=f"{KIND} answer", limit=MAX_ANSWER_BYTES), what=KIND)
            if not isinstance(data, dict):
                raise NetworkError("not an object")
        except NetworkError:
            raise self._fail(f"{what}: the workspace answered something that is not its artifact API "
                             "(not a JSON object)") from None
        return Fields(data, f"{KIND} answer to {what}", error=NetworkError)

    def _typed(self, what: str, read: Any) -> Any:
        """``read()`` on a parsed answer; a field of the wrong type is exit 3 naming the call."""
        try:
            return read()
        except NetworkError as exc:
            raise self._fail(f"{what}: the workspace answered something that is not its artifact API "
                             f"({exc.message})") from None

    def _sas(self, url: str, what: str) -> str:
        """``url`` when it is a blob SAS URL of the workspace's cloud (its query registered as a secret)."""
        parts = urllib.parse.urlsplit(url)
        for value in (parts.query, *urllib.parse.parse_qs(parts.query).get("sig", [])):
            if value:
                redact.register(value)
        host = (parts.hostname or "").lower()
        blob_host = re.fullmatch(r"[a-z0-9]{3,24}\.blob\." + re.escape(self.cloud.storage_suffix), host)
        if not ((parts.scheme == "https" and blob_host) or (parts.scheme == "http" and _loopback(host))):
            raise self._fail(f"{what}: the workspace gave a content URL on {safe_url(url)}, which is not a blob "
                             f"of {self.cloud.name}'s storage (*.blob.{self.cloud.storage_suffix}); refused",
                             "the workspace's answer pointed elsewhere; check the workspace host")
        return url

    # ------------------------------------------------------------------ the interface
    def list(self, directory: str, page_token: str | None = None) -> Page:
        what = f"listing {directory or 'the model root'}"
        if page_token is None:
            answer = self._call("GET", self.where.api, what)
        else:
            if not same_origin(page_token, self.where.api):
                raise self._fail(f"{what}: the next page is on {safe_url(page_token)}, another host; refused")
            if page_token in self._links:
                raise self._fail(f"{what}: the workspace sent the same next page twice (paging that never ends)")
            self._links.add(page_token)
            answer = self._call("GET", page_token, what)
        items = self._typed(what, lambda: answer.objs("value") if answer.has("value") else [])
        paths = [self._typed(what, lambda item=item: item.text("path")) for item in items]
        link = self._typed(what, lambda: answer.opt_text("nextLink"))
        top = self._key(directory)
        entries = []
        for path in paths:
            if unsafe(path) or path.startswith("/"):
                raise self._fail(f"{what}: the workspace lists {path[:200]!r}, outside the artifact root")
            if top and not path.startswith(top + "/"):
                continue  # another artifact of the same run
            relative = path[len(self.where.path) + 1:] if self.where.path else path
            entries.append(Entry(relative, False, None))
        return Page(tuple(entries), link or None)

    def open(self, name: str) -> Iterator[bytes]:
        from azure.storage.blob import BlobClient

        from mlgate.stores.azure_blob import CLIENT_OPTIONS, OriginTransport, read_blob, storage_errors

        what = f"reading {name}"
        answer = self._call("GET", f"{self.where.api}/contentinfo", what, params={"path": self._key(name)})
        url = self._sas(self._typed(what, lambda: answer.text("contentUri")), what)
        label = f"{safe_url(url)} (from {self.where.shown})"
        identity = f"the SAS URL {KIND} gave"
        with storage_errors(label, identity, what):
            blob = BlobClient.from_blob_url(url, transport=OriginTransport(url, label, identity), **CLIENT_OPTIONS)
            yield from read_blob(blob, name)

    def put(self, name: str, data: bytes) -> str:
        from azure.storage.blob import BlobClient

        from mlgate.stores.azure_blob import CLIENT_OPTIONS, OriginTransport, storage_errors

        key = "/".join(p for p in (parent_path(self.where.path), name) if p)
        what = f"storing {name}"
        answer = self._call("POST", f"{self.where.api}/batch/metadata", what, json={"paths": [{"path": key}]})
        if answer.has("errors") and answer.raw("errors"):  # {path: ErrorResponse} of what it did not create
            raise self._fail(f"{what}: the workspace refused to create the artifact", _ROLE_HINT)
        info = self._typed(what, lambda: answer.obj("artifactContentInformation").obj(key).text("contentUri"))
        url = self._sas(info, what)
        label = f"{safe_url(url)} (from {self.where.shown})"
        with storage_errors(label, f"the SAS URL {KIND} gave", what):
            blob = BlobClient.from_blob_url(url, transport=OriginTransport(url, label, KIND), **CLIENT_OPTIONS)
            blob.upload_blob(data, overwrite=True)
        return f"{self.where.prefix}/{key}"
