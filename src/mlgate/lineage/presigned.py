"""Presigned downloads behind an S3-backed ``mlflow-artifacts`` proxy (``mlflow server --serve-artifacts``).

When the tracking server's ``GET /api/3.0/mlflow/server-info`` answers
``multipart_downloads_enabled: true``, MLflow's own client (``MlflowArtifactsRepository._download_file``)
asks ``GET /api/2.0/mlflow-artifacts/presigned/<path>`` for each file and reads the object straight
from the store through the answer ``{"url", "headers", "file_size"}`` (``PresignedDownloadUrlResponse``),
instead of letting the proxy copy the object before its first byte. mlgate does the same, with limits:

* the URL comes only from that call on the tracking server itself; it is the one off-origin URL
  mlgate accepts, and only ``https`` or loopback ``http``, without user-info;
* it is fetched with a session of its own: no MLflow token, password or cookie ever reaches the store;
  only the answer's own headers are sent (bounded in number and size);
* the body is read with the size the answer announced as a cap (more, or fewer, is exit 3) and the
  usual timeouts; an answer without ``file_size`` is read through the proxy, as MLflow's client does.

The bytes are hashed and compared with the sealed manifest as always: a store answering other bytes
is a mismatch (exit 1), never a pass.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import urllib3

from mlgate.errors import NetworkError
from mlgate.jsonvalue import Fields
from mlgate.urls import is_loopback_host, safe_url

MAX_HEADERS = 32
MAX_HEADER_CHARS = 8 << 10
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_FORBIDDEN = frozenset({"authorization", "proxy-authorization", "cookie", "host", "range"})


@dataclass(frozen=True)
class PresignedLink:
    """Where one file can be read straight from the object store."""

    url: str
    headers: tuple[tuple[str, str], ...]
    size: int

    @property
    def shown(self) -> str:
        return safe_url(self.url)


def parse_link(body: Fields, mlflow_host: str) -> PresignedLink | None:
    """The link in a ``GetPresignedDownloadUrl`` answer; None without ``file_size``; anything unsafe is exit 3."""
    url = body.text("url")
    hint = "check the tracking server's --artifacts-destination; nothing was passed"
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise NetworkError(f"MLflow at {mlflow_host} handed out a presigned URL that does not parse",
                           hint=hint) from None
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None or not host or not (
        scheme == "https" or (scheme == "http" and is_loopback_host(host))
    ):
        raise NetworkError(
            f"MLflow at {mlflow_host} handed out a presigned URL mlgate does not fetch ({safe_url(url)}): only "
            "https, or http on loopback, without user-info", hint=hint)
    headers = body.opt_obj("headers")
    pairs = tuple(sorted((name, headers.text(name)) for name in headers.data))
    if len(pairs) > MAX_HEADERS or any(not _HEADER_NAME.match(k) or k.lower() in _FORBIDDEN
                                       or len(v) > MAX_HEADER_CHARS or "\n" in v or "\r" in v for k, v in pairs):
        raise NetworkError(f"MLflow at {mlflow_host} handed out presigned headers mlgate does not send", hint=hint)
    size = body.opt_integer("file_size")
    if size is None:
        return None
    if size < 0:
        body.fail("file_size", "is negative")
    return PresignedLink(url, pairs, size)


def read_timed_out(exc: BaseException) -> bool:
    """Whether a ``requests`` failure is a read timeout (after urllib3's retries it arrives as a ConnectionError)."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ReadTimeoutError)


def stream_presigned(session: requests.Session, link: PresignedLink, *, what: str, chunk_size: int,
                     read_timeout: float) -> Iterator[bytes]:
    """The bytes of ``link``, exactly ``link.size`` of them, streamed (a generator: nothing is fetched before use)."""
    hint = "check the object store and the network; nothing was passed"
    try:
        response = session.get(link.url, headers=dict(link.headers), stream=True)
    except NetworkError:
        raise
    except requests.exceptions.RequestException as exc:
        if read_timed_out(exc):
            raise NetworkError(f"the object store at {link.shown} sent no byte of {what} within {read_timeout:g} s",
                               hint="raise --read-timeout, or check the object store; nothing was passed") from None
        raise NetworkError(f"the object store at {link.shown} did not answer for {what} ({type(exc).__name__})",
                           hint=hint) from None
    try:
        if response.status_code != 200:
            raise NetworkError(f"the object store at {link.shown} answered {response.status_code} for {what}",
                               hint="the presigned URL may have expired or the object is gone; re-run; "
                               "nothing was passed")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) != link.size:
            raise NetworkError(f"the object store at {link.shown} announced {declared} bytes for {what}, MLflow "
                               f"said {link.size}", hint=hint)
        yield from _capped(response, link, what=what, chunk_size=chunk_size)
    finally:
        response.close()


def _capped(response: requests.Response, link: PresignedLink, *, what: str, chunk_size: int) -> Iterator[bytes]:
    seen = 0
    try:
        for chunk in response.iter_content(chunk_size=chunk_size):
            seen += len(chunk)
            if seen > link.size:
                raise NetworkError(f"the object store at {link.shown} sent more than the {link.size} bytes MLflow "
                                   f"announced for {what}", hint="check the object store; nothing was passed")
            yield chunk
    except requests.exceptions.RequestException:
        raise NetworkError(f"download of {what} from the object store at {link.shown} was cut off",
                           hint="re-run; nothing was passed") from None
    if seen != link.size:
        raise NetworkError(f"download of {what} from the object store at {link.shown} ended after {seen} of "
                           f"{link.size} bytes", hint="re-run; nothing was passed")
