"""--connect-timeout / --read-timeout: validated, applied, and a late first byte named as such."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from mlgate.cli import main
from mlgate.errors import NetworkError
from mlgate.lineage.mlflow import DEFAULT_TIMEOUTS, MlflowClient, Timeouts, current_timeouts, set_timeouts


class _Late(http.server.BaseHTTPRequestHandler):
    """Answers /server-info with 404 at once and every artifact download only after two seconds."""

    def do_GET(self) -> None:
        if "server-info" in self.path:
            self.send_error(404)
            return
        time.sleep(2.0)
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def late_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Late)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    set_timeouts(DEFAULT_TIMEOUTS)


def test_a_late_first_byte_is_named_with_the_timeout(late_server: str) -> None:
    client = MlflowClient(late_server, timeouts=Timeouts(connect=2, read=0.3))
    with pytest.raises(NetworkError) as caught:
        b"".join(client.stream_artifact("1/m/model.bin"))
    message = str(caught.value)
    assert message.startswith(f"MLflow at {late_server} sent no byte of artifact 1/m/model.bin within 0.3 s")
    assert "raise --read-timeout or enable presigned downloads" in message
    assert caught.value.exit_code == 3


def test_a_long_enough_read_timeout_waits(late_server: str) -> None:
    client = MlflowClient(late_server, timeouts=Timeouts(connect=2, read=10))
    assert b"".join(client.stream_artifact("1/m/model.bin")) == b"hello"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e9", "soon"])
@pytest.mark.parametrize("option", ["--connect-timeout", "--read-timeout"])
def test_bad_timeouts_are_usage_errors_naming_the_option(option: str, value: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lineage", "m/1", f"{option}={value}"]) == 2
    assert option in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["MLGATE_CONNECT_TIMEOUT", "MLGATE_READ_TIMEOUT"])
def test_bad_timeout_variables_are_usage_errors_naming_them(variable: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(variable, "0")
    assert main(["gate", "m/1", "--policy", "p.yaml"]) == 2
    assert variable in capsys.readouterr().err


def test_the_options_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Timeouts] = []
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLGATE_CONNECT_TIMEOUT", "2.5")

    def record(*args: object, **kwargs: object) -> int:
        seen.append(current_timeouts())
        return 0

    import mlgate.commands.lineage as lineage

    monkeypatch.setattr(lineage, "run", record)
    assert main(["lineage", "m/1", "--read-timeout", "120"]) == 0
    assert seen == [Timeouts(connect=2.5, read=120)]
    assert MlflowClient("http://127.0.0.1:9", timeouts=seen[0]).timeouts.read == 120
