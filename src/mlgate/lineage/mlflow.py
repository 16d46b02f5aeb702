"""A small MLflow REST client (``requests``; the product never imports the ``mlflow`` package).

Only the calls mlgate needs: model versions (by version or alias), registered models, runs,
experiments, MLflow 3 logged models, artifact listings (with pagination) and streamed
downloads through the tracking server's ``mlflow-artifacts`` proxy, uploads of the sealed
manifest, model-version tags and aliases.

Errors:

* :class:`NotFound` (exit 1): the thing asked for does not exist -- for a release, an
  untraceable model. A missing alias is answered by MLflow with ``400 INVALID_PARAMETER_VALUE``,
  not 404; it is reported as "no such alias".
* :class:`mlgate.errors.NetworkError` (exit 3): MLflow unreachable, timing out, answering 5xx
  after bounded retries, refusing our credentials, or answering something that is not the
  JSON it documents. Never a pass.

Connection settings are MLflow's own: ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_TOKEN``
(bearer), ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic),
``MLFLOW_TRACKING_SERVER_CERT_PATH`` (CA bundle). An ``azureml://`` tracking URI is rewritten
as the ``azureml-mlflow`` plugin rewrites it for MLflow 2 and 3 clients: ``https://`` on the same
host, ``/mlflow/v1.0`` becoming ``/mlflow/v2.0``; it is authenticated with an azure-identity token
for the workspace's cloud (``<resource manager>/.default``, signed in at that cloud's authority:
:mod:`mlgate.lineage.azure_clouds`), from the identities of `mlgate secrets` (``MLGATE_IDENTITY``)
or DefaultAzureCredential.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from mlgate import redact
from mlgate.errors import NetworkError, RefusedError, UsageError
from mlgate.http import MAX_JSON_BYTES, TimeoutSession, make_session, read_body, same_origin
from mlgate.jsonvalue import Fields, parse_json
from mlgate.lineage.azure_clouds import PUBLIC, Cloud, cloud_for
from mlgate.lineage.presigned import PresignedLink, parse_link, read_timed_out, stream_presigned
from mlgate.lineage.records import Experiment, FileInfo, LoggedModel, ModelVersion, RegisteredModel, Run
from mlgate.refs import ModelRef
from mlgate.timeouts import DEFAULT_TIMEOUTS, Timeouts, current_timeouts, set_timeouts
from mlgate.urls import safe_url

log = logging.getLogger(__name__)

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
PRESIGNED_API = "/api/2.0/mlflow-artifacts/presigned"
SERVER_INFO = "/api/3.0/mlflow/server-info"  # MLflow 3's capability call (mlflow.utils.server_info)
SERVER_INFO_BYTES = 64 << 10
AZURE_SCOPE = PUBLIC.scope
DOWNLOAD_CHUNK = 1 << 20
MAX_PAGES = 10_000  # pages of one listing or search (10 million versions at 1,000 a page)
ERROR_BYTES = 64 << 10  # an error answer is read this far for its code and message

__all__ = [
    "DEFAULT_TIMEOUTS",
    "Experiment",
    "FileInfo",
    "LoggedModel",
    "MlflowClient",
    "ModelVersion",
    "NotFound",
    "RegisteredModel",
    "Run",
    "Timeouts",
    "current_timeouts",
    "proxied_path",
    "rewrite_tracking_uri",
    "set_timeouts",
]


class NotFound(RefusedError):
    """MLflow says the model version, alias, run, experiment or logged model does not exist (exit 1)."""


def _host(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` without credentials, safe to print."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}" if parts.scheme else host


def rewrite_tracking_uri(uri: str) -> tuple[str, bool]:
    """The REST base URL for ``uri`` and whether it is an Azure ML workspace.

    ``azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/...`` becomes
    ``https://<region>.api.azureml.ms/mlflow/v2.0/subscriptions/...``: what azureml-mlflow does for
    MLflow 2 and 3 clients (``/mlflow/v1.0`` is the MLflow 1 API), on every cloud's host.
    """
    text = uri.strip()
    hint = "point MLFLOW_TRACKING_URI at the MLflow tracking server, e.g. http://127.0.0.1:5000"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"MLFLOW_TRACKING_URI is not a valid URI ({exc})", hint=hint) from None
    if (parts.netloc or parts.scheme in ("http", "https")) and not parts.hostname:
        raise UsageError("MLFLOW_TRACKING_URI has no host name", hint=hint)
    if port == 0:
        raise UsageError("MLFLOW_TRACKING_URI has port 0, which no server listens on", hint=hint)
    if text == "databricks" or text.startswith(("databricks://", "databricks-uc")):
        raise _databricks(text)
    if parts.scheme == "azureml":
        if not parts.netloc:
            raise UsageError(f"not an Azure ML tracking URI: {_host(text)}",
                             hint="copy the workspace's MLflow tracking URI (azureml://<region>.api.azureml.ms/...)")
        path = parts.path.rstrip("/")
        if path.startswith("/mlflow/v1.0/") or path == "/mlflow/v1.0":
            path = "/mlflow/v2.0" + path[len("/mlflow/v1.0"):]
        return urllib.parse.urlunsplit(("https", parts.netloc, path, "", "")), True
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"MLFLOW_TRACKING_URI must be an http(s):// or azureml:// URI, got scheme {parts.scheme[:20] or 'none'!r}",
            hint=hint,
        )
    if parts.username or parts.password:
        raise UsageError(
            "MLFLOW_TRACKING_URI must not embed credentials",
            hint="put them in MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN",
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")), False


def _databricks(uri: str) -> UsageError:
    """What to do with one of MLflow's Databricks tracking URIs (which name a CLI profile, not a host)."""
    unity = uri.startswith("databricks-uc")
    what = "the Unity Catalog model registry" if unity else "a Databricks workspace through a CLI profile"
    return UsageError(
        f"MLFLOW_TRACKING_URI {uri.split('?')[0][:60]!r} names {what}, which mlgate does not read",
        hint="for tracking and lineage against the workspace's model registry set MLFLOW_TRACKING_URI="
        "https://<workspace host> and MLFLOW_TRACKING_TOKEN (a personal access token or service principal "
        "token); to seal the files, download them (mlflow artifacts download) and run `mlgate seal DIR`, then "
        "verify with --manifest" + ("; Unity Catalog models are not supported yet (README: Databricks)"
                                     if unity else ""),
    )


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class _AzureAuth(requests.auth.AuthBase):
    """Bearer token from azure-identity, refreshed five minutes before it expires."""

    def __init__(self, credential: Any, scope: str = AZURE_SCOPE) -> None:
        self._credential = credential
        self._scope = scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _get(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                try:
                    token = self._credential.get_token(self._scope)
                except Exception as exc:  # azure-identity raises several unrelated types
                    raise NetworkError(
                        f"could not get an Azure token for the Azure ML workspace ({type(exc).__name__})",
                        hint="give the pipeline an Azure identity (managed identity, workload identity "
                        "federation or AZURE_CLIENT_ID/AZURE_TENANT_ID/...) with access to the workspace",
                    ) from None
                redact.register(token.token)
                self._token, self._expires = token.token, float(token.expires_on)
            return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._get()}"
        return request

    def __repr__(self) -> str:
        return "_AzureAuth(***)"


def _error_detail(response: requests.Response) -> tuple[str, str]:
    """(error_code, message) of an MLflow error answer; empty strings when it has none."""
    try:
        body = parse_json(read_body(response, what="MLflow error answer", limit=ERROR_BYTES), what="MLflow error")
    except NetworkError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    code, message = body.get("error_code", ""), body.get("message", "")
    return (code if isinstance(code, str) else ""), (message[:500] if isinstance(message, str) else "")


class MlflowClient:
    """MLflow tracking/registry REST client. Build it with :meth:`from_env`.

    Every ``get_``/``list_``/``search_`` method returns the typed records of
    :mod:`mlgate.lineage.records`, checked field by field as the answer is parsed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: requests.auth.AuthBase | tuple[str, str] | None = None,
        session: requests.Session | None = None,
        verify: str | bool = True,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = _host(self.base_url)
        self.timeouts = timeouts or current_timeouts()
        self.session = session or self._new_session()
        if auth is not None:
            self.session.auth = auth
        self.session.verify = verify
        self._count_lock = threading.Lock()
        self._presigned: bool | None = None  # what /server-info said, asked once
        self._store_session: requests.Session | None = None  # for presigned URLs: no credential of ours
        #: requests made, by endpoint (path template); read by the benchmark
        self.request_counts: Counter[str] = Counter()
        #: the Azure cloud of an Azure ML workspace (None for any other tracking server)
        self.azure_cloud: Cloud | None = None

    def _new_session(self) -> requests.Session:
        session = make_session()
        if isinstance(session, TimeoutSession):
            session.default_timeout = (self.timeouts.connect, self.timeouts.read)
        return session

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(
        cls,
        tracking_uri: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        credential: Any = None,
    ) -> MlflowClient:
        """A client for ``tracking_uri`` (default ``MLFLOW_TRACKING_URI``) with MLflow's auth variables."""
        env = os.environ if environ is None else environ
        uri = tracking_uri or env.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise UsageError(
                "no MLflow tracking server: MLFLOW_TRACKING_URI is not set",
                hint="export MLFLOW_TRACKING_URI=http(s)://your-mlflow-server (or an azureml:// workspace URI)",
            )
        base, azure = rewrite_tracking_uri(uri)
        auth: requests.auth.AuthBase | tuple[str, str] | None = None
        token = env.get("MLFLOW_TRACKING_TOKEN", "")
        user, password = env.get("MLFLOW_TRACKING_USERNAME", ""), env.get("MLFLOW_TRACKING_PASSWORD", "")
        if token:
            redact.register(token)
            auth = _BearerAuth(token)
        elif user or password:
            if password:
                redact.register(password)
            auth = (user, password)
        cloud = cloud_for(urllib.parse.urlsplit(base).hostname or "", env) if azure else None
        if cloud is not None and auth is None:
            if credential is None:
                from mlgate.stores.azure_auth import identity_credential

                credential = identity_credential(env, authority=cloud.authority)
            auth = _AzureAuth(credential, cloud.scope)
        verify: str | bool = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
        client = cls(base, auth=auth, verify=verify)
        client.azure_cloud = cloud
        return client

    # ------------------------------------------------------------------ transport
    def _count(self, endpoint: str) -> None:
        with self._count_lock:
            self.request_counts[endpoint] += 1

    def _send(self, method: str, url: str, endpoint: str, *, artifact: str | None = None,
              **kwargs: Any) -> requests.Response:
        """One request (``artifact``: the file a download is of, named when its first byte is late)."""
        self._count(endpoint)
        try:
            return self.session.request(method, url, stream=True, **kwargs)
        except NetworkError:
            raise
        except requests.exceptions.RequestException as exc:
            if not read_timed_out(exc):
                raise self._failure(exc, endpoint) from None
            if artifact is not None:
                raise NetworkError(
                    f"MLflow at {self.host} sent no byte of {artifact} within {self.timeouts.read:g} s (the proxy "
                    "may be copying the object before answering; raise --read-timeout or enable presigned downloads)",
                    hint="MLGATE_READ_TIMEOUT sets it for a pipeline; nothing was passed") from None
            raise NetworkError(f"MLflow at {self.host} timed out: no answer to {endpoint} within "
                               f"{self.timeouts.read:g} s",
                               hint="check the tracking server, or raise --read-timeout; nothing was passed") from None

    def _failure(self, exc: requests.exceptions.RequestException, endpoint: str) -> NetworkError:
        if isinstance(exc, requests.exceptions.RetryError):
            return NetworkError(f"MLflow at {self.host} kept failing ({endpoint}) after bounded retries",
                                hint="check the tracking server's health; nothing was passed")
        if isinstance(exc, requests.exceptions.Timeout):
            return NetworkError(f"MLflow at {self.host} timed out ({endpoint}; connect timeout "
                                f"{self.timeouts.connect:g} s)",
                                hint="check the tracking server and the network, or raise --connect-timeout; "
                                "nothing was passed")
        if isinstance(exc, requests.exceptions.SSLError):
            return NetworkError(
                f"TLS failure talking to MLflow at {self.host}",
                hint="set MLFLOW_TRACKING_SERVER_CERT_PATH (or REQUESTS_CA_BUNDLE) to the server's CA bundle")
        return NetworkError(f"cannot reach MLflow at {self.host} ({type(exc).__name__})",
                            hint="check MLFLOW_TRACKING_URI and that the tracking server is up; nothing was passed")

    def _check(self, response: requests.Response, endpoint: str, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = _error_detail(response)
        if status == 404 or code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFound(f"{what}: not found in MLflow at {self.host}" + (f" ({message})" if message else ""))
        if status == 403 and endpoint == "mlflow-artifacts upload":
            raise NetworkError(
                f"MLflow at {self.host} did not permit storing {what} (403): the identity may read but not write "
                "there",
                hint="sealing writes the manifest next to the model: the identity needs EDIT on the model's "
                "experiment as well as on the registered model",
            )
        if status in (401, 403):
            raise NetworkError(
                f"MLflow at {self.host} refused our credentials ({status}) for {endpoint}",
                hint="check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD, or the identity's "
                "role on the workspace",
            )
        raise NetworkError(
            f"MLflow at {self.host} answered {status}{' ' + code if code else ''} for {endpoint}"
            + (f": {message}" if message else ""),
            hint="check the tracking server; nothing was passed",
        )

    def _where(self, endpoint: str) -> str:
        return f"MLflow at {self.host}, answer to {endpoint}"

    def _json(self, response: requests.Response, endpoint: str) -> Fields:
        hint = ("check that MLFLOW_TRACKING_URI points at an MLflow tracking server, not a proxy or "
                "login page; nothing was passed")
        where = self._where(endpoint)
        body = parse_json(read_body(response, what=where, limit=MAX_JSON_BYTES), what=where, hint=hint)
        return Fields(body, where)

    def _call(
        self,
        method: str,
        endpoint: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        path: str | None = None,
        api: str = API,
    ) -> Fields:
        url = f"{self.base_url}{api}{path if path is not None else endpoint}"
        response = self._send(method, url, endpoint, params=params, json=body)
        self._check(response, endpoint, what)
        return self._json(response, endpoint)

    def _entity(self, body: Fields, key: str, endpoint: str) -> Fields:
        if not body.has(key):
            raise NetworkError(f"MLflow at {self.host} answered without '{key}' for {endpoint}",
                               hint="check that the server is MLflow 2.x/3.x; nothing was passed")
        return body.obj(key)

    def _pages(self, fetch: Callable[[str | None], Fields], endpoint: str) -> Iterator[Fields]:
        """Every page of a paged answer; a repeated ``next_page_token`` or endless paging is exit 3."""
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = fetch(token)
            yield body
            token = body.opt_text("next_page_token") or None
            if not token:
                return
            if token in seen:
                raise NetworkError(f"MLflow at {self.host} repeated a next_page_token for {endpoint} (a paging "
                                   "loop); nothing was passed", hint="check the tracking server")
            seen.add(token)
        raise NetworkError(f"MLflow at {self.host} kept paging {endpoint} past {MAX_PAGES} pages (limit)",
                           hint="check the tracking server; nothing was passed")

    # ------------------------------------------------------------------ registry
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        ep = "/model-versions/get"
        body = self._call("GET", ep, what=f"model version {name}/{version}", params={"name": name, "version": version})
        return ModelVersion.from_json(self._entity(body, "model_version", ep).data, body.where, path="model_version")

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        ep = "/registered-models/alias"
        url = f"{self.base_url}{API}{ep}"
        response = self._send("GET", url, ep, params={"name": name, "alias": alias})
        if response.status_code == 400:
            code, _ = _error_detail(response)
            if code == "INVALID_PARAMETER_VALUE":
                raise NotFound(f"registered model {name} has no such alias @{alias} (MLflow at {self.host})")
        self._check(response, ep, f"model {name}@{alias}")
        body = self._json(response, ep)
        return ModelVersion.from_json(self._entity(body, "model_version", ep).data, body.where, path="model_version")

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The model version a reference points at."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if parsed.alias:
            return self.get_model_version_by_alias(parsed.name, parsed.alias)
        assert parsed.version is not None
        return self.get_model_version(parsed.name, parsed.version)

    def get_registered_model(self, name: str) -> RegisteredModel:
        ep = "/registered-models/get"
        body = self._call("GET", ep, what=f"registered model {name}", params={"name": name})
        return RegisteredModel.from_json(self._entity(body, "registered_model", ep).data, body.where,
                                         path="registered_model")

    def search_model_versions(
        self, name: str | None = None, *, filter: str | None = None, max_results: int | None = None
    ) -> list[ModelVersion]:
        """Versions matching ``name`` and/or the MLflow ``filter`` (every page, or the first ``max_results``)."""
        ep = "/model-versions/search"
        clauses = [f"name='{name.replace(chr(39), chr(92) + chr(39))}'"] if name is not None else []
        clauses += [filter] if filter else []
        query = " AND ".join(clauses)
        page_size = min(max_results or 1000, 1000)
        what = f"versions of {name}" if name is not None else "model versions"

        def fetch(token: str | None) -> Fields:
            params: dict[str, Any] = {"max_results": page_size}
            if query:
                params["filter"] = query
            if token:
                params["page_token"] = token
            return self._call("GET", ep, what=what, params=params)

        versions: list[ModelVersion] = []
        for page in self._pages(fetch, ep):
            versions.extend(ModelVersion.from_json(item.data, page.where, path=item.path)
                            for item in page.objs("model_versions"))
            if max_results is not None and len(versions) >= max_results:
                return versions[:max_results]
        return versions

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call("POST", "/model-versions/set-tag", what=f"model version {name}/{version}",
                   body={"name": name, "version": version, "key": key, "value": value})

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self._call("DELETE", "/model-versions/delete-tag", what=f"tag {key} of model version {name}/{version}",
                   body={"name": name, "version": version, "key": key})

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._call("POST", "/registered-models/alias", what=f"registered model {name}",
                   body={"name": name, "alias": alias, "version": version})

    # ------------------------------------------------------------------ tracking
    def get_run(self, run_id: str) -> Run:
        ep = "/runs/get"
        body = self._call("GET", ep, what=f"run {run_id}", params={"run_id": run_id})
        return Run.from_json(self._entity(body, "run", ep).data, body.where, path="run")

    def get_experiment(self, experiment_id: str) -> Experiment:
        ep = "/experiments/get"
        body = self._call("GET", ep, what=f"experiment {experiment_id}", params={"experiment_id": experiment_id})
        return Experiment.from_json(self._entity(body, "experiment", ep).data, body.where, path="experiment")

    def get_logged_model(self, model_id: str) -> LoggedModel:
        """The MLflow 3 logged model (the fields of its ``info``)."""
        ep = "/logged-models/{id}"
        body = self._call("GET", ep, what=f"logged model {model_id}",
                          path=f"/logged-models/{urllib.parse.quote(model_id, safe='')}")
        return LoggedModel.from_json(self._entity(body, "model", ep).data, body.where, path="model")

    # ------------------------------------------------------------------ artifacts
    def _paged_files(self, fetch: Callable[[str | None], Fields], endpoint: str) -> Iterator[FileInfo]:
        for page in self._pages(fetch, endpoint):
            for item in page.objs("files"):
                yield FileInfo.parse(item)

    def list_logged_model_artifacts(self, model_id: str, path: str | None = None) -> Iterator[FileInfo]:
        """One directory of a logged model's artifacts (every page); ``path`` is relative to its root."""
        ep = "/logged-models/{id}/artifacts/directories"
        url_path = f"/logged-models/{urllib.parse.quote(model_id, safe='')}/artifacts/directories"

        def fetch(token: str | None) -> Fields:
            params: dict[str, Any] = {}
            if path:
                params["artifact_directory_path"] = path
            if token:
                params["page_token"] = token
            return self._call("GET", ep, what=f"artifacts of logged model {model_id}", params=params, path=url_path)

        return self._paged_files(fetch, ep)

    def list_proxied_artifacts(self, path: str) -> Iterator[FileInfo]:
        """One directory of the ``mlflow-artifacts`` proxy (every page); entries carry base names."""
        ep = "mlflow-artifacts list"

        def fetch(token: str | None) -> Fields:
            params: dict[str, Any] = {"path": path}
            if token:
                params["page_token"] = token
            return self._call("GET", ep, what=f"artifact directory {path}", params=params, path="",
                              api=ARTIFACTS_API)

        return self._paged_files(fetch, ep)

    def proxied(self, uri: str, *, what: str) -> str | None:
        """:func:`proxied_path` of ``uri``; an ``http(s)`` location on another origin is refused (exit 3).

        MLflow names where a model's files are; a location on another host would let that host
        (or whoever MLflow's answer came from) choose the bytes that are hashed and compared.
        """
        parts = urllib.parse.urlsplit(uri) if "://" in uri else None
        if parts is not None and parts.scheme in ("http", "https") and not same_origin(uri, self.base_url):
            raise NetworkError(
                f"MLflow at {self.host} names {what} on another origin ({safe_url(uri)}); it was not fetched",
                hint="artifacts are read only through this tracking server's mlflow-artifacts proxy; check the "
                "server's --artifacts-destination and the model's registered location; nothing was passed",
            )
        return proxied_path(uri)

    def _artifact_url(self, path: str) -> str:
        return f"{self.base_url}{ARTIFACTS_API}/{urllib.parse.quote(path.lstrip('/'), safe='/')}"

    def stream_artifact(self, path: str, *, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        """The bytes of one artifact, streamed in chunks: from the presigned URL the proxy hands out when
        the server advertises presigned downloads (:mod:`mlgate.lineage.presigned`), else through the proxy."""
        if self.presigned_downloads():
            link = self.presigned_link(path)
            if link is not None:
                return stream_presigned(self.store_session(), link, what=f"artifact {path}", chunk_size=chunk_size,
                                        read_timeout=self.timeouts.read)
        return self._stream_proxied(path, chunk_size=chunk_size)

    def presigned_downloads(self) -> bool:
        """Whether ``/server-info`` says the proxy hands out presigned downloads (asked once, as MLflow's
        client does in ``MlflowArtifactsRepository._is_multipart_download_enabled``).

        Anything but a 200 with ``multipart_downloads_enabled: true`` (an older server, a proxy on a
        non-S3 root, an answer that fails) keeps the proxy path, as MLflow's client defaults to it.
        """
        if self._presigned is None:
            try:
                self._presigned = self._server_info_says_presigned()
            except NetworkError as exc:
                log.debug("server-info of MLflow at %s: %s; downloading through the proxy", self.host, exc)
                self._presigned = False
        return self._presigned

    def _server_info_says_presigned(self) -> bool:
        ep = "server-info"
        response = self._send("GET", f"{self.base_url}{SERVER_INFO}", ep)
        if response.status_code != 200:
            response.close()
            return False
        where = self._where(ep)
        body = parse_json(read_body(response, what=where, limit=SERVER_INFO_BYTES), what=where)
        return isinstance(body, dict) and body.get("multipart_downloads_enabled") is True

    def presigned_link(self, path: str) -> PresignedLink | None:
        """The presigned URL of one proxied file (``GET /mlflow-artifacts/presigned/<path>``, the call of
        MLflow's ``HttpArtifactRepository._get_presigned_download_url``); None when it names no size
        (MLflow's client then downloads through the proxy too)."""
        ep = "mlflow-artifacts presigned"
        body = self._call("GET", ep, what=f"artifact {path}", path="/" + urllib.parse.quote(path.lstrip("/"), safe="/"),
                          api=PRESIGNED_API)
        return parse_link(body, self.host)

    def store_session(self) -> requests.Session:
        """The session for presigned URLs: its own, so no MLflow credential or cookie can reach the store."""
        with self._count_lock:
            if self._store_session is None:
                self._store_session = self._new_session()
            return self._store_session

    def _stream_proxied(self, path: str, *, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        ep = "mlflow-artifacts download"
        response = self._send("GET", self._artifact_url(path), ep, artifact=f"artifact {path}")
        try:
            self._check(response, ep, f"artifact {path}")
            try:
                yield from response.iter_content(chunk_size=chunk_size)
            except requests.exceptions.RequestException:
                raise NetworkError(f"download of artifact {path} from MLflow at {self.host} was cut off",
                                   hint="re-run; nothing was passed") from None
        finally:
            response.close()

    def upload_artifact(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` of the ``mlflow-artifacts`` proxy."""
        ep = "mlflow-artifacts upload"
        response = self._send("PUT", self._artifact_url(path), ep, data=data)
        try:
            self._check(response, ep, f"artifact {path}")
        finally:
            response.close()

    def download_artifact(self, path: str, *, max_bytes: int) -> bytes:
        """A small artifact in memory (refusing more than ``max_bytes``)."""
        buffer = bytearray()
        for chunk in self.stream_artifact(path):
            buffer += chunk
            if len(buffer) > max_bytes:
                raise NetworkError(f"artifact {path} is larger than {max_bytes} bytes")
        return bytes(buffer)


def proxied_path(uri: str) -> str | None:
    """The path under the ``mlflow-artifacts`` proxy of an artifact URI, or None when it is not proxied.

    ``mlflow-artifacts:/1/models/m-x/artifacts`` and
    ``http(s)://host/api/2.0/mlflow-artifacts/artifacts/1/models/...`` both give ``1/models/m-x/artifacts``.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "mlflow-artifacts":
        return parts.path.strip("/")
    if parts.scheme in ("http", "https"):
        anchor = ARTIFACTS_API + "/"
        index = parts.path.find(anchor)
        if index >= 0:
            return parts.path[index + len(anchor):].strip("/")
    return None
