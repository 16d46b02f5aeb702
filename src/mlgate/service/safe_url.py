"""Strict parsing of a URL a token will be sent to (PlanUrl, deployment_callback_url).

``urllib.parse`` and ``urllib3`` (which ``requests`` uses to connect) disagree on odd URLs:
``https://evil.example\\@dev.azure.com/org`` is host ``dev.azure.com`` for ``urlsplit`` and
host ``evil.example`` for ``urllib3``. So a URL is refused unless it is plain: no backslash,
whitespace or control character anywhere, no userinfo, percent-encoding, query or fragment,
a lower-case ``http``/``https`` scheme, an ASCII host and a decimal port; and both parsers
must agree on scheme, host, port and path. The caller then uses only :attr:`SafeUrl.url`, the
URL rebuilt from those parts, for every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

_AUTHORITY = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$"
)
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+,;=:-]*)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class SafeUrl:
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int | None
    path: str  # "" or "/segment/..."

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.scheme]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}"


def parse_safe_url(text: str) -> SafeUrl | None:
    """The URL's parts when it is plain and both parsers agree on them; None otherwise."""
    if not text.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text):
        return None
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in _DEFAULT_PORTS:
        return None  # also refuses a mixed-case scheme, which no real caller sends
    if "?" in rest or "#" in rest or "@" in rest or "%" in rest:
        return None
    authority, slash, path_rest = rest.partition("/")
    path = slash + path_rest
    match = _AUTHORITY.match(authority)
    if match is None or not _PATH.match(path) or any(seg in (".", "..") for seg in path.split("/")):
        return None
    host = match["host"].lower().strip("[]")
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        return None
    try:
        split = urlsplit(text)
        split_port = split.port
        other = parse_url(text)
    except (ValueError, LocationParseError):
        return None
    other_host = (other.host or "").lower().strip("[]")
    agree = (
        split.scheme == other.scheme == scheme
        and (split.hostname or "") == other_host == host
        and split_port == other.port == port
        and split.path == (other.path or "") == path
        and not split.username
        and not split.password
        and other.auth is None
    )
    return SafeUrl(scheme, host, port, path) if agree else None
