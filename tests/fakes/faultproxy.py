"""A fault-injecting loopback reverse proxy, for the hostile tests of every outside service.

``FaultProxy(upstream)`` listens on 127.0.0.1 (plain HTTP, or HTTPS with ``tls=`` a PEM holding a
certificate chain and key, e.g. from ``trustme``) and passes every request to ``upstream``
unchanged, except where a :class:`Rule` (method + path regex, optionally only the Nth match)
injects a fault. The upstream's own base URL is rewritten to the proxy's in answers (bodies and
``Location``), like any reverse proxy, so self-links such as Key Vault's ``nextLink`` stay on the
proxy's origin. Usage::

    with FaultProxy(mlflow_uri) as proxy:
        proxy.add(Rule("5xx", path=r"/model-versions/get$", status=503))
        proxy.add(Rule("wrong-typed", path=r"/runs/get$", field="run.data.metrics[key=auc].value", value=True))
        proxy.add(Rule("429", path=r"/runs/get$", nth=1, retry_after="1"))   # only the first match
        ... point the client at proxy.url ...
        proxy.seen        # every request the proxy received (Seen records)
        proxy.other.seen  # every request that reached the "other origin" a redirect points to

Modes (``Rule.mode``):

* ``refuse``: read the request, then reset the connection without answering.
* ``5xx``: answer ``status`` (default 503) with a JSON error body.
* ``429``: answer 429 with ``Retry-After: retry_after``.
* ``redirect``: answer ``status`` (default 302) with ``Location`` on :attr:`FaultProxy.other`, a
  second listener on another port (another origin) that logs every request reaching it.
* ``trickle``: the upstream's real status and headers, then its body one byte every ``interval`` s.
* ``garbage``: 200 with an HTML sign-in page (not JSON).
* ``wrong-typed``: the upstream's real JSON answer with the value at ``field`` (dotted path:
  ``a.b[0].c``, ``a.list[key=auc].value``) replaced by ``value``.
* ``huge``: 200 with a JSON body of ``size`` bytes, streamed in chunks (``declare``: with a
  Content-Length, else chunked).
* ``truncated``: the upstream's real headers, a Content-Length larger than the body, half the
  body, then the connection is closed.
* ``deep``: JSON nested ``depth`` (100,000) levels, as the whole body or at ``field``.
* ``bignum``: a ``digits`` (5000) digit integer, as the whole body or at ``field``.

Each logged :class:`Seen` keeps the request's headers (``Authorization`` included, for
assertions) but its ``repr`` never shows them.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPResponse, HTTPSConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

MODES = ("refuse", "5xx", "429", "redirect", "trickle", "garbage", "wrong-typed", "huge", "truncated", "deep",
         "bignum")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length", "host"}
GARBAGE = (b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
           b"<body><form>Sign in to continue</form></body></html>")
_SENTINEL = "\u0000faultproxy-injected\u0000"


@dataclass(frozen=True)
class Rule:
    """A fault for the requests whose method and path match (``path`` is a regex searched in the path)."""

    mode: str
    path: str = ""
    method: str = "*"
    nth: int | None = None  # only the Nth matching request (1-based); None: every match
    status: int = 0  # 5xx: default 503; redirect: default 302
    retry_after: str = "1"
    field: str = ""  # wrong-typed / deep / bignum: where in the upstream's JSON answer
    value: Any = True  # wrong-typed: the replacement value
    interval: float = 0.5  # trickle: seconds between bytes
    size: int = (64 << 20) + (1 << 20)  # huge: body bytes (just over mlgate's 64 MiB JSON cap)
    declare: bool = False  # huge: announce a Content-Length
    depth: int = 100_000
    digits: int = 5000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r} (one of {', '.join(MODES)})")


@dataclass(frozen=True)
class Seen:
    """One request as the proxy (or the other origin) received it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str] = field(repr=False)  # lower-cased names; holds Authorization: never print it
    fault: str = ""  # the mode injected, "" when passed through

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


# -- JSON surgery ----------------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^=\]]+)=([^\]]*)\]")


def _steps(path: str) -> list[str | int | tuple[str, str]]:
    steps: list[str | int | tuple[str, str]] = []
    for match in _STEP.finditer(path):
        name, index, key, wanted = match.groups()
        steps.append(name if name is not None else int(index) if index is not None else (key, wanted))
    return steps


def _child(node: Any, step: str | int | tuple[str, str]) -> Any:
    if isinstance(step, tuple):
        key, wanted = step
        return next(i for i, item in enumerate(node) if isinstance(item, dict) and str(item.get(key)) == wanted)
    if isinstance(step, int) or isinstance(node, dict):
        return step
    raise KeyError(step)


def set_field(document: Any, path: str, value: Any) -> Any:
    """``document`` with the value at the dotted ``path`` replaced (KeyError/IndexError/StopIteration if absent)."""
    steps = _steps(path)
    node = document
    for step in steps[:-1]:
        node = node[_child(node, step)]
    last = _child(node, steps[-1])
    if isinstance(node, dict) and last not in node:  # the field must exist in the real answer
        raise KeyError(last)
    node[last] = value
    return document


def inject_raw(body: bytes, path: str, raw: str) -> bytes:
    """The JSON ``body`` with the value at ``path`` replaced by the raw JSON text ``raw``."""
    document = set_field(json.loads(body), path, _SENTINEL)
    return json.dumps(document).replace(json.dumps(_SENTINEL), raw).encode()


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- listeners ---------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler still trickling to a client
    request_queue_size = 64


def _tls_context(pem: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    return context


class _Listener:
    """A threaded HTTP(S) server on 127.0.0.1 whose handler calls ``owner._handle(handler)``."""

    def __init__(self, owner: Any, tls: Path | None) -> None:
        serve = owner

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _any(self) -> None:
                serve._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            self.server.socket = _tls_context(tls).wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(handler: BaseHTTPRequestHandler) -> tuple[dict[str, str], bytes]:
    headers = {k.lower(): v for k, v in handler.headers.items()}
    length = int(headers.get("content-length") or 0)
    return headers, handler.rfile.read(length) if length else b""


def _send(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    handler.send_response(status)
    for key, value in headers:
        if key.lower() not in HOP_BY_HOP:
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class OtherOrigin:
    """The origin an off-origin redirect points to: logs every request and answers ``body`` (JSON)."""

    def __init__(self, tls: Path | None = None, body: Any = None) -> None:
        self.body = {} if body is None else body
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._listener = _Listener(self, tls)
        self.url = self._listener.url

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        headers, _ = _read_request(handler)
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, headers))
        _send(handler, 200, [("Content-Type", "application/json")], json.dumps(self.body).encode())

    def stop(self) -> None:
        self._listener.stop()


class FaultProxy:
    """A reverse proxy in front of ``upstream`` that injects the faults its rules describe."""

    def __init__(self, upstream: str, *, tls: Path | None = None, upstream_ca: Path | None = None,
                 rewrite: bool = True) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._tls = tls
        self._upstream_ca = upstream_ca
        self._rewrite = rewrite
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.errors: list[str] = []  # rules that could not be applied (e.g. a field absent from the answer)
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: _Listener | None = None
        self.other: OtherOrigin | None = None

    # -- set-up ------------------------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self._counts.clear()
            self.seen.clear()
            self.errors.clear()
        if self.other is not None:
            self.other.seen.clear()

    @property
    def url(self) -> str:
        assert self._listener is not None, "proxy not started"
        return self._listener.url + self._prefix

    @property
    def origin(self) -> str:
        assert self._listener is not None, "proxy not started"
        return self._listener.url

    def faulted(self, mode: str | None = None) -> list[Seen]:
        """The requests a fault was injected into (of ``mode``, or of any)."""
        with self._lock:
            return [s for s in self.seen if s.fault and (mode is None or s.fault == mode)]

    def start(self) -> Self:
        self._stopping.clear()
        self.other = OtherOrigin(self._tls)
        self._listener = _Listener(self, self._tls)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self.other is not None:
            self.other.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request ---------------------------------------------------------------------------------------
    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for i, rule in enumerate(self.rules):
                if rule.method not in ("*", method) or not re.search(rule.path, path.split("?")[0]):
                    continue
                self._counts[i] = self._counts.get(i, 0) + 1
                if rule.nth is None or rule.nth == self._counts[i]:
                    return rule
            return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        headers, body = _read_request(handler)
        rule = self._match(handler.command, handler.path)
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, headers, rule.mode if rule else ""))
        if rule is None:
            answer = self._forward(handler.command, handler.path, headers, body)
            _send(handler, answer.status, answer.headers, answer.body)
            return
        handler.close_connection = True
        getattr(self, "_fault_" + rule.mode.replace("-", "_").replace("5xx", "server_error").replace(
            "429", "throttle"))(handler, rule, headers, body)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(self.upstream)
        connection: HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(self._upstream_ca) if self._upstream_ca else None)
            connection = HTTPSConnection(parts.netloc, timeout=30, context=context)
        else:
            connection = HTTPConnection(parts.netloc, timeout=30)
        sent = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        try:
            connection.request(method, path, body=body or None, headers=sent)
            response: HTTPResponse = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            status = response.status
        finally:
            connection.close()
        if self._rewrite:
            data = data.replace(self.upstream.encode(), self.origin.encode())
            kept = [(k, v.replace(self.upstream, self.origin)) for k, v in kept]
        return Answer(status, kept, data)

    # -- the faults ------------------------------------------------------------------------------------------
    def _fault_refuse(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                      body: bytes) -> None:
        sock = handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no answer
        sock.close()

    def _fault_server_error(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                            body: bytes) -> None:
        status = rule.status or 503
        error = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "fault injected: upstream unavailable",
                 "error": {"code": "ServiceUnavailable", "message": "fault injected: upstream unavailable"}}
        _send(handler, status, [("Content-Type", "application/json")], json.dumps(error).encode())

    def _fault_throttle(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                        body: bytes) -> None:
        error = {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "fault injected: too many requests",
                 "error": {"code": "Throttled", "message": "fault injected: too many requests"}}
        _send(handler, 429, [("Content-Type", "application/json"), ("Retry-After", rule.retry_after)],
              json.dumps(error).encode())

    def _fault_redirect(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                        body: bytes) -> None:
        assert self.other is not None
        _send(handler, rule.status or 302, [("Location", self.other.url + handler.path)], b"")

    def _fault_garbage(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                       body: bytes) -> None:
        _send(handler, rule.status or 200, [("Content-Type", "text/html; charset=utf-8")], GARBAGE)

    def _json_fault(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str], body: bytes,
                    raw: str) -> None:
        if not rule.field:
            _send(handler, 200, [("Content-Type", "application/json")], raw.encode())
            return
        answer = self._forward(handler.command, handler.path, headers, body)
        try:
            data = inject_raw(answer.body, rule.field, raw)
        except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
            with self._lock:
                self.errors.append(f"{rule.mode} {rule.field!r} not in the answer to {handler.path}: {exc!r}")
            data = answer.body
        _send(handler, answer.status, answer.headers, data)

    def _fault_wrong_typed(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                           body: bytes) -> None:
        self._json_fault(handler, rule, headers, body, json.dumps(rule.value))

    def _fault_deep(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                    body: bytes) -> None:
        self._json_fault(handler, rule, headers, body, deep_json(rule.depth))

    def _fault_bignum(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                      body: bytes) -> None:
        self._json_fault(handler, rule, headers, body, "9" * rule.digits)

    def _fault_trickle(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                       body: bytes) -> None:
        answer = self._forward(handler.command, handler.path, headers, body)
        handler.send_response(answer.status)
        for key, value in answer.headers:
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.flush()
        try:
            for i in range(len(answer.body)):
                if self._stopping.wait(rule.interval):
                    return
                handler.wfile.write(answer.body[i:i + 1])
                handler.wfile.flush()
        except OSError:  # the client gave up: what a time cap does
            return

    def _fault_huge(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                    body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if rule.declare:
            handler.send_header("Content-Length", str(rule.size))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for chunk in _huge_chunks(rule.size):
                if self._stopping.is_set():
                    return
                handler.wfile.write(chunk if rule.declare else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if not rule.declare:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            return

    def _fault_truncated(self, handler: BaseHTTPRequestHandler, rule: Rule, headers: dict[str, str],
                         body: bytes) -> None:
        answer = self._forward(handler.command, handler.path, headers, body)
        handler.send_response(answer.status)
        for key, value in answer.headers:
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(answer.body) + 1000))
        handler.end_headers()
        handler.wfile.write(answer.body[: len(answer.body) // 2])
        handler.wfile.flush()


_FILLER = b"a" * (1 << 20)


def _huge_chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes of one JSON object ``{"x": "aaaa..."}`` (valid JSON, only too big)."""
    head, tail = b'{"x": "', b'"}'
    filler = size - len(head) - len(tail)
    yield head
    while filler > 0:
        n = min(len(_FILLER), filler)
        yield _FILLER if n == len(_FILLER) else _FILLER[:n]
        filler -= n
    yield tail


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s passed (for asserting on logs)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
