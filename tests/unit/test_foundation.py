"""The fail-closed foundation every client shares: HTTP reads, bounded JSON, URLs, input files, the deadline."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate.deadline import DeadlineExceeded, armed, shielded
from mlgate.errors import EXIT_UNEVALUATED, EXIT_USAGE, Error, InvalidInputError, NetworkError
from mlgate.files import read_bounded, write_atomically
from mlgate.http import OffOriginRedirect, make_session, read_json, same_origin
from mlgate.jsonvalue import Fields, parse_json
from mlgate.urls import safe_host, safe_url

BIG = json.dumps({"a": list(range(50_000))}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    other = ""
    hits: list[str] = []  # noqa: RUF012 (shared request log of the test servers)

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits.append(f"{self.server.server_address[1]}{self.path} auth={self.headers.get('Authorization')}")
        if self.path == "/off":
            self._send(302, b"", Location=f"{self.other}/stolen")
        elif self.path == "/same":
            self._send(302, b"", Location="/ok")
        elif self.path in ("/ok", "/stolen"):
            self._send(200, b'{"ok": true}', Content_Type="application/json")
        elif self.path == "/gzip":
            self._send(200, gzip.compress(BIG), Content_Encoding="gzip")
        elif self.path == "/big":
            self._send(200, BIG)
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    made = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler) for _ in range(2)]
    for server in made:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    here, there = (f"http://127.0.0.1:{s.server_port}" for s in made)
    _Handler.other = there
    yield here, there
    for server in made:
        server.shutdown()
        server.server_close()


def test_redirect_to_another_origin_is_refused_and_never_followed(servers: tuple[str, str]) -> None:
    here, there = servers
    session = make_session()
    session.headers["Authorization"] = "Bearer canary-token"
    with pytest.raises(OffOriginRedirect) as caught:
        session.get(f"{here}/off")
    assert caught.value.exit_code == EXIT_UNEVALUATED
    assert "another origin" in caught.value.message
    port = there.rsplit(":", 1)[1]
    assert not [hit for hit in _Handler.hits if hit.startswith(f"{port}/stolen")]


def test_redirect_on_the_same_origin_is_followed(servers: tuple[str, str]) -> None:
    response = make_session().get(f"{servers[0]}/same", stream=True)
    assert read_json(response, what="x") == {"ok": True}


def test_a_gzip_answer_is_decoded(servers: tuple[str, str]) -> None:
    response = make_session().get(f"{servers[0]}/gzip", stream=True)
    assert len(read_json(response, what="x")["a"]) == 50_000


def test_an_answer_over_the_size_cap_is_refused(servers: tuple[str, str]) -> None:
    response = make_session().get(f"{servers[0]}/big", stream=True)
    with pytest.raises(NetworkError, match="more than 1000 bytes"):
        read_json(response, what="x", limit=1000)


def test_a_trickling_answer_is_cut_off_at_the_time_cap(servers: tuple[str, str]) -> None:
    response = make_session().get(f"{servers[0]}/trickle", stream=True)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="more than 1 s to arrive"):
        read_json(response, what="x", seconds=1)
    assert time.monotonic() - started < 5


def test_same_origin_fills_default_ports() -> None:
    assert same_origin("https://h/x", "https://H:443/y")
    assert not same_origin("https://h/x", "http://h/x")
    assert not same_origin("https://h/x", "https://h.evil/x")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * 200_000, "nested deeper"),
        ("1" * 5000, "5000 digits"),
        ('{"t": 1e999}', "infinity"),
        ('{"t": NaN}', "non-finite"),
        ("<html>login</html>", "HTML"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_parse_json_refuses_what_would_crash_or_mislead(text: str | bytes, says: str) -> None:
    with pytest.raises(NetworkError, match=says):
        parse_json(text, what="answer")


def test_fields_name_the_wrong_field_and_keep_booleans_out_of_numbers() -> None:
    body = {"run": {"info": "text", "data": {"metric": True}}}
    with pytest.raises(NetworkError, match=r"field run\.info: expected an object, got a string"):
        Fields(body, "MLflow answer").obj("run").obj("info")
    with pytest.raises(NetworkError, match=r"run\.data\.metric: expected a finite number, got a boolean"):
        Fields(body, "MLflow answer").obj("run").obj("data").number("metric")
    with pytest.raises(InvalidInputError):
        Fields([], "policy.yml", error=InvalidInputError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:PW@vault.example/x?sig=SAS#frag", "https://vault.example/x"),
        ("admin:PW@kv", "<URL with credentials>"),
        ("http://[::1", "<invalid URL>"),
        ("http://h:99999/x", "<invalid URL>"),
        ("https://[::1]:8443/p?q", "https://[::1]:8443/p"),
    ],
)
def test_urls_are_printed_without_credentials_or_query(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "PW" not in safe_host(url) and "SAS" not in safe_host(url)


def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_bounded(fifo, 1 << 20, what="policy")
    assert time.monotonic() - started < 1


def test_read_bounded_refuses_devices_directories_and_large_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="a device"):
        read_bounded("/dev/zero", 1 << 20)
    with pytest.raises(InvalidInputError, match="directory"):
        read_bounded(tmp_path, 1 << 20)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(InvalidInputError, match="limit"):
        read_bounded(big, 1000)
    assert read_bounded(big, 2000) == b"x" * 2000


def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "out.json", b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_the_deadline_interrupts_a_blocked_wait() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught, armed(0.3):
        threading.Event().wait(10)
    assert caught.value.exit_code == EXIT_UNEVALUATED
    assert time.monotonic() - started < 3


def test_a_shielded_write_finishes_before_the_deadline_is_delivered() -> None:
    done: list[str] = []
    with pytest.raises(DeadlineExceeded), armed(0.2):
        with shielded():
            time.sleep(0.5)
            done.append("write")
        done.append("after")
    assert done == ["write"]


def test_usage_errors_are_exit_2() -> None:
    assert issubclass(InvalidInputError, Error) and InvalidInputError.exit_code == EXIT_USAGE
