"""A threaded HTTP server on 127.0.0.1 with a route table and a request log, for fake services.

Usage::

    server = FakeServer()
    server.add("GET", "/{org}/{project}/_apis/pipelines/approvals", lambda req: Reply(200, body))
    server.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", Reply(200, run))  # a fixed answer
    with server:                      # starts on a free port; stops at the end
        requests.get(server.url + "/org/proj/_apis/pipelines/approvals?approvalIds=x")
    server.requests[0].query["approvalIds"] == ["x"]; server.requests[0].params["org"] == "org"

A route's ``{name}`` matches one path segment; the values are in ``Request.params``. A route
may be named (``add(..., name="Logs_Create")``, e.g. the operationId it implements): the name is
``Request.operation``, and ``of(name)`` / ``wait_for(name, count)`` find its requests. Every request
is logged once its handler has answered. Unmatched requests are answered 404 (and logged). Handlers
may raise; the server answers 500. Subclasses change these two policies by overriding
``answer`` and ``unmatched``. A ``Reply`` with status 204 or 304 is sent without a body.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    operation: str = ""  # the name of the route that matched

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as-is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if self.status in NO_BODY:
            return b"", ""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


Handler = Callable[[Request], Reply]
NO_BODY = (204, 304)


def path_pattern(template: str) -> re.Pattern[str]:
    """``/a/{b}/c`` -> an anchored regex with a named group per ``{parameter}`` (one segment each)."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (as mlgate does when it refuses one) is not a server error."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, method: str, template: str, handler: Handler | Reply, *, name: str = "") -> None:
        fn: Handler = handler if callable(handler) else (lambda _req, reply=handler: reply)
        self.routes.insert(0, (method.upper(), path_pattern(template), name, fn))  # later routes win

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def requests_to(self, fragment: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if fragment in r.path]

    def of(self, operation: str) -> list[Request]:
        """The logged requests of the route named ``operation``."""
        with self._lock:
            return [r for r in self.requests if r.operation == operation]

    def wait_for(self, operation: str, count: int = 1, timeout: float = 30.0) -> list[Request]:
        """Wait until ``count`` requests of the route named ``operation`` were answered; return them."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: sum(r.operation == operation for r in self.requests) >= count, timeout=timeout
            )
        found = self.of(operation)
        assert len(found) >= count, f"expected {count} {operation} request(s), got {len(found)}"
        return found

    def answer(self, handler: Handler, request: Request) -> Reply:
        """Run a route's handler (hook: how a handler's exception is answered)."""
        try:
            return handler(request)
        except Exception as exc:  # a bug in a test handler: answer 500, keep serving
            return Reply(500, {"message": f"fake handler failed: {type(exc).__name__}: {exc}"})

    def unmatched(self, request: Request) -> Reply:
        """The answer to a request no route matches (hook)."""
        return Reply(404, {"message": f"no fake route for {request.method} {request.path}"})

    def _dispatch(self, request: Request) -> Reply:
        try:
            for method, pattern, name, handler in self.routes:
                match = pattern.match(request.path)
                if method == request.method and match:
                    request.params = match.groupdict()
                    request.operation = name
                    return self.answer(handler, request)
            return self.unmatched(request)
        finally:
            with self._arrived:
                self.requests.append(request)
                self._arrived.notify_all()

    def start(self) -> Self:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    dict(self.headers.items()),
                    body,
                )
                reply = fake._dispatch(request)
                data, content_type = reply.encode()
                self.send_response(reply.status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _QuietServer((self.host, 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
