"""The tamper-evident audit ledger: one interface, a file and an Azure Blob back-end.

``--ledger`` / ``MLGATE_LEDGER`` selects it:

* ``file:PATH`` (or a bare path): the embedded default, ``.mlgate/ledger.jsonl`` under the
  working directory when nothing is given;
* ``azure-blob://ACCOUNT_URL/CONTAINER/BLOB`` (``ACCOUNT_URL`` without ``https://`` means
  https; ``azure-blob://http://127.0.0.1:10000/devstoreaccount1/c/b`` reaches Azurite), or the
  blob's plain URL ``https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB``.

:data:`SCHEMES` maps each scheme to the opener of its back-end; a new store (a back-end
implementing :meth:`Ledger.snapshot` and :meth:`Ledger.append_if_unchanged`) adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mlgate.errors import UsageError
from mlgate.ledger.base import Approver, Draft, Entry, Ledger, LedgerUnavailable, TamperedError, VerifyResult

if TYPE_CHECKING:
    from mlgate.secrets.credentials import IdentityOptions

DEFAULT_LEDGER = "file:.mlgate/ledger.jsonl"
_HINT = (
    "use --ledger file:PATH, --ledger azure-blob://ACCOUNT_URL/CONTAINER/BLOB or the blob's https URL "
    "(or MLGATE_LEDGER)"
)

__all__ = [
    "DEFAULT_LEDGER",
    "SCHEMES",
    "Approver",
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


def _open_file(path: str) -> Ledger:
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise UsageError("empty ledger path", hint=_HINT)
    from mlgate.ledger.file import FileLedger

    return FileLedger(path)


def _open_blob(spec: str) -> Ledger:
    from mlgate.ledger.azure_blob import open_azure_blob

    account, container, blob = parse_azure_blob("azure-blob://" + spec.removeprefix("//"))
    return open_azure_blob(account, container, blob, location=f"azure-blob://{account}/{container}/{blob}")


def _open_blob_url(scheme: str) -> Callable[[str], Ledger]:
    return lambda rest: _open_blob(f"{scheme}:{rest}")


#: ``SCHEME:REST`` -> the opener of that back-end (given REST); a new store adds one line here
SCHEMES: dict[str, Callable[[str], Ledger]] = {
    "file": _open_file,
    "azure-blob": _open_blob,
    "https": _open_blob_url("https"),  # a blob's plain URL
    "http": _open_blob_url("http"),
}


def open_ledger(spec: str | None, *, sign: str | None = None, identity: IdentityOptions | None = None) -> Ledger:
    """The ledger named by ``spec`` (None or empty: the embedded default).

    ``sign``: the recording identity's key (a PEM private key file or ``azure-keyvault://...``,
    as :func:`mlgate.signing.keys.load_signer` reads it, through ``identity`` for Key Vault);
    every entry appended is then signed.
    """
    text = (spec or "").strip() or DEFAULT_LEDGER
    scheme, _, rest = text.partition(":")
    if "://" not in text and scheme != "file":
        ledger = _open_file(text)  # a bare path (which may hold a colon, e.g. C:\\...)
    else:
        opener = SCHEMES.get(scheme)
        if opener is None:
            raise UsageError(f"unknown ledger scheme {scheme!r}://", hint=_HINT)
        ledger = opener(rest)
    if sign:
        from mlgate.signing.keys import load_signer

        ledger.signer = load_signer(sign, identity=identity)
    return ledger
