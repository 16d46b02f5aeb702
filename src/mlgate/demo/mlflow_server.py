"""Start and stop a local `mlflow server` on loopback (used by `mlgate demo` and the tests)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from mlgate.errors import EvaluationError, UsageError
from mlgate.http import make_session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mlflow_command() -> list[str]:
    """How to run the MLflow server: the `mlflow` next to this Python, else on PATH."""
    beside = Path(sys.executable).with_name("mlflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    raise UsageError(
        "the MLflow server is not installed",
        hint="the demo needs MLflow (a test dependency): run `make setup` in a clone of the repository",
    )


class LocalMlflow:
    """A `mlflow server` on 127.0.0.1 with a SQLite store and proxied artifacts under ``workdir``.

    Started in its own process session so the whole group (it spawns workers) is stopped together.
    """

    def __init__(
        self, workdir: str | os.PathLike[str], *, port: int | None = None, startup_timeout: float = 120,
        artifact_root: str | None = None, env: dict[str, str] | None = None,
    ) -> None:
        """``artifact_root``: serve no artifacts and let clients write straight to this store URI
        (``--no-serve-artifacts --default-artifact-root``); ``env``: extra variables for the server."""
        self.workdir = Path(workdir)
        self.artifact_root = artifact_root
        self.env = env or {}
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path = self.workdir / "mlflow-server.log"

    def start(self) -> LocalMlflow:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "artifacts").mkdir(exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}
        artifacts = (["--no-serve-artifacts", "--default-artifact-root", self.artifact_root] if self.artifact_root
                     else ["--artifacts-destination", str((self.workdir / "artifacts").resolve()), "--serve-artifacts"])
        cmd = [
            *mlflow_command(), "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{(self.workdir / 'mlflow.db').resolve()}",
            *artifacts,
        ]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.workdir
            )
        deadline = time.monotonic() + self.startup_timeout
        session = make_session(total_retries=0, timeout=2)
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EvaluationError(f"the local MLflow server exited during start-up; see {self._log}")
            try:
                with session.get(f"{self.uri}/health") as answer:
                    if answer.status_code == 200:
                        session.close()
                        return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        session.close()
        self.stop()
        raise EvaluationError(
            f"the local MLflow server did not start within {self.startup_timeout:.0f} s; see {self._log}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalMlflow:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
