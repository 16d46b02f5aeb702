"""A store that answers 403, 503 or garbage: exit 3 naming the store and container/bucket, never the key."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.hostile.harness import Case, assert_case, run_in_process
from tests.integration.stores.conftest import StoreSetup

CANARY = base64.b64encode(b"CANARY-store-key-0123456789abcdef").decode()
ANSWERS = {  # (status, body, what the message must say); bodies in the shape both services document
    "403": (403, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b"<Message>This request is not authorized to perform this operation using this permission."
                 b"</Message></Error>", "access refused (HTTP 403"),
    "503": (503, b"", "answered HTTP 503"),
    "garbage": (200, b"<html><body>captive portal</body></html>", "not an"),
}


class _Fake(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, bytes, str] = (500, b"", "")

    def _reply(self) -> None:
        status, body, _ = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_store() -> Iterator[tuple[int, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_a_failing_store_is_exit_3_naming_it(
    kind: str, store: StoreSetup, fake_store: tuple[int, type[_Fake]],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, handler = fake_store
    handler.answer = ANSWERS[kind]
    case = Case(f"{store.name}-{kind}", ("seal", "--model", store.models["run"].ref, "--platform", "local"), 3,
                env=store.failing_env(port, CANARY), canaries=(CANARY,), says=(*store.says, ANSWERS[kind][2]))
    code, output = run_in_process(case.argv, capsys, monkeypatch, env=case.env)
    assert_case(case, code, output)
