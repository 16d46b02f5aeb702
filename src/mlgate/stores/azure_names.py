"""Azure Blob / ADLS Gen2 location URIs, parsed without importing the Azure SDK.

Accepted: ``wasbs://<container>@<account>.blob.<suffix>/<path>`` (``wasb://`` too, read over https),
``abfss://<container>@<account>.dfs.<suffix>/<path>`` (``abfs://`` too; read through the account's
blob endpoint, which serves hierarchical namespaces as well), ``https://<account>.blob|dfs.<suffix>/<container>/<path>``
and, on a loopback host only, the emulator's ``http://127.0.0.1:<port>/<account>/<container>/<path>``.
``<suffix>``: ``core.windows.net``, ``core.chinacloudapi.cn`` or ``core.usgovcloudapi.net``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from mlgate.errors import UsageError

SUFFIXES = ("core.windows.net", "core.chinacloudapi.cn", "core.usgovcloudapi.net")
_HOST = re.compile(r"^([a-z0-9]{3,24})\.(blob|dfs)\.(" + "|".join(re.escape(s) for s in SUFFIXES) + r")$")
_CONTAINER = re.compile(r"^(\$root|[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?)$")


@dataclass(frozen=True)
class BlobLocation:
    """One directory (or file) in one container: ``prefix`` + ``/`` + ``path`` is its URI."""

    account: str
    account_url: str  # https://<account>.blob.<suffix> (or the emulator's http://host:port/<account>)
    container: str
    path: str  # blob-name prefix, no leading or trailing slash
    prefix: str  # the URI of the container's top, in the form the location was given

    def uri(self, path: str) -> str:
        return f"{self.prefix}/{path}" if path else self.prefix


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_blob_url(uri: str) -> bool:
    """Whether an ``http(s)`` URI names an Azure storage account (or the loopback emulator)."""
    parts = urllib.parse.urlsplit(uri)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and _HOST.match(host):
        return True
    segments = [s for s in parts.path.split("/") if s]
    return _loopback(host) and len(segments) >= 2 and segments[0] == "devstoreaccount1"


def parse(uri: str) -> BlobLocation:
    """The location ``uri`` names; a malformed one is exit 2 naming the accepted forms."""
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme in ("wasbs", "wasb", "abfss", "abfs"):
        container, _, account_host = parts.netloc.partition("@")
        match = _HOST.match(account_host.lower())
        if not container or not match:
            raise _bad(uri)
        account, suffix = match.group(1), match.group(3)
        prefix = f"{scheme}://{container}@{account_host}"
        return _location(uri, account, f"https://{account}.blob.{suffix}", container, parts.path, prefix)
    segments = parts.path.lstrip("/").split("/", 1)
    if scheme == "https" and (match := _HOST.match(host)):
        account = match.group(1)
        container, rest = segments[0], segments[1] if len(segments) > 1 else ""
        prefix = f"https://{parts.netloc}/{container}"
        return _location(uri, account, f"https://{account}.blob.{match.group(3)}", container, rest, prefix)
    if scheme in ("http", "https") and is_blob_url(uri):
        account, _, rest = parts.path.lstrip("/").partition("/")
        container, _, path = rest.partition("/")
        base = f"{scheme}://{parts.netloc}/{account}"
        return _location(uri, account, base, container, path, f"{base}/{container}")
    raise _bad(uri)


def _location(uri: str, account: str, account_url: str, container: str, path: str, prefix: str) -> BlobLocation:
    if not _CONTAINER.match(container) or urllib.parse.urlsplit(uri).query:
        raise _bad(uri)
    return BlobLocation(account, account_url, container, urllib.parse.unquote(path).strip("/"), prefix)


def shown(uri: str) -> str:
    """``uri`` as printed: no query or fragment (a SAS), and user-info only when it is a container name."""
    from mlgate.urls import safe_url

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() in ("wasbs", "wasb", "abfss", "abfs") and ":" not in parts.netloc.partition("@")[0]:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return safe_url(uri)


def _bad(uri: str) -> UsageError:
    return UsageError(
        f"not an Azure Blob location: {shown(uri)}",
        hint="use wasbs://<container>@<account>.blob.core.windows.net/<path>, abfss://<container>@<account>."
        "dfs.core.windows.net/<path> or https://<account>.blob.core.windows.net/<container>/<path>",
    )
