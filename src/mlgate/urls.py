"""URLs as mlgate prints them: never with user-info, a query string or a fragment.

A URL may carry a password (``https://user:PW@host``) or a SAS signature (``?sig=...``);
every URL that reaches a message, a log line, evidence or an output goes through
:func:`safe_url` first.
"""

from __future__ import annotations

import urllib.parse


def _split(text: str) -> tuple[urllib.parse.SplitResult, str] | None:
    """The parts of ``text`` and its ``host[:port]`` without user-info (None: it does not parse)."""
    try:
        parts = urllib.parse.urlsplit(text)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    host = f"[{host}]" if ":" in host else host
    return parts, host + (f":{port}" if port is not None else "")


def safe_url(url: str) -> str:
    """``url`` without user-info, query and fragment; a URL that does not parse prints as ``<invalid URL>``."""
    text = str(url).strip()
    split = _split(text)
    if split is None:
        return "<invalid URL>"
    parts, host = split
    if not parts.netloc and "@" in text:
        # "user:PW@host" parses as scheme "user": never print what precedes an @
        return "<URL with credentials>"
    if not parts.scheme and not parts.netloc:
        # a bare path or name: drop anything after ? or #
        return text.split("?", 1)[0].split("#", 1)[0]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def safe_host(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` without credentials, safe to print."""
    split = _split(str(url).strip())
    if split is None:
        return "<invalid URL>"
    parts, host = split
    return f"{parts.scheme}://{host}" if parts.scheme else host


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ``::1`` or ``localhost`` (brackets and a trailing dot allowed): a local emulator, never a cloud."""
    import ipaddress

    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
