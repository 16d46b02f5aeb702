"""The shared ledger: an Azure Storage append blob, written with conditional appends.

The snapshot of an append (:meth:`Ledger.append` holds the algorithm) is the blob's tail (or
all of it when the draft has an idempotency key) together with its ETag and length; the new
line is appended with ``If-Match: <etag>`` and ``x-ms-blob-condition-appendpos: <length>``.
If another pipeline appended in between, the store answers 412, which is a conflict: the
ledger re-reads and retries, so two pipelines recording at once neither lose nor fork entries.

Limit: an append blob holds at most 50,000 blocks (one block per entry); past that the
store refuses and mlgate says so (exit 3) instead of losing the entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlgate.errors import UsageError
from mlgate.ledger.base import Conflict, Ledger, LedgerUnavailable, Snapshot

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, ContainerClient

_TAIL = 64 << 10
_RANGE = 4 << 20  # below the SDK's single-GET size, so one request per range
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 10,
    "read_timeout": 30,
    "retry_total": 2,
    "initial_backoff": 1,
    "increment_base": 2,
    # Blob Storage never redirects: a 3xx (to another origin or not) is answered as an error, never
    # followed, so no key, SAS or token can be sent elsewhere
    "permit_redirects": False,
}


def open_azure_blob(account_url: str, container: str, blob: str, *, location: str) -> AzureBlobLedger:
    """Connect with AZURE_STORAGE_CONNECTION_STRING when set, else azure-identity's DefaultAzureCredential."""
    import os

    from azure.storage.blob import ContainerClient

    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        from mlgate.stores.azure_auth import redact_connection_string

        redact_connection_string(connection)
        try:
            client = ContainerClient.from_connection_string(connection, container, **CLIENT_OPTIONS)
        except ValueError:  # never echo it: it holds the account key
            raise UsageError(
                "AZURE_STORAGE_CONNECTION_STRING is malformed",
                hint="copy it again from the storage account's access keys (or unset it to use an identity)",
            ) from None
    elif not account_url.startswith("https://"):
        raise UsageError(
            f"the ledger {location} is reached over plain http, where an Azure identity cannot be used",
            hint="use the account's https URL, or set AZURE_STORAGE_CONNECTION_STRING (e.g. for Azurite)",
        )
    else:
        from mlgate.stores.azure_auth import identity_credential

        client = ContainerClient(account_url, container, credential=identity_credential(os.environ),
                                 **CLIENT_OPTIONS)
    return AzureBlobLedger(client, blob, location=location)


def split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut a stream of byte chunks into lines ending with ``\\n`` (the last may be torn)."""
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        rest += chunk
        start = 0
        while True:
            cut = rest.find(b"\n", start)
            if cut < 0:
                break
            yield rest[start : cut + 1]
            start = cut + 1
        rest = rest[start:]
    if rest:
        yield rest


class AzureBlobLedger(Ledger):
    def __init__(self, container: ContainerClient, blob_name: str, *, location: str) -> None:
        self.container = container
        self.blob: BlobClient = container.get_blob_client(blob_name)
        self.location = location

    # -- errors -------------------------------------------------------------------------
    def _unavailable(self, exc: Exception, doing: str) -> LedgerUnavailable:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        if isinstance(exc, ClientAuthenticationError):
            return LedgerUnavailable(
                f"not allowed to {doing} the ledger {self.location} ({type(exc).__name__})",
                hint="give the pipeline's identity 'Storage Blob Data Contributor' on the container, "
                "or set AZURE_STORAGE_CONNECTION_STRING",
            )
        if isinstance(exc, HttpResponseError):
            code = getattr(exc, "error_code", None) or "-"
            if code == "BlockCountExceedsLimit":
                return LedgerUnavailable(
                    f"the ledger blob {self.location} is full (50,000 appends)",
                    hint="export and archive it (`mlgate audit export`), then point --ledger at a new blob",
                )
            return LedgerUnavailable(
                f"could not {doing} the ledger {self.location}: HTTP {exc.status_code} ({code})",
                hint="check the account URL, container and the storage firewall",
            )
        return LedgerUnavailable(
            f"could not {doing} the ledger {self.location}: {type(exc).__name__}",
            hint="check the network path to the storage account",
        )

    # -- reading ------------------------------------------------------------------------
    def exists(self) -> bool:
        try:
            return bool(self.blob.exists())
        except Exception as exc:
            raise self._unavailable(exc, "read") from exc

    def lines(self) -> Iterator[bytes]:
        """Stream the blob as it was when reading started, in bounded range reads.

        An append blob only grows, so the bytes below its length at the start never change:
        reading ranges up to that length is consistent even while pipelines keep appending
        (a whole-blob download would be cut off by the first concurrent append's new ETag).
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            size = int(self.blob.get_blob_properties().size)
        except ResourceNotFoundError:
            return
        except Exception as exc:
            raise self._unavailable(exc, "read") from exc
        yield from split_lines(self._ranges(size))

    def _ranges(self, size: int) -> Iterator[bytes]:
        for offset in range(0, size, _RANGE):
            try:
                yield self.blob.download_blob(offset=offset, length=min(_RANGE, size - offset)).readall()
            except Exception as exc:
                raise self._unavailable(exc, "read") from exc

    def _read_tail(self, size: int, etag: str) -> bytes | None:
        from azure.core import MatchConditions

        if size == 0:
            return None
        want = _TAIL
        while True:
            offset = max(0, size - want)
            data = self.blob.download_blob(
                offset=offset, length=size - offset, etag=etag, match_condition=MatchConditions.IfNotModified
            ).readall()
            cut = data.rfind(b"\n", 0, len(data) - 1)
            if cut >= 0:
                return data[cut + 1 :]
            if offset == 0:
                return data
            want *= 4

    # -- writing ------------------------------------------------------------------------
    def _ensure_blob(self) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            self.blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        except ResourceExistsError:
            return
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                return
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                self._create_container()
                self._ensure_blob()
                return
            raise

    def _create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        from mlgate.errors import Error

        try:
            yield
        except Error:
            raise
        except Exception as exc:
            raise self._unavailable(exc, "write") from exc

    def snapshot(self, *, whole: bool) -> Snapshot:
        """The blob's ETag and length with its lines (all, or the tail), read under ``If-Match``."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            if whole:
                downloader = self.blob.download_blob()
                etag, size = str(downloader.properties.etag), int(downloader.properties.size)
                return Snapshot(split_lines(downloader.chunks()), size, etag)
            props = self.blob.get_blob_properties()
            etag, size = str(props.etag), int(props.size)
            raw = self._read_tail(size, etag)
            return Snapshot([raw] if raw is not None else [], size, etag, whole=False)
        except ResourceNotFoundError:
            self._ensure_blob()
            raise Conflict from None
        except HttpResponseError as exc:
            if exc.status_code == 412:  # changed between two reads: read again
                raise Conflict from None
            raise

    def append_if_unchanged(self, line: bytes, snapshot: Snapshot) -> None:
        """``append_block`` with ``If-Match: <etag>`` and ``x-ms-blob-condition-appendpos: <size>``."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError

        try:
            self.blob.append_block(
                line,
                appendpos_condition=snapshot.size,
                etag=snapshot.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as exc:
            if exc.status_code == 412:  # someone else appended first: re-read the tail
                raise Conflict from None
            raise
