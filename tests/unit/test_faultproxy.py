"""The fault proxy itself, against a trivial upstream: each mode does what it says."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from tests.fakes.faultproxy import FaultProxy, Rule, Seen, inject_raw, set_field
from tests.fakes.server import FakeServer, Reply

RUN = {"run": {"info": {"run_id": "r1", "status": "FINISHED"},
               "data": {"metrics": [{"key": "loss", "value": 0.2}, {"key": "auc", "value": 0.91}]}}}


@pytest.fixture
def upstream() -> Iterator[FakeServer]:
    server = FakeServer()
    server.add("GET", "/api/run", Reply(200, RUN))
    server.add("GET", "/api/self", lambda req: Reply(200, {"next": f"{server.url}/api/run"}))
    server.add("POST", "/api/echo", lambda req: Reply(200, {"got": req.json(), "auth": req.header("Authorization")}))
    with server:
        yield server


@pytest.fixture
def proxy(upstream: FakeServer) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url) as fp:
        yield fp


def test_passes_through_unchanged_and_logs(proxy: FaultProxy, upstream: FakeServer) -> None:
    answer = requests.post(proxy.url + "/api/echo?x=1", json={"a": 1}, headers={"Authorization": "Bearer tok"},
                           timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"got": {"a": 1}, "auth": "Bearer tok"}
    assert requests.get(proxy.url + "/api/run", timeout=5).json() == RUN
    [first, second] = proxy.seen
    assert (first.method, first.path, first.fault) == ("POST", "/api/echo?x=1", "")
    assert first.authorization == "Bearer tok"
    assert "tok" not in repr(first) and "tok" not in str(proxy.seen)  # never printed
    assert second.path == "/api/run" and len(upstream.requests) == 2


def test_self_links_are_rewritten_to_the_proxy(proxy: FaultProxy, upstream: FakeServer) -> None:
    assert requests.get(proxy.url + "/api/self", timeout=5).json() == {"next": f"{proxy.url}/api/run"}


def test_refuse_resets_the_connection(proxy: FaultProxy, upstream: FakeServer) -> None:
    proxy.add(Rule("refuse", path="/api/run"))
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/api/run", timeout=5)
    assert [s.fault for s in proxy.seen] == ["refuse"] and upstream.requests == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx(proxy: FaultProxy, status: int) -> None:
    proxy.add(Rule("5xx", path="/api/run", status=status))
    assert requests.get(proxy.url + "/api/run", timeout=5).status_code == status


def test_429_only_the_nth_match(proxy: FaultProxy) -> None:
    proxy.add(Rule("429", path="/api/run", nth=2, retry_after="7"))
    first = requests.get(proxy.url + "/api/run", timeout=5)
    second = requests.get(proxy.url + "/api/run", timeout=5)
    third = requests.get(proxy.url + "/api/run", timeout=5)
    assert (first.status_code, second.status_code, third.status_code) == (200, 429, 200)
    assert second.headers["Retry-After"] == "7"
    assert [s.fault for s in proxy.seen] == ["", "429", ""]


def test_method_must_match(proxy: FaultProxy) -> None:
    proxy.add(Rule("5xx", method="POST", path="/api/"))
    assert requests.get(proxy.url + "/api/run", timeout=5).status_code == 200
    assert requests.post(proxy.url + "/api/echo", json={}, timeout=5).status_code == 503


def test_redirect_points_at_the_other_origin_which_logs(proxy: FaultProxy, upstream: FakeServer) -> None:
    proxy.add(Rule("redirect", path="/api/run"))
    answer = requests.get(proxy.url + "/api/run?q=1", allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert proxy.other is not None
    assert answer.headers["Location"] == f"{proxy.other.url}/api/run?q=1"
    assert proxy.other.url != proxy.origin
    assert proxy.other.seen == []
    requests.get(answer.headers["Location"], headers={"Authorization": "Bearer t"}, timeout=5)
    [hit] = proxy.other.seen
    assert hit.path == "/api/run?q=1" and hit.authorization == "Bearer t"
    assert upstream.requests == []


def test_trickle_sends_headers_then_a_byte_at_a_time(proxy: FaultProxy) -> None:
    proxy.add(Rule("trickle", path="/api/run", interval=0.1))
    started = time.monotonic()
    answer = requests.get(proxy.url + "/api/run", stream=True, timeout=5)
    assert answer.status_code == 200 and time.monotonic() - started < 1
    chunks = []
    for chunk in answer.raw.stream(1, decode_content=False):
        chunks.append(chunk)
        if len(chunks) == 4:
            break
    elapsed = time.monotonic() - started
    answer.close()
    assert [len(c) for c in chunks] == [1, 1, 1, 1]
    assert 0.35 < elapsed < 2
    assert b"".join(chunks) == json.dumps(RUN).encode()[:4]


def test_garbage_is_html(proxy: FaultProxy) -> None:
    proxy.add(Rule("garbage", path="/api/run"))
    answer = requests.get(proxy.url + "/api/run", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        answer.json()


@pytest.mark.parametrize(("where", "value"), [
    ("run.data.metrics[1].value", True),
    ("run.data.metrics[key=auc].value", "0.91"),
    ("run.info", "a string"),
    ("run.info.status", {"x": 1}),
])
def test_wrong_typed_rewrites_the_real_answer(proxy: FaultProxy, where: str, value: object) -> None:
    proxy.add(Rule("wrong-typed", path="/api/run", field=where, value=value))
    body = requests.get(proxy.url + "/api/run", timeout=5).json()
    expected = set_field(json.loads(json.dumps(RUN)), where, value)
    assert body == expected and body != RUN
    assert proxy.errors == []


def test_wrong_typed_on_a_missing_field_is_recorded(proxy: FaultProxy) -> None:
    proxy.add(Rule("wrong-typed", path="/api/run", field="run.nope.x"))
    assert requests.get(proxy.url + "/api/run", timeout=5).json() == RUN
    assert len(proxy.errors) == 1 and "run.nope.x" in proxy.errors[0]


@pytest.mark.parametrize("declare", [True, False])
def test_huge_streams_more_than_the_cap(proxy: FaultProxy, declare: bool) -> None:
    proxy.add(Rule("huge", path="/api/run", size=3 << 20, declare=declare))
    answer = requests.get(proxy.url + "/api/run", timeout=10)
    assert len(answer.content) == 3 << 20
    assert ("Content-Length" in answer.headers) is declare
    assert answer.json()["x"].startswith("aaa")


def test_default_huge_is_over_mlgates_json_cap() -> None:
    from mlgate.http import MAX_JSON_BYTES

    assert Rule("huge").size > MAX_JSON_BYTES


def test_truncated_announces_more_than_it_sends(proxy: FaultProxy) -> None:
    proxy.add(Rule("truncated", path="/api/run"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(proxy.url + "/api/run", timeout=5)


def test_deep_whole_body_and_at_a_field(proxy: FaultProxy) -> None:
    proxy.add(Rule("deep", path="/api/run", nth=1))
    proxy.add(Rule("deep", path="/api/run", field="run.data", depth=1000))
    first = requests.get(proxy.url + "/api/run", timeout=5).content
    assert first.startswith(b"[" * 100_000) and first.endswith(b"]" * 100_000) and len(first) == 200_000
    second = requests.get(proxy.url + "/api/run", timeout=5).content
    assert b'"data": ' + b"[" * 1000 + b"]" * 1000 + b"}" in second


def test_bignum_whole_body_and_at_a_field(proxy: FaultProxy) -> None:
    proxy.add(Rule("bignum", path="/api/run", nth=1))
    proxy.add(Rule("bignum", path="/api/run", field="run.data.metrics[0].value"))
    assert requests.get(proxy.url + "/api/run", timeout=5).content == b"9" * 5000
    second = requests.get(proxy.url + "/api/run", timeout=5).content
    assert b'"value": ' + b"9" * 5000 + b"}" in second


def test_inject_raw_keeps_everything_else() -> None:
    body = json.dumps(RUN).encode()
    out = json.loads(inject_raw(body, "run.info.run_id", "42"))
    assert out["run"]["info"] == {"run_id": 42, "status": "FINISHED"} and out["run"]["data"] == RUN["run"]["data"]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        Rule("slow")


def test_stop_frees_the_port(upstream: FakeServer) -> None:
    proxy = FaultProxy(upstream.url).start()
    port = int(proxy.origin.rsplit(":", 1)[1])
    proxy.stop()
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))


def test_tls_termination_in_front_of_a_tls_upstream(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FaultProxy("http://127.0.0.1:1", tls=pem) as front, FaultProxy(front.url, tls=pem, upstream_ca=bundle) as fp:
        front.add(Rule("garbage", path="/"))  # the TLS upstream answers through the TLS proxy
        assert fp.url.startswith("https://") and fp.other is not None and fp.other.url.startswith("https://")
        answer = requests.get(fp.url + "/x", verify=str(bundle), timeout=5)
        assert answer.status_code == 200 and b"Sign in" in answer.content
        assert [s.path for s in front.seen] == ["/x"]


def test_seen_hides_headers_in_repr() -> None:
    seen = Seen("GET", "/", {"authorization": "Bearer secret-canary"})
    assert "secret-canary" not in repr(seen) and seen.authorization == "Bearer secret-canary"
