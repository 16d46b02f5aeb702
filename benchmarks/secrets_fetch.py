"""Parallel Key Vault fetch against a sequential one, on the loopback TLS fake with injected latency.

Starts the test suite's fake Key Vault + managed-identity endpoint on 127.0.0.1, stores 50
secrets, adds 20 ms to every vault answer and fetches all 50 with the real azure-identity and
azure-keyvault-secrets, cold each time (new credential, empty challenge cache):

* sequential: one at a time (the reference);
* mlgate: the first alone (answers the 401 challenge, gets the token once), then 20 at a time;
* naive parallel: 20 at a time from the start (every early request meets the challenge itself).

Prints wall time, vault and token request counts and the speed-up against sequential.

    python benchmarks/secrets_fetch.py [--secrets 50] [--latency-ms 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import trustme
    from azure.keyvault.secrets._shared import http_challenge_cache
    from tests.integration.secrets.fake_azure import FakeAzure

    from mlgate.secrets.credentials import IdentityOptions, ObservedCredential, choose
    from mlgate.secrets.keyvault import KeyVaultSecrets, parse_vault

    folder = Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    fake = FakeAzure(folder / "server.pem")
    os.environ.update(REQUESTS_CA_BUNDLE=str(folder / "ca.pem"), IDENTITY_ENDPOINT=fake.identity_endpoint,
                      IDENTITY_HEADER=fake.identity_header)
    names = [f"secret-{i:03d}" for i in range(args.secrets)]
    for name in names:
        fake.add_secret(name, f"value-of-{name}")
    fake.latency = args.latency_ms / 1000
    vault = parse_vault(fake.vault_url)

    def one(mode: str) -> tuple[float, int, int]:
        http_challenge_cache.clear()
        fake.hits.clear()
        choice = choose(IdentityOptions(identity="managed"))
        credential = ObservedCredential(choice.credential)
        concurrency = 1 if mode == "sequential" else 20
        started = time.perf_counter()
        with KeyVaultSecrets(vault, credential, identity=choice.identity, concurrency=concurrency) as kv:
            if mode == "naive parallel":
                now = dt.datetime.now(dt.timezone.utc)
                with ThreadPoolExecutor(max_workers=20) as pool:
                    results = list(pool.map(lambda n: kv._get(n, lambda _n, _v: None, now), names))
                fetched = sum(1 for r in results if hasattr(r, "value"))
            else:
                secrets, _failures = kv.fetch(names, on_value=lambda _n, _v: None)
                fetched = len(secrets)
        elapsed = time.perf_counter() - started
        credential.close()
        if fetched != len(names):
            raise SystemExit(f"{mode}: fetched {fetched} of {len(names)}")
        return elapsed, fake.count("vault"), fake.count("login")

    modes = ("sequential", "mlgate", "naive parallel")
    results: dict[str, list[tuple[float, int, int]]] = {m: [] for m in modes}
    for _ in range(args.repeat):
        for mode in modes:
            results[mode].append(one(mode))
    fake.close()
    shutil.rmtree(folder, ignore_errors=True)

    reference = statistics.median(r[0] for r in results["sequential"])
    print(f"{args.secrets} secrets, {args.latency_ms:g} ms injected per vault answer, median of {args.repeat} "
          "cold runs (TLS loopback, real azure-identity + azure-keyvault-secrets)")
    print(f"{'mode':<16} {'wall s':>8} {'vault req':>10} {'token req':>10} {'speed-up':>9}")
    for mode in modes:
        wall = statistics.median(r[0] for r in results[mode])
        vault_requests = max(r[1] for r in results[mode])
        token_requests = max(r[2] for r in results[mode])
        print(f"{mode:<16} {wall:>8.3f} {vault_requests:>10} {token_requests:>10} {reference / wall:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
