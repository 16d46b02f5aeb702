"""The blob ledger follows no redirect: a 3xx to another origin is exit 3 and nothing reaches that origin."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from mlgate.cli import main
from tests.hostile.harness import check_output

KEY = "Q2FuYXJ5S2V5Rm9yVGhlQmxvYkxlZGdlclRlc3QwMTIzNDU2Nzg5YWJjZGVmZ2hpams="


class _Redirecting(http.server.BaseHTTPRequestHandler):
    target = ""
    seen: list[str] = []  # noqa: RUF012 (the test's request log)

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.seen.append(f"{self.server.server_address[1]} {self.command} {self.path}")
        if self.target:
            self.send_response(307)
            self.send_header("Location", f"{self.target}{self.path}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = _answer


@pytest.fixture
def redirecting() -> Iterator[tuple[str, str]]:
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    here, there = (f"http://127.0.0.1:{s.server_port}" for s in servers)
    _Redirecting.target = there
    _Redirecting.seen = []
    yield here, there
    _Redirecting.target = ""
    for server in servers:
        server.shutdown()
        server.server_close()


def test_blob_ledger_redirect_is_not_followed(redirecting: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    here, there = redirecting
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
                       f"BlobEndpoint={here}/devstoreaccount1;")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["audit", "verify", "--no-anchors", "--ledger", f"azure-blob://{here}/devstoreaccount1/c/ledger.jsonl"])
    output = capsys.readouterr()
    assert code == 3, output
    check_output(output.out + output.err, canaries=(KEY,))
    port = there.rsplit(":", 1)[1]
    assert _Redirecting.seen and not [hit for hit in _Redirecting.seen if hit.startswith(port)]
