"""azure-core plumbing that keeps the Azure SDKs on the hosts mlgate was pointed at, with answers bounded and typed.

The Key Vault client and every azure-identity credential mlgate builds send through a
:class:`GuardedTransport` (azure-core's ``transport=`` seam, which both SDKs accept):

* a request to an origin outside its :class:`Guard` is refused before a byte is sent, so a
  ``nextLink``, a discovery document or a redirect can never carry a bearer token elsewhere;
* a 3xx answer is refused unless the pipeline has a redirect policy (Key Vault's is
  :class:`SameOriginRedirectPolicy`: same origin only, at most :data:`MAX_REDIRECTS`);
* an answer is read with a size cap (:data:`MAX_ANSWER_BYTES`) and a wall-clock cap
  (:data:`ANSWER_SECONDS`), so a huge or trickling answer cannot stall the gate;
* a 2xx body must be JSON within :mod:`mlgate.jsonvalue`'s bounds and pass the guard's field
  checks *before* the SDK parses it; a non-2xx body that is not bounded JSON is dropped, so the
  SDK reports the status alone.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.policies import RedirectPolicy
from azure.core.pipeline.transport import HttpTransport

from mlgate.errors import Error
from mlgate.http import OffOriginRedirect, origin, read_body, same_origin
from mlgate.jsonvalue import parse_json
from mlgate.urls import safe_host, safe_url

MAX_ANSWER_BYTES = 1 << 20  # Key Vault secrets are at most 25 KiB; tokens and list pages a few KiB
ANSWER_SECONDS = 30.0
MAX_REDIRECTS = 5

Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class Guard:
    """Where one client may send requests, and how its answers are checked.

    ``check(url, value)`` receives every parsed 2xx answer and raises ``error`` naming the field
    that is wrong. ``redirects``: 3xx answers go up to the pipeline's redirect policy.
    """

    service: str
    origins: frozenset[Origin]
    error: type[Error]
    check: Callable[[str, Any], None]
    redirects: bool = False
    #: what replaces a non-2xx body that is not bounded JSON (the SDK then reports the status)
    substitute: Callable[[int], bytes] = lambda _status: b""
    limit: int = field(default_factory=lambda: MAX_ANSWER_BYTES)
    seconds: float = field(default_factory=lambda: ANSWER_SECONDS)

    @classmethod
    def of(cls, service: str, urls: Iterable[str], error: type[Error], check: Callable[[str, Any], None],
           **kwargs: Any) -> Guard:
        return cls(service, frozenset(origin(u) for u in urls if u), error, check, **kwargs)

    def allows(self, url: str) -> bool:
        try:
            return origin(url) in self.origins
        except ValueError:
            return False

    def names(self) -> str:
        """The allowed origins, as printed."""
        def show(scheme: str, host: str, port: int | None) -> str:
            host = f"[{host}]" if ":" in host else host
            return safe_host(f"{scheme}://{host}" + (f":{port}" if port else ""))

        return ", ".join(sorted(show(*each) for each in self.origins))


class WrappedTransport(HttpTransport[Any, Any]):
    """azure-core's ``RequestsTransport`` (built from ``kwargs``) behind one seam: a subclass checks in ``send``."""

    def __init__(self, **kwargs: Any) -> None:
        from azure.core.pipeline.transport import RequestsTransport

        self.inner: Any = RequestsTransport(**kwargs)

    def __enter__(self) -> WrappedTransport:
        self.inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.inner.__exit__(*args)

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def sleep(self, duration: float) -> None:
        self.inner.sleep(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        return self.inner.send(request, **kwargs)


class GuardedTransport(WrappedTransport):
    """:class:`WrappedTransport` enforcing a :class:`Guard` on every request."""

    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard

    def send(self, request: Any, **kwargs: Any) -> Any:
        url = str(request.url)
        if not self.guard.allows(url):
            raise self.guard.error(
                f"{self.guard.service}: refused to send a request to {safe_url(url)}, another origin than "
                f"{self.guard.names()}; no token was sent",
                hint="an answer pointed mlgate elsewhere (a next link, a discovery document or a redirect); "
                "check that the address is the service itself",
            )
        wants_stream = bool(kwargs.pop("stream", False))
        response = self.inner.send(request, stream=True, **kwargs)
        if wants_stream:
            return response
        self._screen(url, response.internal_response)
        if hasattr(response, "read"):  # azure.core.rest responses: load the (already read) body
            response.read()
        return response

    def _screen(self, url: str, response: requests.Response) -> None:
        guard = self.guard
        status = response.status_code
        if 300 <= status < 400 and not guard.redirects:
            response.close()
            raise _redirect_error(guard, url, status, response.headers.get("Location", ""))
        what = f"{guard.service}: the answer to {safe_url(url)}"
        data = read_answer(response, what=what, limit=guard.limit, seconds=guard.seconds, error=guard.error)
        if 200 <= status < 300:
            guard.check(url, parse_json(data, what=what, error=guard.error))
        elif data:
            try:
                parse_json(data, what=what, error=guard.error)
            except Error:
                data = guard.substitute(status)  # HTML, or JSON beyond bounds: the status alone speaks
        response._content = data
        setattr(response, "_content_consumed", True)  # noqa: B010 (not in requests' type stubs)


def _redirect_error(guard: Guard, url: str, status: int, location: str) -> Error:
    target = urllib.parse.urljoin(url, location) if location else ""
    where = f" to {safe_url(target)}" if target else ""
    kind = "another origin" if target and not same_origin(url, target) else "the same origin"
    return guard.error(
        f"{guard.service}: {safe_url(url)} answered HTTP {status} redirecting{where} ({kind}); it was not followed",
        hint="identity endpoints answer directly, never with a redirect; check the endpoint variables",
    )


def read_answer(response: requests.Response, *, what: str, limit: int = MAX_ANSWER_BYTES,
                seconds: float = ANSWER_SECONDS, error: type[Error] = Error) -> bytes:
    """:func:`mlgate.http.read_body` for the Azure SDKs: a cut-off answer is azure-core's
    ``ServiceResponseError`` (its retry policy decides); a limit is ``error`` (exit 3, not retried).
    """
    return read_body(response, what=what, limit=limit, seconds=seconds, error=error, cut_off=ServiceResponseError)


class SameOriginRedirectPolicy(RedirectPolicy[Any, Any]):
    """azure-core's redirect policy, following a redirect only to the same origin (else exit 3, not followed)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(redirect_max=MAX_REDIRECTS, **kwargs)

    def increment(self, settings: dict[str, Any], response: Any, redirect_location: str) -> bool:
        here = str(response.http_request.url)
        there = urllib.parse.urljoin(here, redirect_location)
        if not same_origin(here, there):
            raise OffOriginRedirect(
                f"{safe_url(here)} answered {response.http_response.status_code} redirecting to another origin "
                f"({safe_url(there)}); it was not followed and no token was sent",
                hint="pass the vault's own URL (https://NAME.vault.azure.net); nothing was handed over",
            )
        return bool(super().increment(settings, response, redirect_location))
