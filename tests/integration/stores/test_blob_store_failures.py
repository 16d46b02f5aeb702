"""A blob store that answers 403, 503 or garbage: exit 3 naming the store and container, never the key."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.hostile.harness import Case, assert_case, run_in_process
from tests.integration.stores.conftest import BlobSetup

CANARY = base64.b64encode(b"CANARY-blob-key-0123456789abcdef").decode()
ANSWERS = {  # (status, body, what the message must say)
    "403": (403, b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
                 b"<Message>This request is not authorized to perform this operation using this permission."
                 b"</Message></Error>", "access refused (HTTP 403)"),
    "503": (503, b"", "answered HTTP 503"),
    "garbage": (200, b"<html><body>captive portal</body></html>", "not an Azure Storage answer"),
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
def fake_blob() -> Iterator[tuple[http.server.ThreadingHTTPServer, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_a_failing_blob_store_is_exit_3_naming_it(
    kind: str, on_blob: BlobSetup, fake_blob: tuple[http.server.ThreadingHTTPServer, type[_Fake]],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, handler = fake_blob
    handler.answer = ANSWERS[kind]
    port = server.server_address[1]
    connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={CANARY};"
                  f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    case = Case(kind, ("seal", "--model", on_blob.models["blob-run"].ref, "--platform", "local"), 3,
                env={"AZURE_STORAGE_CONNECTION_STRING": connection}, canaries=(CANARY,),
                says=("Azure Blob", "container mlflow of account devstoreaccount1", "AZURE_STORAGE_CONNECTION_STRING",
                      ANSWERS[kind][2]))
    code, output = run_in_process(case.argv, capsys, monkeypatch, env=case.env)
    assert_case(case, code, output)
