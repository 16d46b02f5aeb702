"""Azurite (the Azure Storage emulator, npm `azurite`) on a free loopback port, per test session."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# The emulator's documented, public development account (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _azurite_blob() -> str:
    local = REPO / "node_modules" / ".bin" / "azurite-blob"
    found = str(local) if local.exists() else shutil.which("azurite-blob")
    if not found:
        pytest.fail("azurite-blob not found: run `npm ci` (make setup) to get node_modules/.bin/azurite-blob")
    return found


class Azurite:
    def __init__(self, port: int) -> None:
        self.port = port
        self.account_url = f"http://127.0.0.1:{port}/{DEV_ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def spec(self, container: str, blob: str) -> str:
        return f"azure-blob://{self.account_url}/{container}/{blob}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the emulator's whole process group (it was started in a session of its own)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_listening(proc: subprocess.Popen[bytes], *ports: int, seconds: float = 60) -> None:
    """Wait until the emulator accepts connections on every port; fail with its stderr if it exits first."""
    deadline = time.monotonic() + seconds
    for port in ports:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"azurite exited with {proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"azurite did not start listening within {seconds:g} s")
                time.sleep(0.2)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    binary = _azurite_blob()
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    proc = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=workdir,
    )
    try:
        wait_listening(proc, port)
        yield Azurite(port)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
