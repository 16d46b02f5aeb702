"""The tamper-evident audit ledger: one interface, a file and an Azure Blob back-end.

``--ledger`` / ``MLGATE_LEDGER`` selects it:

* ``file:PATH`` (or a bare path): the embedded default, ``.mlgate/ledger.jsonl`` under the
  working directory when nothing is given;
* ``azure-blob://ACCOUNT_URL/CONTAINER/BLOB`` (``ACCOUNT_URL`` without ``https://`` means
  https; ``azure-blob://http://127.0.0.1:10000/devstoreaccount1/c/b`` reaches Azurite), or the
  blob's plain URL ``https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mlgate.errors import UsageError
from mlgate.ledger.base import Draft, Entry, Ledger, LedgerUnavailable, TamperedError, VerifyResult

DEFAULT_LEDGER = "file:.mlgate/ledger.jsonl"
_HINT = (
    "use --ledger file:PATH, --ledger azure-blob://ACCOUNT_URL/CONTAINER/BLOB or the blob's https URL "
    "(or MLGATE_LEDGER)"
)

__all__ = [
    "DEFAULT_LEDGER",
    "Draft",
    "Entry",
    "Ledger",
    "LedgerUnavailable",
    "TamperedError",
    "VerifyResult",
    "open_ledger",
    "parse_azure_blob",
]


def parse_azure_blob(spec: str) -> tuple[str, str, str]:
    """``azure-blob://ACCOUNT_URL/CONTAINER/BLOB`` -> (account URL, container, blob)."""
    rest = spec[len("azure-blob://") :]
    url = rest if rest.startswith(("https://", "http://")) else "https://" + rest
    parts = urlsplit(url)
    if parts.query or parts.fragment or "@" in parts.netloc:
        # never echo it: a query may be a SAS token, a user part a key
        raise UsageError(
            "the azure-blob ledger URL carries a query, fragment or credentials, which are not accepted",
            hint="give ACCOUNT_URL/CONTAINER/BLOB only; authenticate with a managed/workload identity "
            "or AZURE_STORAGE_CONNECTION_STRING",
        )
    segments = [s for s in parts.path.split("/") if s]
    if not parts.netloc or len(segments) < 2:
        raise UsageError(f"not an azure-blob ledger: {spec!r} (need ACCOUNT_URL/CONTAINER/BLOB)", hint=_HINT)
    account_path = "/".join(segments[:-2])
    account = f"{parts.scheme}://{parts.netloc}" + (f"/{account_path}" if account_path else "")
    return account, segments[-2], segments[-1]


def open_ledger(spec: str | None) -> Ledger:
    """The ledger named by ``spec`` (None or empty: the embedded default)."""
    text = (spec or "").strip() or DEFAULT_LEDGER
    if text.startswith(("https://", "http://")):
        text = "azure-blob://" + text
    if text.startswith("azure-blob://"):
        from mlgate.ledger.azure_blob import open_azure_blob

        account, container, blob = parse_azure_blob(text)
        return open_azure_blob(
            account, container, blob, location=f"azure-blob://{account}/{container}/{blob}"
        )
    if text.startswith("file:"):
        path = text[len("file:") :]
        if path.startswith("//"):
            path = path[2:]
    elif "://" in text:
        raise UsageError(f"unknown ledger scheme {text.split('://', 1)[0]!r}://", hint=_HINT)
    else:
        path = text
    if not path:
        raise UsageError("empty ledger path", hint=_HINT)
    from mlgate.ledger.file import FileLedger

    return FileLedger(path)
