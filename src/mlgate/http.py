"""``requests`` sessions that fail closed: timeouts, bounded retries, same-origin redirects, capped bodies.

Every client of mlgate that speaks HTTP through ``requests`` (MLflow, Azure DevOps, GitHub,
the identity endpoints, the check service's callbacks) gets its session from
:func:`make_session`:

* every request has a (connect, read) timeout;
* 429/5xx are retried a bounded number of times, honouring ``Retry-After``;
* a redirect is followed only to the **same origin** (scheme, host, port) and at most
  :data:`MAX_REDIRECTS` times; a 3xx to another origin raises :class:`OffOriginRedirect`
  (exit 3), so another host can never supply an answer or receive our credentials;
* :func:`read_body` / :func:`read_json` read an answer with a size cap and a wall-clock cap
  (a server trickling one byte at a time cannot stall the gate), and parse JSON with the
  bounds of :mod:`mlgate.jsonvalue`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from mlgate import __version__
from mlgate.errors import Error, NetworkError
from mlgate.urls import safe_url

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
MAX_JSON_BYTES = 64 << 20  # an API answer larger than this is refused
BODY_SECONDS = 60.0  # the longest an API answer may take to arrive once its headers came
_READ_STEP = 64 << 10


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url`` with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


class OffOriginRedirect(NetworkError):
    """A server answered a redirect to another origin (exit 3); it was not followed."""


class TimeoutSession(requests.Session):
    """A Session whose every request has a timeout and whose redirects stay on one origin."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.max_redirects = MAX_REDIRECTS

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        here = resp.url or (resp.request.url if resp.request is not None else "") or ""
        there = urllib.parse.urljoin(here, target)
        if not same_origin(here, there):
            resp.close()
            raise OffOriginRedirect(
                f"{safe_url(here)} answered {resp.status_code} redirecting to another origin "
                f"({safe_url(there)}); it was not followed",
                hint="point mlgate at the service itself (not at a proxy or login page that redirects "
                "elsewhere); nothing was passed",
            )
        return target


def make_session(
    *,
    total_retries: int = 4,
    backoff_factor: float = 0.5,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retry_methods: frozenset[str] | None = None,
) -> requests.Session:
    """A session retrying 429/5xx a bounded number of times, honouring ``Retry-After``.

    POSTs are retried too by default: MLflow's write calls used here (set tag, set alias)
    are idempotent. Pass ``retry_methods`` to narrow it. urllib3 itself follows no
    redirect (``redirect=False``): requests does, through the same-origin check above.
    """
    retry = Retry(
        total=total_retries,
        connect=total_retries,
        read=2,
        redirect=False,
        status=total_retries,
        backoff_factor=backoff_factor,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=retry_methods or frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"}),
        respect_retry_after_header=True,
        raise_on_redirect=False,
        raise_on_status=False,
    )
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"mlgate/{__version__}"
    return session


def read_body(
    response: requests.Response,
    *,
    what: str,
    limit: int = MAX_JSON_BYTES,
    seconds: float = BODY_SECONDS,
    error: type[Error] = NetworkError,
    cut_off: Callable[[str], Exception] | None = None,
) -> bytes:
    """The decoded body of ``response``, refusing more than ``limit`` bytes or more than ``seconds`` to arrive.

    Works for streamed (``stream=True``) and already-read responses; a streamed one is read as
    it arrives (``read1``), so a server trickling a byte at a time is caught, and decoded
    (gzip/deflate) as ``requests`` would. A limit raises ``error`` (exit 3 by default) naming it;
    an answer cut off raises ``cut_off(message)`` when given (the Azure SDK's retry policy wants
    its own exception type), else ``error``.
    """
    if getattr(response, "_content_consumed", False):  # already read by requests (not streamed)
        data = response.content or b""
        if len(data) > limit:
            raise error(f"{what}: larger than {_size(limit)} (limit)", hint=_HINT)
        return data
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise error(f"{what}: announces {declared} bytes, more than {_size(limit)} (limit)", hint=_HINT)
    buffer = _read_capped(response, what=what, limit=limit, seconds=seconds, error=error, cut_off=cut_off)
    response._content = buffer
    setattr(response, "_content_consumed", True)  # noqa: B010 (not in requests' type stubs)
    return buffer


_HINT = "check that the address points at the service itself; nothing was passed"


def _read_capped(response: requests.Response, *, what: str, limit: int, seconds: float, error: type[Error],
                 cut_off: Callable[[str], Exception] | None) -> bytes:
    started = time.monotonic()
    buffer = bytearray()
    raw = response.raw
    try:
        while True:
            chunk = raw.read1(_READ_STEP, decode_content=True)  # what has arrived; never waits for more
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > limit:
                raise error(f"{what}: larger than {_size(limit)} (limit)", hint=_HINT)
            if time.monotonic() - started > seconds:
                raise error(f"{what}: took more than {seconds:.0f} s to arrive (limit; the server is trickling "
                            "or stalled)", hint="check the service and the network; nothing was passed")
    except Error:  # our own (a limit above, the command's DeadlineExceeded)
        raise
    except Exception as exc:  # requests/urllib3 read errors (ProtocolError, ReadTimeoutError, ...)
        message = f"{what}: the answer was cut off or timed out ({type(exc).__name__})"
        if cut_off is not None:
            raise cut_off(message) from None
        raise error(message, hint="re-run; nothing was passed") from None
    finally:
        response.close()
    return bytes(buffer)


def read_json(
    response: requests.Response,
    *,
    what: str,
    limit: int = MAX_JSON_BYTES,
    seconds: float = BODY_SECONDS,
) -> Any:
    """The JSON value of ``response``'s body, read with :func:`read_body` and parsed with bounds."""
    from mlgate.jsonvalue import parse_json

    return parse_json(read_body(response, what=what, limit=limit, seconds=seconds), what=what)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"
