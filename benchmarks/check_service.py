"""Benchmark of `mlgate serve`: acknowledgement latency under 50 concurrent signed deliveries.

Starts the check service under waitress in its own process (gate replaced by a 20 ms stub,
so the numbers are the service's, not MLflow's), a spec-backed fake GitHub in this process
that receives the protection-rule callbacks, and sends 500 signed `deployment_protection_rule`
deliveries from 50 concurrent clients over loopback. Then resends 50 of them (replays) and
checks that every delivery produced exactly one callback and no replay produced any.

Modes, in the same run:

* ``reference`` -- a bare WSGI app under the same waitress settings that only reads the body and
  answers 200 (the floor any WSGI service on this machine can reach);
* ``in-process`` -- one `mlgate serve` process, the in-process state (the default);
* ``azure-storage x2, one killed`` -- two processes sharing an Azure Storage queue and table
  (Azurite's queue and table services from node_modules, in memory), deliveries spread over both,
  one SIGKILLed once a third of the deliveries were acknowledged; a delivery whose replica is down
  goes to the other (as a load balancer would send it). Its jobs come back after the visibility
  timeout (10 s here) and the other replica finishes them.

For each mode: acknowledgements per second, p50/p99 acknowledgement, p50/p99 time from delivery
to callback, and one line ``MODE: N deliveries, lost L, duplicate D`` (after the replays).

Goal (DESIGN §7): p99 acknowledgement under 1 s at 50 concurrent deliveries, nothing lost.
Run: PYTHONPATH=src python benchmarks/check_service.py (needs node_modules: `npm ci`)
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the spec-backed fakes live with the tests

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from tests.integration.service.fakes import FakeGitHub  # noqa: E402

from mlgate.service.github_protection_rule import sign  # noqa: E402

DELIVERIES = 500
CLIENTS = 50
REPLAYS = 50
APP_ID = 4711
SECRET = f"bench-secret-{uuid.uuid4().hex}"

SERVER = r"""
import sys, time
from waitress.server import create_server

mode = sys.argv[1]
if mode == "reference":
    def app(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
else:
    from mlgate.service import logs
    from mlgate.service.app import create_app
    from mlgate.service.config import load_config
    from mlgate.service.evaluation import GateResult

    RESULT = GateResult(
        passed=True,
        evidence_sha256="f" * 64,
        evidence_json='{"decision": "passed"}',
        markdown="## mlgate: PASSED\n\n| rule | result |\n|---|---|\n| lineage | passed |",
        summary="all rules passed",
    )

    def evaluate(ref, **kwargs):
        time.sleep(0.02)  # a stub gate: the service's cost is what is measured
        return RESULT

    logs.configure()
    app = create_app(load_config(), evaluator=evaluate)
server = create_server(app, host="127.0.0.1", port=0, threads=8)
print(server.effective_port, flush=True)
server.run()
"""


def start_server(mode: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port:
        process.kill()
        raise SystemExit(f"the {mode} server did not start")
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(base + "/healthz", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    return process, base


class TimedGitHub(FakeGitHub):
    """The spec-backed fake GitHub, noting when each environment's first callback arrived and how many came."""

    def __init__(self, app_id: int, public_key_pem: bytes) -> None:
        self.first_seen: dict[str, float] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self._times_lock = threading.Lock()
        super().__init__(app_id, public_key_pem)

    def _callback(self, request: Any) -> Any:
        reply = super()._callback(request)
        environment = str(request.json().get("environment_name"))
        with self._times_lock:
            self.first_seen.setdefault(environment, time.perf_counter())
            self.counts[environment] += 1
        return reply


@dataclass
class Run:
    mode: str
    latencies: list[float]
    wall: float
    statuses: collections.Counter[int]
    to_callback: list[float] = field(default_factory=list)
    lost: int = 0
    duplicate: int = 0


Delivery = tuple[str, bytes, str, str]  # delivery id, body, signature, environment


def build_deliveries(tag: str, fake: FakeGitHub, count: int = DELIVERIES) -> list[Delivery]:
    deliveries = []
    created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # a fresh deployment
    for i in range(count):
        environment = f"{tag}-{i}"  # echoed as environment_name: one callback per delivery
        payload = {
            "action": "requested",
            "environment": environment,
            "event": "push",
            "deployment_callback_url": fake.callback_url(run_id=1000 + i),
            "deployment": {"payload": {"model": f"models:/bench/{i + 1}"}, "created_at": created_at},
            "installation": {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
        }
        body = json.dumps(payload).encode()
        deliveries.append((str(uuid.uuid4()), body, sign(SECRET, body), environment))
    return deliveries


class Sender:
    """50 concurrent clients behind a load balancer: a replica that is down -> the next; 503 -> again later."""

    def __init__(self, bases: list[str], kill_after: int | None = None, kill: Any = None) -> None:
        self.bases = bases
        self.kill_after, self.kill = kill_after, kill
        self.sent_at: dict[str, float] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._acks = 0

    def _post(self, base: str, item: Delivery) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        delivery, body, signature, _ = item
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "deployment_protection_rule",
                   "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature}
        return session.post(base + "/github/webhook", data=body, timeout=30, headers=headers)

    def send(self, index: int, item: Delivery) -> tuple[float, int]:
        began = time.perf_counter()
        self.sent_at.setdefault(item[3], began)
        status = 0
        for attempt in range(120):
            try:
                status = self._post(self.bases[(index + attempt) % len(self.bases)], item).status_code
            except requests.RequestException:  # refused, or cut off mid-answer by the kill
                self._local.session = None
                continue
            if status != 503:
                break
            time.sleep(0.5)
        with self._lock:
            self._acks += 1
            if self.kill is not None and self._acks == self.kill_after:
                self.kill()
        return time.perf_counter() - began, status

    def blast(self, deliveries: list[Delivery]) -> tuple[list[float], float, collections.Counter[int]]:
        began = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(self.send, range(len(deliveries)), deliveries))
        return [r[0] for r in results], time.perf_counter() - began, collections.Counter(r[1] for r in results)


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class AzuriteQueues:
    """Azurite's queue and table services on free loopback ports, in memory (node_modules/.bin/azurite)."""

    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # public dev key

    def __init__(self) -> None:
        binary = str(ROOT / "node_modules" / ".bin" / "azurite")
        if not Path(binary).exists():
            binary = shutil.which("azurite") or ""
        if not binary:
            raise SystemExit("azurite not found: run `npm ci`")
        ports = [self._free_port() for _ in range(3)]
        self.queue_port, self.table_port = ports[1], ports[2]
        self.workdir = tempfile.mkdtemp(prefix="azurite-bench-")
        self.process = subprocess.Popen(
            [binary, "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]), "--queueHost", "127.0.0.1",
             "--queuePort", str(ports[1]), "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
             "--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--loose", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir,
        )
        deadline = time.monotonic() + 60
        for port in ports[1:]:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("azurite did not start") from None
                    time.sleep(0.2)

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def env(self) -> dict[str, str]:
        account = "devstoreaccount1"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={self.KEY};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{account};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{account};"
        )
        return {"MLGATE_SERVE_STATE": "azure-storage", "MLGATE_SERVE_STATE_CONNECTION_STRING": connection,
                "MLGATE_SERVE_VISIBILITY_TIMEOUT_SECONDS": "10", "MLGATE_SERVE_POLL_SECONDS": "0.5"}

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(self.workdir, ignore_errors=True)


def finish(run: Run, fake: TimedGitHub, sender: Sender, deliveries: list[Delivery], replay_to: list[str]) -> Run:
    """Wait for the callbacks, replay some deliveries, count what was lost and what came twice."""
    expected = [d[3] for d in deliveries]
    deadline = time.monotonic() + 120
    while any(env not in fake.first_seen for env in expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    Sender(replay_to).blast(deliveries[:REPLAYS])
    time.sleep(1.5)
    run.to_callback = [fake.first_seen[env] - sender.sent_at[env] for env in expected if env in fake.first_seen]
    run.lost = sum(1 for env in expected if env not in fake.first_seen)
    run.duplicate = sum(1 for env in expected if fake.counts[env] > 1)
    return run


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def run_reference(env: dict[str, str], fake: TimedGitHub) -> Run:
    process, base = start_server("reference", env)
    try:
        sender = Sender([base])
        sender.blast(build_deliveries("warm-ref", fake, 50))
        return Run("reference: bare WSGI, reads body", *sender.blast(build_deliveries("ref", fake)))
    finally:
        stop(process)


def run_in_process(env: dict[str, str], fake: TimedGitHub) -> Run:
    process, base = start_server("mlgate", env)
    try:
        Sender([base]).blast(build_deliveries("warm-mem", fake, 50))  # connections, imports, first token
        deliveries = build_deliveries("mem", fake)
        sender = Sender([base])
        run = Run("in-process", *sender.blast(deliveries))
        return finish(run, fake, sender, deliveries, [base])
    finally:
        stop(process)


def run_azure_storage(env: dict[str, str], fake: TimedGitHub) -> Run:
    azurite = AzuriteQueues()
    state_env = {**env, **azurite.env()}
    servers = [start_server("mlgate", state_env) for _ in range(2)]
    bases = [base for _, base in servers]
    try:
        Sender(bases).blast(build_deliveries("warm-az", fake, 50))
        deliveries = build_deliveries("az", fake)

        def kill() -> None:
            servers[0][0].kill()

        sender = Sender(bases, kill_after=DELIVERIES // 3, kill=kill)
        run = Run("azure-storage x2, one killed", *sender.blast(deliveries))
        return finish(run, fake, sender, deliveries, [bases[1]])
    finally:
        for process, _ in servers:
            stop(process)
        azurite.stop()


def main() -> int:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake = TimedGitHub(APP_ID, public).start()
    policy = Path(tempfile.mkdtemp(prefix="mlgate-bench-")) / "policy.yaml"
    policy.write_text("version: 1\ndefault_risk: low\nrisk_classes:\n  low:\n    lineage: [source_run_finished]\n")
    env = {
        **os.environ,
        "MLGATE_SERVE_POLICY": str(policy),
        "MLGATE_SERVE_GITHUB_APP_ID": str(APP_ID),
        "MLGATE_SERVE_GITHUB_PRIVATE_KEY": private,
        "MLGATE_SERVE_GITHUB_WEBHOOK_SECRET": SECRET,
        "MLGATE_SERVE_GITHUB_API_URL": fake.url,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    load_before = os.getloadavg()  # the machine's other work skews every number: shown with them
    try:
        runs = [run_reference(env, fake), run_in_process(env, fake), run_azure_storage(env, fake)]
    finally:
        fake.stop()
    print_table(runs)
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"load average (1, 5, 15 min) before/after the run: {load} on {os.cpu_count()} CPUs")
    ok = True
    for run in runs[1:]:
        print(f"{run.mode}: {DELIVERIES} deliveries, lost {run.lost}, duplicate {run.duplicate}")
        print(f"  acknowledgements: {dict(run.statuses)}")
        p99 = percentile(run.latencies, 99)
        met = p99 < 1.0 and run.lost == 0 and run.duplicate == 0
        print(f"  goal: p99 acknowledgement < 1000 ms, none lost or doubled -> {'met' if met else 'MISSED'} "
              f"({p99 * 1000:.1f} ms)")
        ok = ok and met
    if fake.violations:
        print("spec violations seen by the fake GitHub:", fake.violations[:3])
        ok = False
    return 0 if ok else 1


def print_table(runs: list[Run]) -> None:
    print(
        f"\ncheck service: {DELIVERIES} signed deliveries from {CLIENTS} concurrent clients, "
        "loopback, waitress 8 threads, gate stubbed at 20 ms"
    )
    print(f"{'mode':<34}{'acks/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'cb p50 ms':>11}{'cb p99 ms':>11}")
    for run in runs:
        rate = len(run.latencies) / run.wall
        cb = (f"{percentile(run.to_callback, 50) * 1000:>11.1f}{percentile(run.to_callback, 99) * 1000:>11.1f}"
              if run.to_callback else f"{'-':>11}{'-':>11}")
        print(f"{run.mode:<34}{rate:>9.0f}{percentile(run.latencies, 50) * 1000:>9.1f}"
              f"{percentile(run.latencies, 99) * 1000:>9.1f}{max(run.latencies) * 1000:>9.1f}{cb}")
    ref, mem, azure = runs

    def ratio(name: str, mine: Run, base: Run) -> None:
        rates = (len(mine.latencies) / mine.wall) / (len(base.latencies) / base.wall)
        p50 = percentile(mine.latencies, 50) / percentile(base.latencies, 50)
        p99 = percentile(mine.latencies, 99) / percentile(base.latencies, 99)
        print(f"{name:<34}{rates:>9.2f}{p50:>9.2f}{p99:>9.2f}")

    ratio("ratio in-process / reference", mem, ref)
    ratio("ratio azure-storage / in-process", azure, mem)


if __name__ == "__main__":
    sys.exit(main())
