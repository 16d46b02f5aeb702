"""A loopback Azure ML workspace artifact API (run history), its file bytes in Azurite behind real SAS URLs.

Routes and shapes are those of ``tests/specs/azureml/artifacts-api.json`` (recorded from the
``azureml-mlflow`` plugin's generated REST client): every answer the fake sends is checked against
the definitions there, and every request's query against the operation's parameters, so a test
cannot pass on a shape the service does not have. A run's artifacts are blobs
``ExperimentRun/dcid.<run>/<path>`` of one Azurite container; ``contentinfo`` and ``batch/metadata``
answer SAS URLs made with azure-storage-blob's ``generate_blob_sas`` (Azurite checks them).

Hostile switches: ``fault`` (an HTTP status, or ``"garbage"``) answers every API call that way;
``content_uri`` replaces the SAS URL with another; ``extra_paths`` adds listed paths; ``page_size``
splits the listing into pages linked by ``nextLink``; ``next_link`` replaces every page's link.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

SPEC = json.loads((Path(__file__).resolve().parents[1] / "specs" / "azureml" / "artifacts-api.json").read_text())
WORKSPACE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
RUN = "/history/v1.0" + WORKSPACE + "/experiments/{experiment}/runs/{run}/artifacts"
ORIGIN = "ExperimentRun"
_SCALARS = {"str": str, "int": int, "bool": bool, "iso-8601": str}


def check(value: Any, kind: str, where: str = "answer") -> None:
    """``value`` is of the spec's type ``kind`` (``str``, ``[T]``, ``{T}`` or a definition); AssertionError if not."""
    if kind.startswith("[") and kind.endswith("]"):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            check(item, kind[1:-1], f"{where}[{i}]")
    elif kind.startswith("{") and kind.endswith("}"):
        assert isinstance(value, dict), f"{where}: expected an object"
        for key, item in value.items():
            check(item, kind[1:-1], f"{where}.{key}")
    elif kind in _SCALARS:
        assert isinstance(value, _SCALARS[kind]), f"{where}: expected {kind}"
    else:
        definition = SPEC["definitions"][kind]
        assert isinstance(value, dict), f"{where}: expected a {kind} object"
        for key in definition["required"]:
            assert key in value, f"{where}: {kind} requires {key}"
        for key, item in value.items():
            assert key in definition["properties"], f"{where}: {kind} has no property {key}"
            check(item, definition["properties"][key], f"{where}.{key}")


class FakeAzureML:
    """The fake workspace; ``files[(experiment, run)]`` are the run's artifact paths (bytes in Azurite)."""

    def __init__(self, connection_string: str, container: str = "azureml") -> None:
        from azure.storage.blob import ContainerClient

        self.blobs = ContainerClient.from_connection_string(connection_string, container)
        if not self.blobs.exists():
            self.blobs.create_container()
        self.key = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)["AccountKey"]
        self.token = ""  # the bearer token every call must carry
        self.fault: int | str | None = None
        self.content_uri: str | None = None
        self.extra_paths: list[str] = []
        self.page_size = 1000
        self.next_link: str | None = None
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self.server = FakeServer()
        op = SPEC["operations"]
        for name, handler in (("run_artifacts.list_in_container", self._list),
                              ("run_artifacts.get_content_information", self._content),
                              ("run_artifacts.batch_create_empty_artifacts", self._create)):
            template = op[name]["path"].replace("{subscriptionId}", "{sub}").replace(
                "{resourceGroupName}", "{rg}").replace("{workspaceName}", "{ws}").replace(
                "{experimentName}", "{experiment}").replace("{runId}", "{run}")
            self.server.add(op[name]["method"], template, self._guard(name, handler), name=name)

    # ------------------------------------------------------------------ set-up
    def tracking_base(self, workspace: str = "ws") -> str:
        """What the client's base URL is (the rewritten tracking URI)."""
        return f"{self.server.url}/mlflow/v2.0/subscriptions/sub/resourceGroups/rg/providers/" \
               f"Microsoft.MachineLearningServices/workspaces/{workspace}"

    def location(self, experiment: str, run: str, path: str = "") -> str:
        """The ``azureml://`` artifact URI MLflow reports for the run (and ``path`` in it)."""
        base = (f"azureml://{self.server.url.removeprefix('http://')}/mlflow/v2.0/subscriptions/sub/resourceGroups/rg/"
                f"providers/Microsoft.MachineLearningServices/workspaces/ws/experiments/{experiment}/runs/{run}/artifacts")
        return f"{base}/{path}" if path else base

    def put(self, run: str, path: str, data: bytes) -> None:
        self.blobs.upload_blob(f"{ORIGIN}/dcid.{run}/{path}", data, overwrite=True)

    def delete(self, run: str, path: str) -> None:
        self.blobs.delete_blob(f"{ORIGIN}/dcid.{run}/{path}")

    def paths(self, run: str) -> list[str]:
        prefix = f"{ORIGIN}/dcid.{run}/"
        return sorted(b.name[len(prefix):] for b in self.blobs.list_blobs(name_starts_with=prefix))

    # ------------------------------------------------------------------ the API
    def _guard(self, name: str, handler: Callable[[Request], Any]) -> Callable[[Request], Reply]:
        allowed = set(SPEC["operations"][name]["query"])

        def answer(request: Request) -> Reply:
            if request.header("Authorization") != f"Bearer {self.token}":
                return Reply(401, {"error": {"code": "UserError", "message": "Unauthorized"}})
            unknown = set(request.query) - allowed
            if unknown:
                self._violation(f"{name}: query parameters {sorted(unknown)} are not in the spec")
            if self.fault == "garbage":
                return Reply(200, b"<html><body>sign in to continue</body></html>", {"Content-Type": "text/html"})
            if isinstance(self.fault, int):
                error = {"error": {"code": "ServiceError", "message": f"fault {self.fault}"}}
                check(error, "ErrorResponse")
                return Reply(self.fault, error, {"Retry-After": "0"} if self.fault == 429 else {})
            body = handler(request)
            try:
                check(body, SPEC["operations"][name]["response"], name)
            except AssertionError as exc:
                self._violation(str(exc))
            return Reply(200, body)

        return answer

    def _violation(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)

    def _artifact(self, run: str, path: str) -> dict[str, Any]:
        return {"artifactId": f"{ORIGIN}/dcid.{run}/{path}", "origin": ORIGIN, "container": f"dcid.{run}",
                "path": path, "etag": '"0x1"', "createdTime": dt.datetime.now(dt.timezone.utc).isoformat()}

    def _list(self, request: Request) -> dict[str, Any]:
        run = request.params["run"]
        paths = self.paths(run) + self.extra_paths
        start = int((request.query.get("continuationToken") or ["0"])[0])
        page = paths[start:start + self.page_size]
        body: dict[str, Any] = {"value": [self._artifact(run, p) for p in page]}
        if start + self.page_size < len(paths) or self.next_link:
            token = str(start + self.page_size)
            body["continuationToken"] = token
            body["nextLink"] = self.next_link or f"{self.server.url}{request.path}?continuationToken={token}"
        return body

    def _sas_url(self, run: str, path: str, *, write: bool) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        name = f"{ORIGIN}/dcid.{run}/{path}"
        permission = BlobSasPermissions(read=True, create=write, write=write)
        sas = generate_blob_sas(self.blobs.account_name, self.blobs.container_name, name, account_key=self.key,
                                permission=permission,
                                expiry=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        return self.content_uri or f"{self.blobs.url}/{name}?{sas}"

    def _content(self, request: Request) -> dict[str, Any]:
        run, path = request.params["run"], request.query["path"][0]
        return {"contentUri": self._sas_url(run, path, write=False), "origin": ORIGIN, "container": f"dcid.{run}",
                "path": path}

    def _create(self, request: Request) -> dict[str, Any]:
        run = request.params["run"]
        body = request.json()
        try:
            check(body, "ArtifactPathList", "batch_create_empty_artifacts body")
        except AssertionError as exc:
            self._violation(str(exc))
        paths = [p["path"] for p in body["paths"]]
        return {"artifacts": {p: self._artifact(run, p) for p in paths},
                "artifactContentInformation": {p: {"contentUri": self._sas_url(run, p, write=True), "origin": ORIGIN,
                                                   "container": f"dcid.{run}", "path": p} for p in paths},
                "errors": {}}
