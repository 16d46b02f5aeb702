"""Two `mlgate serve` replicas on one Azure Storage (Azurite): one SIGKILLed mid-run, nothing lost or doubled.

200 signed GitHub deliveries spread over both replicas (a delivery whose replica is down goes
to the other, as a load balancer would send it). The real gate runs, against an MLflow that
answers slowly and then with a body that is not JSON, so each evaluation takes a while and fails closed
("could not evaluate" -> rejected). Once some callbacks have arrived, one replica is killed
with SIGKILL while it holds jobs: those come back visible and the other replica finishes them.
Every delivery gets exactly one callback. A restarted replica refuses a replay of a delivery it
saw before the restart.

The kill does not race the replica: the test holds MLflow's answers, so every evaluation stalls
and the replica's jobs stop moving; once the table shows none it is *sending* (the one window the
back-end documents as at-least-once, between the platform's answer to a completion and the
``completed`` write) and its log shows jobs it is evaluating whose entries are still ``queued``,
it is killed, and MLflow answers again. Those jobs are sure to be left for the other replica.
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
from mlgate.service.state.azure_storage import replica_id
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


class SlowMlflow:
    """An MLflow that takes 0.3 s to answer each request, then answers 200 with a body that is not JSON;
    ``hold`` stalls every answer."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.answering = threading.Event()
        self.answering.set()
        threading.Thread(target=self._serve, daemon=True).start()

    def hold(self) -> None:
        self.answering.clear()

    def release(self) -> None:
        self.answering.set()

    def _answer(self, conn: socket.socket) -> None:
        time.sleep(0.3)
        self.answering.wait(60)
        with conn:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
                         b"Connection: close\r\n\r\ngarbage")

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()


@pytest.fixture
def slow_mlflow() -> Iterator[SlowMlflow]:
    mlflow = SlowMlflow()
    yield mlflow
    mlflow.release()
    mlflow.server.close()


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


def _running(replica: Replica) -> set[str]:
    return {e["job_id"] for e in replica.events("job_started")} - {e["job_id"] for e in replica.events("job_finished")}


def _kill_while_evaluating(replica: Replica, table: TableClient, mlflow: SlowMlflow) -> set[str]:
    """SIGKILL ``replica`` while MLflow is held: it sends no completion and evaluates jobs no one has
    completed; the ids of the jobs it held (started, not finished, from its whole log).

    Held, no evaluation can end, so within a moment every completion under way has been written
    and the replica's workers all wait on MLflow with entries still ``queued``. The replica is
    frozen (SIGSTOP) while the table is read, so it cannot claim a completion between the read
    and the kill; the table, not the log (whose read may lag), says whether it is sending.
    """
    owner = replica_id(replica.process.pid)
    mlflow.hold()
    try:
        for _ in range(300):
            replica.process.send_signal(signal.SIGSTOP)  # frozen while the table is read: no claim slips in
            time.sleep(0.1)  # a table write it made just before it stopped lands
            entries = {e["RowKey"][:16]: e for e in table.list_entities(select=["RowKey", "State", "Owner"])}
            sending = [job for job, e in entries.items() if e.get("Owner") == owner and e.get("State") == "sending"]
            evaluating = [job for job in _running(replica) if job in entries and entries[job].get("State") == "queued"]
            if not sending and evaluating:
                replica.process.kill()
                replica.process.wait(10)
                break
            replica.process.send_signal(signal.SIGCONT)
            time.sleep(0.1)
        else:
            raise AssertionError(f"the held replica still sends {sending} or evaluates nothing: {_running(replica)}")
    finally:
        mlflow.release()
    assert replica.reader is not None
    replica.reader.join(10)  # its whole log, to the end of the pipe
    return _running(replica)


def test_two_replicas_one_killed_every_delivery_gets_exactly_one_callback(
    tmp_path: Path, policy_file: Path, app_key: tuple[str, bytes], fake_github: FakeGitHub,
    azurite_state: AzuriteState, slow_mlflow: SlowMlflow,
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
        "MLFLOW_TRACKING_URI": slow_mlflow.url,
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
            held = _kill_while_evaluating(replicas[0], table, slow_mlflow)
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
        assert all(r["state"] == "rejected" for r in fake_github.reviews())  # MLflow's answer was not JSON: fail closed
        assert all("MLflow" in r["comment"] for r in fake_github.reviews()), fake_github.reviews()[0]["comment"]
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
