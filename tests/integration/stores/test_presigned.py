"""An S3-backed ``mlflow-artifacts`` proxy with presigned downloads: mlgate reads the bytes from the store.

A real ``mlflow server --serve-artifacts --artifacts-destination s3://...`` on moto advertises
``multipart_downloads_enabled`` in ``/server-info`` (its S3 repository is a ``MultipartDownloadMixin``);
mlgate talks to it through a loopback forwarder that logs every request, so the test can show
that the proxy handed out presigned URLs and never served a file's bytes.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from mlgate.cli import main
from mlgate.demo.mlflow_server import free_port, mlflow_command
from mlgate.lineage.mlflow import MlflowClient
from tests.integration.lineage.conftest import POLICY, Built, build_model, model_files, write_tree
from tests.integration.stores.conftest import _ENV, CONTAINER, moto_s3

ROOT = f"s3://{CONTAINER}/proxied"
_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive", "content-encoding"}


@dataclass
class Forwarder:
    """A loopback HTTP relay in front of the tracking server, logging ``(method, path)`` of each request."""

    target: str
    log: list[tuple[str, str]] = field(default_factory=list)
    without_presigned: bool = False  # answer /server-info with 404, as an older server does
    late: float = 0.0  # hold back the headers of proxied file downloads this long
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Forwarder:
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _relay(self) -> None:
                path = self.path.split("?", 1)[0]
                relay.log.append((self.command, path))
                if relay.without_presigned and path.endswith("/mlflow/server-info"):
                    self.send_error(404)
                    return
                if relay.late and path.startswith("/api/2.0/mlflow-artifacts/artifacts/"):
                    time.sleep(relay.late)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}}
                answer = requests.request(self.command, relay.target + self.path, headers=headers, data=body,
                                          allow_redirects=False, timeout=60)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _relay

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass(frozen=True)
class Proxied:
    uri: str  # what mlgate is pointed at (the forwarder)
    forwarder: Forwarder
    env: dict[str, str]
    models: dict[str, Built]
    policy: Path
    s3: Any


@contextlib.contextmanager
def _mlflow(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    cmd = [*mlflow_command(), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{(workdir / 'mlflow.db').resolve()}",
           "--serve-artifacts", "--artifacts-destination", ROOT]
    with open(workdir / "mlflow-server.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir,
                                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env})
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not start; see {workdir / 'mlflow-server.log'}")
        yield uri
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    work = tmp_path_factory.mktemp("mlflow-presigned")
    saved = {name: os.environ.pop(name) for name in _ENV if name in os.environ}
    try:
        with moto_s3() as (env, s3), _mlflow(work, env) as uri:
            models = {name: build_model(uri, work / "models", name, files=model_files(2, 2))
                      for name in ("presigned", "tampered", "proxy-path", "slow")}
            forwarder = Forwarder(uri).start()
            policy = work / "policy.yaml"
            policy.write_text(POLICY)
            try:
                yield Proxied(forwarder.uri, forwarder, env, models, policy, s3)
            finally:
                forwarder.stop()
    finally:
        os.environ.update(saved)


@pytest.fixture
def on_proxy(proxied: Proxied, monkeypatch: pytest.MonkeyPatch) -> Proxied:
    """mlgate pointed at the forwarder, with no store credential at all (the presigned URL is the access)."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxied.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "canary-token-presigned-7f3a")
    proxied.forwarder.log.clear()
    proxied.forwarder.without_presigned, proxied.forwarder.late = False, 0.0
    return proxied


def _downloads(log: list[tuple[str, str]]) -> list[str]:
    return [p for m, p in log if m == "GET" and p.startswith("/api/2.0/mlflow-artifacts/artifacts/")]


def test_the_server_advertises_presigned_downloads(on_proxy: Proxied) -> None:
    assert MlflowClient.from_env().presigned_downloads() is True


def test_seal_and_verify_read_the_bytes_from_the_store(on_proxy: Proxied, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    built = on_proxy.models["presigned"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    presigned = [p for m, p in on_proxy.forwarder.log if p.startswith("/api/2.0/mlflow-artifacts/presigned/")]
    assert len(presigned) == len(built.files)
    assert _downloads(on_proxy.forwarder.log) == []  # the proxy served no file's bytes
    local = write_tree(tmp_path / "deploy", built.files)
    on_proxy.forwarder.log.clear()
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 0
    assert any(p.startswith("/api/2.0/mlflow-artifacts/presigned/") for _, p in on_proxy.forwarder.log)
    assert _downloads(on_proxy.forwarder.log) == []  # the manifest came from the store too
    assert "canary-token-presigned-7f3a" not in capsys.readouterr().out


def test_an_object_changed_in_the_store_is_refused(on_proxy: Proxied, capsys: pytest.CaptureFixture[str]) -> None:
    built = on_proxy.models["tampered"]
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    keys = [o["Key"] for o in on_proxy.s3.list_objects_v2(Bucket=CONTAINER)["Contents"]]
    key = next(k for k in keys if k.endswith(f"{built.model_id}/artifacts/data/part1/w1.bin"))
    on_proxy.s3.put_object(Bucket=CONTAINER, Key=key, Body=b"poisoned weights")
    capsys.readouterr()
    assert main(["gate", built.ref, "--policy", str(on_proxy.policy), "--platform", "local"]) == 1
    printed = capsys.readouterr()
    assert "data/part1/w1.bin" in printed.out + printed.err
    assert _downloads(on_proxy.forwarder.log) == []


def test_a_server_without_the_feature_keeps_the_proxy_path(on_proxy: Proxied, tmp_path: Path) -> None:
    built = on_proxy.models["proxy-path"]
    on_proxy.forwarder.without_presigned = True
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    assert len(_downloads(on_proxy.forwarder.log)) == len(built.files)
    assert not any("/mlflow-artifacts/presigned/" in p for _, p in on_proxy.forwarder.log)
    local = write_tree(tmp_path / "deploy", built.files)
    assert main(["verify", str(local), "--model", built.ref, "--platform", "local"]) == 0


def test_a_slow_first_byte_is_named_as_such(on_proxy: Proxied, capsys: pytest.CaptureFixture[str]) -> None:
    built = on_proxy.models["slow"]
    on_proxy.forwarder.without_presigned, on_proxy.forwarder.late = True, 1.5
    capsys.readouterr()
    assert main(["seal", "--model", built.ref, "--platform", "local", "--read-timeout", "0.5"]) == 3
    err = capsys.readouterr().err
    assert "sent no byte of artifact " in err and "within 0.5 s" in err, err
    assert "raise --read-timeout or enable presigned downloads" in err
    assert "cannot reach MLflow" not in err
    capsys.readouterr()
    assert main(["seal", "--model", built.ref, "--platform", "local", "--read-timeout", "20"]) == 0
