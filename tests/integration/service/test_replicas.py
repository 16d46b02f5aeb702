"""Two `mlgate serve` replicas on one Azure Storage (Azurite): one SIGKILLed mid-run, nothing lost or doubled.

200 signed GitHub deliveries spread over both replicas (a delivery whose replica is down goes
to the other, as a load balancer would send it). The real gate runs, against an MLflow that
answers slowly and then with garbage, so each evaluation takes a while and fails closed
("could not evaluate" -> rejected). Once some callbacks have arrived, one replica is killed
with SIGKILL while it holds jobs: those come back visible and the other replica finishes them.
Every delivery gets exactly one callback. A restarted replica refuses a replay of a delivery it
saw before the restart.

The kill is timed outside the one window the back-end documents as at-least-once (between the
platform's answer to a completion and the ``completed`` write): the replica is frozen
(SIGSTOP), the table is checked for a job it is *sending*, and it is killed only when there is
none and it is evaluating a job whose entry is still ``queued`` (else it is let run a moment
and checked again), so some job is sure to be left for the other replica.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableClient

from mlgate.service.github_protection_rule import sign
from tests.integration.service.conftest import APP_ID, AzuriteState
from tests.integration.service.fakes import FakeGitHub
from tests.integration.service.test_github_protection_rule import rule_payload

pytestmark = pytest.mark.integration
DELIVERIES = 200


@dataclass
class Replica:
    process: subprocess.Popen[str]
    port: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line.get("event") == name]


def start_replica(env: dict[str, str]) -> Replica:
    process = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    replica = Replica(process)
    listening = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for text in process.stderr:
            try:
                entry = json.loads(text)  # every log line is JSON
            except ValueError:
                entry = {"event": "not-json", "text": text[:2000]}
            replica.lines.append(entry)
            if entry.get("event") == "listening":
                replica.port = int(entry["port"])
                listening.set()

    replica.reader = threading.Thread(target=read, daemon=True)
    replica.reader.start()
    if not listening.wait(60):
        process.kill()
        pytest.fail(f"the replica did not start: {replica.lines[-3:]}")
    return replica


@pytest.fixture
def slow_mlflow() -> Iterator[str]:
    """An MLflow that takes 0.3 s to answer each request, then answers garbage."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def answer(conn: socket.socket) -> None:
        time.sleep(0.3)
        with conn:
            conn.sendall(b"garbage\r\n\r\n")

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _send(replicas: list[Replica], first: int, delivery: str, body: bytes, secret: str) -> requests.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "deployment_protection_rule",
               "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(secret, body)}
    for attempt in range(40):  # the load balancer: a replica that is down -> the other one; 503 -> later
        replica = replicas[(first + attempt) % len(replicas)]
        try:
            answer = requests.post(f"{replica.url}/github/webhook", data=body, headers=headers, timeout=30)
        except requests.RequestException:  # refused, or cut off mid-answer by the kill
            continue
        if answer.status_code != 503:
            return answer
        time.sleep(1.0)
    raise AssertionError("no replica accepted the delivery")


def _kill_outside_the_completion_window(replica: Replica, table: TableClient) -> set[str]:
    """SIGKILL ``replica`` while it sends no completion and is evaluating a job no one has completed;
    the ids of the jobs it held (started, not finished, from its whole log).

    Frozen, it cannot move a job on: a job its log shows started whose entry is still ``queued``
    is one another replica must take over, so the kill is sure to land mid-run. The log read so
    far may lag (a finished job looks started), so the table, not the log, decides.
    """
    owner = f"{socket.gethostname()[:60]}:{replica.process.pid}"
    for _ in range(300):
        replica.process.send_signal(signal.SIGSTOP)
        time.sleep(0.1)  # let a table write it made just before it stopped land
        entries = {e["RowKey"][:16]: e for e in table.list_entities(select=["RowKey", "State", "Owner"])}
        running = {e["job_id"] for e in replica.events("job_started")} - {
            e["job_id"] for e in replica.events("job_finished")}
        sending = any(e.get("Owner") == owner and e.get("State") == "sending" for e in entries.values())
        if not sending and any(entries.get(job, {}).get("State") in ("accepting", "queued") for job in running):
            replica.process.kill()
            replica.process.wait(10)
            assert replica.reader is not None
            replica.reader.join(10)  # its whole log, to the end of the pipe
            return {e["job_id"] for e in replica.events("job_started")} - {
                e["job_id"] for e in replica.events("job_finished")}
        replica.process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the replica was never evaluating a job without sending a completion")


def test_two_replicas_one_killed_every_delivery_gets_exactly_one_callback(
    tmp_path: Path, policy_file: Path, app_key: tuple[str, bytes], fake_github: FakeGitHub,
    azurite_state: AzuriteState, slow_mlflow: str,
) -> None:
    secret = f"replica-webhook-canary-{uuid.uuid4().hex}"
    names = azurite_state.names()
    env = {
        **os.environ,
        "MLGATE_SERVE_POLICY": str(policy_file),
        "MLGATE_SERVE_GITHUB_APP_ID": str(APP_ID),
        "MLGATE_SERVE_GITHUB_PRIVATE_KEY": app_key[0],
        "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": secret,
        "MLGATE_SERVE_GITHUB_API_URL": fake_github.url,
        "MLGATE_SERVE_WORKERS": "4",
        "MLGATE_SERVE_VISIBILITY_TIMEOUT_SECONDS": "5",
        "MLGATE_SERVE_POLL_SECONDS": "0.5",
        "MLFLOW_TRACKING_URI": slow_mlflow,
        **{f"MLGATE_SERVE_{key.upper()}": value for key, value in names.items()},
    }
    replicas = [start_replica(env), start_replica(env)]
    table = TableClient.from_connection_string(names["state_connection_string"], names["state_table"])
    bodies = [
        (str(uuid.uuid4()), json.dumps(rule_payload(fake_github, environment=f"bench-{i}",
                                                     deployment_payload={"model": f"models:/fraud/{i + 1}"})).encode())
        for i in range(DELIVERIES)
    ]
    statuses: collections.Counter[str] = collections.Counter()
    try:
        def deliver(i: int) -> None:
            answer = _send(replicas, i % 2, bodies[i][0], bodies[i][1], secret)
            statuses[f"{answer.status_code} {answer.json().get('status')}"] += 1

        with ThreadPoolExecutor(20) as pool:
            sent = pool.map(deliver, range(DELIVERIES))
            deadline = time.monotonic() + 120
            while len(fake_github.reviews()) < 30:
                assert time.monotonic() < deadline, "no callbacks arrived"
                time.sleep(0.05)
            held = _kill_outside_the_completion_window(replicas[0], table)
            list(sent)
        assert statuses["200 accepted"] + statuses["200 duplicate"] == DELIVERIES, statuses
        deadline = time.monotonic() + 180
        while len({r["environment_name"] for r in fake_github.reviews()}) < DELIVERIES:
            assert time.monotonic() < deadline, f"lost: {DELIVERIES - len(fake_github.reviews())} callbacks"
            time.sleep(0.2)
        time.sleep(1.0)
        callbacks = collections.Counter(r["environment_name"] for r in fake_github.reviews())
        assert set(callbacks) == {f"bench-{i}" for i in range(DELIVERIES)}
        assert [name for name, count in callbacks.items() if count != 1] == [], "a delivery got two callbacks"
        assert held, "the killed replica held no job: the kill did not land mid-run"
        finished_by_survivor = {e["job_id"] for e in replicas[1].events("job_finished") if e["attempt"] >= 2} | {
            e["job_id"] for e in replicas[1].events("completion_already_sent")}  # done, only not yet deleted
        # (a held job may also have been completed by the killed replica just before it logged job_finished)
        about = [line for replica in replicas for line in list(replica.lines) if line.get("job_id") in held]
        assert held & finished_by_survivor, f"no job of the killed replica was taken over by the other: {about}"
        assert all(r["state"] == "rejected" for r in fake_github.reviews())  # MLflow answered garbage: fail closed
        assert fake_github.violations == []

        restarted = start_replica(env)  # the killed replica comes back: it refuses a delivery seen before
        replicas.append(restarted)
        replay = _send([restarted], 0, bodies[0][0], bodies[0][1], secret)
        assert replay.status_code == 200 and replay.json() == {"status": "duplicate"}
        time.sleep(1.0)
        assert collections.Counter(r["environment_name"] for r in fake_github.reviews())["bench-0"] == 1
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGCONT)
                replica.process.terminate()
                replica.process.wait(30)
    logs = json.dumps([line for replica in replicas for line in replica.lines])
    assert secret not in logs and app_key[0].splitlines()[1] not in logs
