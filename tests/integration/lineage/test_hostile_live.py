"""The real MLflow server behind a loopback proxy that spoils one answer, and a store altered under it.

Whatever the proxy spoils (a redirect to another origin that serves the real answer, a metric
turned into ``true``, ``run.info`` into a string, a listing that repeats its page token), the
gate must not pass: exit 3 naming what was wrong. A stored manifest replaced by garbage in the
real artifact store is tampering: exit 1.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from mlgate.cli import main
from tests.hostile.harness import check_output

from .conftest import Built, build_model

Spoil = Callable[[str, int, bytes], tuple[int, bytes, dict[str, str]]]


def spoiling_proxy(upstream: str, spoil: Spoil) -> http.server.ThreadingHTTPServer:
    class Proxy(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=30,
                                      allow_redirects=False)
            status, payload, extra = spoil(self.path, answer.status_code, answer.content)
            self.send_response(status)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, format: str, *args: object) -> None:
            return None

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)


def _path(path: str) -> str:
    return urllib.parse.urlsplit(path).path


def redirect_runs_elsewhere(upstream: str) -> Spoil:
    """``runs/get`` answered with a 302 to the same server under another origin (``localhost``)."""
    port = urllib.parse.urlsplit(upstream).port

    def spoil(path: str, status: int, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if _path(path).endswith("/runs/get"):
            return 302, b"", {"Location": f"http://localhost:{port}{path}"}
        return status, body, {}

    return spoil


def edit_run(change: Callable[[dict[str, object]], None]) -> Spoil:
    def spoil(path: str, status: int, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if _path(path).endswith("/runs/get") and status == 200:
            doc = json.loads(body)
            change(doc["run"])
            return status, json.dumps(doc).encode(), {}
        return status, body, {}

    return spoil


def _metric_true(run: dict[str, object]) -> None:
    data = run["data"]
    assert isinstance(data, dict)
    for metric in data["metrics"]:
        metric["value"] = True


def _info_string(run: dict[str, object]) -> None:
    run["info"] = "FINISHED"


def repeat_listing_token(path: str, status: int, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    if _path(path).endswith("/artifacts/directories") and status == 200:
        doc = json.loads(body)
        doc["next_page_token"] = "again"
        return status, json.dumps(doc).encode(), {}
    return status, body, {}


@pytest.fixture()
def proxy(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Spoil], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(spoil: Spoil) -> str:
        server = spoiling_proxy(mlflow_server, spoil)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        return uri

    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "GITHUB_ACTIONS", "TF_BUILD", "MLGATE_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


CASES = {
    "redirect-off-origin": ((lambda upstream: redirect_runs_elsewhere(upstream)), "another origin"),
    "metric-true": ((lambda upstream: edit_run(_metric_true)), "expected a finite number, got a boolean"),
    "run-info-string": ((lambda upstream: edit_run(_info_string)), "field run.info: expected an object"),
    "listing-repeats-its-page-token": ((lambda upstream: repeat_listing_token), "repeated a next_page_token"),
}


@pytest.mark.parametrize("mode", sorted(CASES))
def test_a_spoiled_answer_never_passes_the_gate(
    mode: str, mlflow_server: str, sealed: dict[str, Built], policy_file: Path, proxy: Callable[[Spoil], str],
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = sealed["traced"]
    argv = ["gate", built.ref, "--policy", str(policy_file), "--evidence-dir", str(tmp_path / "ev"),
            "--platform", "local"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert main(argv) == 0, capsys.readouterr()  # the real answers pass
    make, says = CASES[mode]
    proxy(make(mlflow_server))
    capsys.readouterr()
    assert main(argv) == 3
    captured = capsys.readouterr()
    check_output(captured.out + captured.err, says=(says,))


def test_a_stored_manifest_replaced_by_garbage_is_tampering(
    mlflow_server: str, mlflow_artifacts_root: Path, tmp_path: Path, policy_file: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    built = build_model(mlflow_server, tmp_path, "garbage-manifest")
    assert main(["seal", "--model", built.ref, "--platform", "local"]) == 0
    stored = next(mlflow_artifacts_root.rglob(f"{built.model_id}/mlgate-manifests/*.json"))
    stored.write_bytes(b"\x00garbage, not a manifest")
    files = tmp_path / "files"
    for name, data in built.files.items():
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_bytes(data)
    capsys.readouterr()
    assert main(["verify", str(files), "--model", built.ref, "--platform", "local"]) == 1
    captured = capsys.readouterr()
    check_output(captured.out + captured.err, says=("stored manifest", "replaced after sealing"))
    assert main(["gate", built.ref, "--policy", str(policy_file), "--evidence-dir", str(tmp_path / "ev"),
                 "--platform", "local"]) == 1
