"""Start and stop a local Azurite blob service on loopback (used by `mlgate demo --store azure-blob`).

Azurite is the Azure Storage emulator (npm package ``azurite``). It is found as the repository's
``node_modules/.bin/azurite-blob`` (``npm ci`` / ``make setup`` put it there) or on PATH. It keeps
its data in a throwaway workspace and is reached with the emulator's well-known development
account, which is public and grants nothing outside this emulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from mlgate.demo.mlflow_server import free_port
from mlgate.errors import EvaluationError, UsageError

# The emulator's documented, public development account (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BINARY = Path("node_modules") / ".bin" / "azurite-blob"
# where `npm ci` puts the emulator: this source checkout, then the working directory
SEARCH_ROOTS: tuple[Path, ...] = (Path(__file__).resolve().parents[3], Path())


def azurite_command() -> str:
    """The `azurite-blob` of this checkout (or of the working directory), else the one on PATH."""
    for repo in SEARCH_ROOTS:
        if (repo / BINARY).is_file():
            return str((repo / BINARY).resolve())
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise UsageError(
        "the Azure Storage emulator (azurite-blob) is not installed",
        hint="run `npm ci` in the mlgate repository (or `make setup`) to get node_modules/.bin/azurite-blob, "
             "or `npm install -g azurite` to put it on PATH",
    )


class LocalAzurite:
    """An Azurite blob service on 127.0.0.1 keeping its data under ``workdir``, in a process session of its own."""

    def __init__(self, workdir: str | os.PathLike[str], *, startup_timeout: float = 60,
                 debug_log: Path | None = None) -> None:
        """``debug_log``: Azurite's debug log (one ``RequestMethod=`` line per request), e.g. to count requests."""
        self.workdir = Path(workdir)
        self.debug_log = debug_log
        self.port = free_port()
        self.account_url = f"http://127.0.0.1:{self.port}/{DEV_ACCOUNT}"
        self.connection_string = (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                                  f"BlobEndpoint={self.account_url};")
        self.startup_timeout = startup_timeout
        self.log = self.workdir / "azurite.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalAzurite:
        binary = azurite_command()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.workdir),
               "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"]
        if self.debug_log:
            cmd += ["--debug", str(self.debug_log)]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                          cwd=self.workdir)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EvaluationError(f"the local Azurite exited during start-up; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise EvaluationError(f"the local Azurite did not start within {self.startup_timeout:.0f} s; see {self.log}")

    def create_container(self, name: str) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContainerClient

        try:
            with ContainerClient.from_connection_string(self.connection_string, name) as container:
                container.create_container()
        except AzureError as exc:
            raise EvaluationError(f"could not create container {name} in the local Azurite: "
                                  f"{type(exc).__name__}; see {self.log}") from None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalAzurite:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
