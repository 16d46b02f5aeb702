"""MLflow unreachable or answering garbage: exit 3, never 0."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.demo.mlflow_server import free_port


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture()
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same retry code path, without the production back-off (seconds per request)."""
    import mlgate.lineage.mlflow as client_module
    from mlgate.http import make_session

    monkeypatch.setattr(client_module, "make_session", lambda: make_session(total_retries=1, backoff_factor=0))


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ndefault_risk: low\nrisk_classes:\n  low:\n    lineage: [source_run_finished]\n")
    return str(path)


@pytest.mark.parametrize("command", ["gate", "lineage", "seal", "verify"])
def test_unreachable_mlflow_is_exit_3(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    argv = {
        "gate": ["gate", "m/1", "--policy", _policy(tmp_path), "--evidence-dir", str(tmp_path / "ev")],
        "lineage": ["lineage", "m/1"],
        "seal": ["seal", "--model", "m/1"],
        "verify": ["verify", str(tmp_path), "--model", "m/1"],
    }[command]
    assert main([*argv, "--platform", "local"]) == 3
    assert "cannot reach MLflow" in capsys.readouterr().err
    assert not (tmp_path / "ev" / "evidence.json").exists()


@pytest.mark.parametrize("command", ["gate", "lineage"])
def test_garbage_answers_are_exit_3(command: str, garbage_server: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", garbage_server)
    argv = ["gate", "m@prod", "--policy", _policy(tmp_path), "--evidence-dir", str(tmp_path / "ev")] \
        if command == "gate" else ["lineage", "m@prod"]
    assert main([*argv, "--platform", "local"]) == 3
    assert "not JSON" in capsys.readouterr().err
