"""Benchmark of `mlgate serve`: acknowledgement latency under 50 concurrent signed deliveries.

Starts the check service under waitress in its own process (gate replaced by a 20 ms stub,
so the numbers are the service's, not MLflow's), a spec-backed fake GitHub in this process
that receives the protection-rule callbacks, and sends 500 signed `deployment_protection_rule`
deliveries from 50 concurrent clients over loopback. Then resends 50 of them (replays) and
checks that every delivery produced exactly one callback and no replay produced any.

Reference, in the same run: a bare WSGI app under the same waitress settings that only reads
the body and answers 200 (the floor any WSGI service on this machine can reach).

Goal (DESIGN §7): p99 acknowledgement under 1 s at 50 concurrent deliveries, nothing lost.
Run: PYTHONPATH=src python benchmarks/check_service.py
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def build_deliveries(fake: FakeGitHub) -> list[tuple[str, bytes, str]]:
    deliveries = []
    created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # a fresh deployment
    for i in range(DELIVERIES):
        payload = {
            "action": "requested",
            "environment": f"bench-{i}",  # echoed as environment_name: one callback per delivery
            "event": "push",
            "deployment_callback_url": fake.callback_url(run_id=1000 + i),
            "deployment": {"payload": {"model": f"models:/bench/{i + 1}"}, "created_at": created_at},
            "installation": {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
        }
        body = json.dumps(payload).encode()
        deliveries.append((str(uuid.uuid4()), body, sign(SECRET, body)))
    return deliveries


def blast(
    base: str, deliveries: list[tuple[str, bytes, str]]
) -> tuple[list[float], float, collections.Counter[int]]:
    local = threading.local()
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def send(item: tuple[str, bytes, str]) -> float:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        delivery, body, signature = item
        began = time.perf_counter()
        response = session.post(
            base + "/github/webhook",
            data=body,
            timeout=30,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "deployment_protection_rule",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": signature,
            },
        )
        elapsed = time.perf_counter() - began
        with lock:
            statuses[response.status_code] += 1
        return elapsed

    began = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = list(pool.map(send, deliveries))
    return latencies, time.perf_counter() - began, statuses


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake = FakeGitHub(APP_ID, public).start()
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
    deliveries = build_deliveries(fake)
    rows = []
    ok = True
    try:
        for mode in ("reference", "mlgate"):
            process, base = start_server(mode, env)
            try:
                blast(base, deliveries[:50])  # warm-up: connections, imports, first token
                if mode == "mlgate":
                    wait_for_callbacks(fake, 50)
                    fake.requests.clear()
                    fresh = [(str(uuid.uuid4()), body, sig) for _, body, sig in deliveries]
                    deliveries = fresh
                latencies, wall, statuses = blast(base, deliveries)
                rows.append((mode, latencies, wall, statuses))
                if mode == "mlgate":
                    callbacks = wait_for_callbacks(fake, DELIVERIES)
                    _, _, replay_statuses = blast(base, deliveries[:REPLAYS])
                    time.sleep(1.0)
                    after = collections.Counter(r["environment_name"] for r in fake.reviews())
                    ok = report_callbacks(callbacks, after, statuses, replay_statuses) and ok
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        fake.stop()
    print_table(rows)
    if fake.violations:
        print("spec violations seen by the fake GitHub:", fake.violations[:3])
        ok = False
    p99 = percentile(rows[-1][1], 99)
    print(f"goal: p99 acknowledgement < 1000 ms -> {'met' if p99 < 1.0 else 'MISSED'} ({p99 * 1000:.1f} ms)")
    return 0 if ok and p99 < 1.0 else 1


def wait_for_callbacks(fake: FakeGitHub, count: int, timeout: float = 120) -> collections.Counter[str]:
    deadline = time.monotonic() + timeout
    while len(fake.reviews()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return collections.Counter(r["environment_name"] for r in fake.reviews())


def report_callbacks(
    callbacks: collections.Counter[str],
    after_replays: collections.Counter[str],
    statuses: collections.Counter[int],
    replay_statuses: collections.Counter[int],
) -> bool:
    expected = {f"bench-{i}" for i in range(DELIVERIES)}
    lost = expected - set(callbacks)
    doubled = [env for env, n in after_replays.items() if n != 1]
    print(f"acknowledgements: {dict(statuses)}; replays answered: {dict(replay_statuses)}")
    print(
        f"callbacks: {sum(after_replays.values())} for {DELIVERIES} deliveries + {REPLAYS} replays; "
        f"lost {len(lost)}, more than one callback {len(doubled)}"
    )
    good = not lost and not doubled and set(after_replays) == expected and statuses == {200: DELIVERIES}
    print(f"every delivery produced exactly one callback: {'yes' if good else 'NO'}")
    return good


def print_table(rows: list[tuple[str, list[float], float, collections.Counter[int]]]) -> None:
    print(
        f"\ncheck service: {DELIVERIES} signed deliveries from {CLIENTS} concurrent clients, "
        "loopback, waitress 8 threads"
    )
    print(f"{'server':<34}{'acks/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    stats = {}
    for mode, latencies, wall, _ in rows:
        name = (
            "reference: bare WSGI, reads body"
            if mode == "reference"
            else "mlgate serve (verify, dedupe, queue)"
        )
        rate, p50, p99 = len(latencies) / wall, percentile(latencies, 50), percentile(latencies, 99)
        stats[mode] = (rate, p50, p99)
        print(f"{name:<34}{rate:>10.0f}{p50 * 1000:>10.1f}{p99 * 1000:>10.1f}{max(latencies) * 1000:>10.1f}")
    if len(stats) == 2:
        ref, mine = stats["reference"], stats["mlgate"]
        print(
            f"{'ratio mlgate / reference':<34}{mine[0] / ref[0]:>10.2f}"
            f"{mine[1] / ref[1]:>10.2f}{mine[2] / ref[2]:>10.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
