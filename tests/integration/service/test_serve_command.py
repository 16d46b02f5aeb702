"""`mlgate serve` as a process: waitress, JSON logs, health, clean stop, configuration errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

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
