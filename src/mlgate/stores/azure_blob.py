"""Back-end: Azure Blob Storage and ADLS Gen2 (``azure-storage-blob``).

URIs: see :mod:`mlgate.stores.azure_names` (``wasbs://``, ``wasb://``, ``abfss://``, ``abfs://``,
``https://<account>.blob|dfs.core.windows.net/...``, the loopback emulator's ``http://127.0.0.1:<port>/devstoreaccount1/...``).

Credentials, in MLflow's own order: ``AZURE_STORAGE_CONNECTION_STRING`` (its endpoint is used, as
MLflow does, which is how Azurite is reached), else ``AZURE_STORAGE_ACCESS_KEY`` for the URI's
account, else the identities of `mlgate secrets` (``MLGATE_IDENTITY``: managed identity, Azure
DevOps workload identity, GitHub OIDC) or DefaultAzureCredential. Keys are registered as secrets
and never printed; messages name the account, the container and the kind of credential.

Limits: a directory is listed with a delimiter, :data:`PAGE_SIZE` entries a page (one request per
page, never one per file; hierarchical-namespace folder markers are skipped); a file is read with
one request when it fits in :data:`mlgate.stores.ranges.RANGE`, a larger one as parallel ranges of
the same version (ETag) feeding one sequential hash (bounded memory, no temporary copy on disk).
Every request goes to the client's own endpoint only (:class:`OriginTransport`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from mlgate.errors import Error, UsageError
from mlgate.http import same_origin
from mlgate.secrets.azure_http import WrappedTransport
from mlgate.stores import ranges
from mlgate.stores.azure_names import BlobLocation, parse, shown
from mlgate.stores.interface import ArtifactStore, Entry, Missing, Page, StoreError, parent_path
from mlgate.urls import safe_url

PAGE_SIZE = 5000
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10, "read_timeout": 30, "retry_total": 2, "initial_backoff": 1, "increment_base": 2,
    "max_single_get_size": ranges.RANGE, "max_chunk_get_size": ranges.RANGE,
}
KIND = "Azure Blob"


class OriginTransport(WrappedTransport):
    """azure-core's RequestsTransport, refusing any request to another origin than the client's endpoint.

    (Not the Key Vault :class:`~mlgate.secrets.azure_http.GuardedTransport`: that one reads every
    2xx answer as JSON, and blob listings are XML.)
    """

    def __init__(self, allowed: str, container: str, identity: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allowed, self.container, self.identity = allowed, container, identity

    def send(self, request: Any, **kwargs: Any) -> Any:
        url = str(request.url)
        if not same_origin(url, self.allowed):
            raise StoreError(KIND, self.container, self.identity,
                             f"refused to send a request to {safe_url(url)}, another origin than "
                             f"{safe_url(self.allowed)}",
                             hint="the store's answer pointed elsewhere; check the account endpoint")
        return self.inner.send(request, **kwargs)


def open_blob_store(uri: str, env: Mapping[str, str] | None = None) -> BlobStore:
    """The container client for ``uri`` with MLflow's choice of credential (see the module)."""
    from azure.storage.blob import ContainerClient

    env = os.environ if env is None else env
    where = parse(uri)
    label = f"container {where.container} of account {where.account}"
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        from mlgate.stores.azure_auth import redact_connection_string

        redact_connection_string(connection)
        identity = "AZURE_STORAGE_CONNECTION_STRING"
        try:
            endpoint = ContainerClient.from_connection_string(connection, where.container).url
            client = ContainerClient.from_connection_string(
                connection, where.container, transport=OriginTransport(endpoint, label, identity), **CLIENT_OPTIONS)
        except ValueError:  # never echo it: it holds the account key
            raise UsageError("AZURE_STORAGE_CONNECTION_STRING is malformed",
                             hint="copy it again from the storage account's access keys (or unset it)") from None
        return BlobStore(client, where, label, identity)
    key = env.get("AZURE_STORAGE_ACCESS_KEY")
    credential: Any
    if key:
        from azure.core.credentials import AzureNamedKeyCredential

        from mlgate import redact

        redact.register(key)
        identity = f"the account key of {where.account} (AZURE_STORAGE_ACCESS_KEY)"
        credential = AzureNamedKeyCredential(where.account, key)
    else:
        from mlgate.stores.azure_auth import identity_credential, identity_name

        if not where.account_url.startswith("https://"):
            raise UsageError(f"{shown(uri)} is reached over plain http, where an Azure identity cannot be used",
                             hint="set AZURE_STORAGE_CONNECTION_STRING (e.g. for Azurite) or use an https location")
        identity, credential = identity_name(env), identity_credential(env)
    client = ContainerClient(where.account_url, where.container, credential=credential,
                             transport=OriginTransport(where.account_url, label, identity), **CLIENT_OPTIONS)
    return BlobStore(client, where, label, identity)


@contextlib.contextmanager
def storage_errors(shown: str, identity: str, what: str) -> Iterator[None]:
    """Azure SDK errors as exit-3 errors naming the store (never the SDK's text, which may carry URLs)."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ResourceNotFoundError,
    )

    def fail(why: str, hint: str | None = None) -> StoreError:
        return StoreError(KIND, shown, identity, f"{what}: {why}", hint=hint)

    try:
        yield
    except Error:
        raise
    except ResourceNotFoundError:
        raise Missing(f"{KIND} ({shown}): {what}: not found",
                      hint="the store holds no such file; check the location") from None
    except DecodeError:
        raise fail("the store answered something that is not an Azure Storage answer") from None
    except HttpResponseError as exc:
        if exc.status_code == 412:
            raise fail("the file changed while it was read (HTTP 412 on a later range)",
                       "re-run once nothing writes to the model's files") from None
        if exc.status_code == 403:
            raise fail("access refused (HTTP 403): the credential is not accepted or lacks permission on the "
                       "container", "check the key or connection string, or grant the identity Storage Blob "
                       "Data Reader (Storage Blob Data Contributor to seal)") from None
        if isinstance(exc, ClientAuthenticationError):
            raise fail(f"the credentials were refused (HTTP {exc.status_code or 'none'})",
                       "check the key, connection string or identity") from None
        raise fail(f"the store answered HTTP {exc.status_code}") from None
    except AzureError as exc:
        raise fail(f"cannot reach the store ({type(exc).__name__})", "check the endpoint and network; re-run") \
            from None
    except (TypeError, AttributeError, ValueError, KeyError) as exc:  # the SDK trips over a malformed answer
        raise fail(f"the store answered something that is not an Azure Storage answer ({type(exc).__name__})") \
            from None


def read_blob(blob: Any, name: str) -> Iterator[bytes]:
    """A blob's bytes: the first range, then the rest as parallel ranges of that version (:mod:`.ranges`)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError

    try:
        first = blob.download_blob(offset=0, length=ranges.RANGE, max_concurrency=1)
    except HttpResponseError as exc:
        if exc.status_code != 416:  # an empty blob has no byte 0: read it whole
            raise
        first = blob.download_blob(max_concurrency=1)
    size, etag = _total_size(first.properties), first.properties.etag
    head = first.readall()
    yield bytes(head)

    def fetch(offset: int, length: int) -> bytes:
        return bytes(blob.download_blob(offset=offset, length=length, max_concurrency=1, etag=etag,
                                        match_condition=MatchConditions.IfNotModified).readall())

    yield from ranges.rest_in_ranges(name, len(head), size, fetch)


def _total_size(properties: Any) -> int:
    """The blob's size: ``Content-Range: bytes 0-N/TOTAL`` of a ranged read (``size`` is the range's)."""
    content_range = str(properties.content_range or "")
    if not content_range:
        return int(properties.size)
    total = content_range.rpartition("/")[2]
    if not total.isdigit():
        raise ValueError("Content-Range without a total size")
    return int(total)


class BlobStore(ArtifactStore):
    kind = KIND

    def __init__(self, client: Any, where: BlobLocation, shown: str, identity: str) -> None:
        self.client, self.where, self.shown, self.identity = client, where, shown, identity

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.where.path, name.strip("/")) if p)

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return storage_errors(self.shown, self.identity, what)

    def list(self, directory: str, page_token: str | None = None) -> Page:
        from azure.storage.blob import BlobPrefix

        top = f"{self.where.path}/" if self.where.path else ""
        prefix = self._key(directory) + "/" if self._key(directory) else ""
        entries: list[Entry] = []
        with self._errors(f"listing {directory or 'the model root'}"):
            pager = self.client.walk_blobs(name_starts_with=prefix, delimiter="/", include=["metadata"],
                                           results_per_page=PAGE_SIZE).by_page(continuation_token=page_token)
            page = next(pager, None)
            for item in page if page is not None else ():
                name = str(item.name)
                if not name.startswith(prefix) or name == prefix:
                    raise StoreError(KIND, self.shown, self.identity,
                                     f"listing {directory or 'the model root'} names {name!r}, outside it")
                if isinstance(item, BlobPrefix):
                    entries.append(Entry(name[len(top):].rstrip("/"), True, None))
                elif (item.metadata or {}).get("hdi_isfolder") != "true":
                    entries.append(Entry(name[len(top):], False, int(item.size)))
            token = pager.continuation_token
        return Page(tuple(entries), str(token) if token else None)

    def open(self, name: str) -> Iterator[bytes]:
        with self._errors(f"reading {name}"):
            yield from read_blob(self.client.get_blob_client(self._key(name)), name)

    def put(self, name: str, data: bytes) -> str:
        key = "/".join(p for p in (parent_path(self.where.path), name) if p)
        with self._errors(f"storing {name}"):
            self.client.get_blob_client(key).upload_blob(data, overwrite=True)
        return self.where.uri(key)
