"""`mlgate serve` as a process: waitress, JSON logs, health, clean stop, configuration errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.integration.lineage.conftest import POLICY
from tests.integration.service.fakes import FakeAzureDevOps
from tests.integration.service.test_azure_devops_check import check_headers

pytestmark = pytest.mark.integration


def test_serve_runs_under_waitress_and_stops_cleanly(tmp_path: Path, policy_file: Path) -> None:
    key = "serve-key-canary-5f1c"
    env = {
        **os.environ,
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_AZURE_DEVOPS_KEY": key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            entry = json.loads(line)  # every log line is JSON
            if entry["event"] == "listening":
                port = entry["port"]
        assert port, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        health = requests.get(f"{base}/healthz", timeout=5).json()
        assert health == {
            "status": "ok",
            "version": health["version"],
            "azure_devops_check": True,
            "github_protection_rule": False,
            "state": "in-process",
            "pending_evaluations": 0,
        }
        wrong = requests.post(
            f"{base}/azure-devops/check", json={"model": "m/1"}, headers={"X-Mlgate-Key": "nope"}, timeout=5
        )
        assert wrong.status_code == 401
        github = requests.post(f"{base}/github/webhook", data=b"{}", timeout=5)
        assert github.status_code == 404  # not configured on this instance
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    text = "".join(lines) + err
    events = [json.loads(line)["event"] for line in text.splitlines() if line.strip()]
    assert "service_configured" in events and "request" in events and "stopping" in events
    assert key not in text


def test_serve_configuration_error_exits_2_with_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "mlgate", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "the service needs a release policy" in result.stderr
    assert "MLGATE_SERVE_POLICY" in result.stderr


def test_sigterm_lets_acknowledged_evaluations_finish(tmp_path: Path, fake_ado: FakeAzureDevOps) -> None:
    """The real process and gate (MLflow hanging): stopped mid-evaluation, it still completes every check."""
    key = "drain-key-canary-77aa"
    policy_file = tmp_path / "release-policy.yaml"
    policy_file.write_text(POLICY)
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(16)
    dead_port = slow.getsockname()[1]

    def answer_slowly_with_garbage() -> None:  # an MLflow that takes 1.5 s, then answers nonsense
        while True:
            try:
                conn, _ = slow.accept()
            except OSError:
                return
            time.sleep(1.5)
            with conn:
                conn.sendall(b"garbage\r\n\r\n")

    threading.Thread(target=answer_slowly_with_garbage, daemon=True).start()
    env = {
        **os.environ,
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_AZURE_DEVOPS_KEY": key,
        "MLGATE_SERVE_AZURE_DEVOPS_ALLOWED_HOSTS": "127.0.0.1",
        "MLGATE_SERVE_WORKERS": "1",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{dead_port}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = None
        while port is None:
            line = process.stderr.readline()
            assert line, "the service stopped before listening"
            entry = json.loads(line)
            port = entry["port"] if entry["event"] == "listening" else None
        for _ in range(2):  # one worker: the second call waits in the queue
            headers = check_headers(fake_ado, None, **{"X-Mlgate-Key": key})
            response = requests.post(
                f"http://127.0.0.1:{port}/azure-devops/check",
                json={"model": "models:/fraud/1"},
                headers=headers,
                timeout=10,
            )
            assert response.status_code == 200
        assert fake_ado.of("Events_Post Event") == []  # still evaluating when the stop arrives
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
        slow.close()
    assert process.returncode == 0
    assert fake_ado.results() == ["failed", "failed"]  # both completed before the process exited
    assert "COULD NOT EVALUATE" in fake_ado.log_text()
    assert "MLflow" in fake_ado.log_text()
    assert key not in err and fake_ado.auth_token not in err


def test_the_wsgi_entry_point_for_other_servers(policy_file: Path) -> None:
    env = {**os.environ, "MLGATE_SERVE_POLICY": str(policy_file), "MLGATE_SERVE_AZURE_DEVOPS_KEY": "wsgi-canary"}
    code = (
        "from io import BytesIO\n"
        "from mlgate.service.wsgi import application\n"
        "seen = []\n"
        "body = b''.join(application({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/healthz', 'wsgi.input': BytesIO()},"
        " lambda status, headers: seen.append(status)))\n"
        "print(seen[0], body.decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.partition(" {")
    assert status == "200 OK"
    assert json.loads("{" + body)["azure_devops_check"] is True
    assert "wsgi-canary" not in result.stderr + result.stdout


def test_serve_outlives_the_command_deadline(policy_file: Path) -> None:
    """--deadline bounds the start-up only: a listening service is not stopped by it."""
    env = {**os.environ, "MLGATE_SERVE_POLICY": str(policy_file), "MLGATE_SERVE_AZURE_DEVOPS_KEY": "dl-canary"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "--deadline", "1", "serve", "--port", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        port = None
        while port is None:
            line = process.stderr.readline()
            assert line, "the service stopped before listening"
            entry = json.loads(line)
            port = entry["port"] if entry["event"] == "listening" else None
        time.sleep(2.5)  # well past the deadline
        assert process.poll() is None, "the service was stopped by the command deadline"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
