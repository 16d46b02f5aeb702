"""What signing the ledger costs: `audit verify --public-key` against `audit verify`, and appends.

In one run, on the same 100,000-entry ledger (every entry signed with a P-256 PEM key):

* `mlgate audit verify` (chain and hashes only) as its own process: the reference;
* `mlgate audit verify --public-key` as its own process: the chain plus one ECDSA verification
  (the last signature covers every entry before it; see mlgate.ledger.signed);
* verifying every signature in-process (what a per-entry check would cost; the tamper path does
  this only after the last signature failed, to name the first bad entry);
* appending 200 entries to a file ledger with and without `--ledger-key` (in-process, fsync'd).

Prints times and ratios; nothing is asserted (budgets: DESIGN section 7).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.ledger import Draft, open_ledger
from mlgate.ledger.base import chain
from mlgate.ledger.signed import Trust, first_bad_signature
from mlgate.signing.keys import load_public_key, load_signer

ENTRIES = 100_000
APPENDS = 200


def keys(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "key.pem", directory / "pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def draft(i: int) -> Draft:
    return Draft(event="approved" if i % 3 else "gated", model=f"models:/credit-risk/{i}", stage="production",
                 actor="pipeline", evidence_sha256=f"{i:064x}", run_url=f"https://ci.example/runs/{i}",
                 approvers=[{"name": "Approver One", "id": f"u{i % 7}", "comment": "evidence reviewed",
                             "time": "2026-01-01T00:00:00Z", "source": "azure-devops"}],
                 key=f"azure-devops:run/{i}:approved:credit-risk/{i}:production")


def build(path: Path, private: Path) -> float:
    signer = load_signer(str(private))
    previous = None
    start = time.perf_counter()
    with path.open("wb") as stream:
        for i in range(1, ENTRIES + 1):
            previous = chain(draft(i), previous, time="2026-01-01T00:00:00.000Z", signer=signer)
            stream.write(previous.line())
    return time.perf_counter() - start


def process(argv: list[str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        best = min(best, time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed: {proc.stderr.decode()}")
    return best


def appends(directory: Path, private: Path | None) -> float:
    path = directory / f"append-{'signed' if private else 'plain'}.jsonl"
    ledger = open_ledger(f"file:{path}", sign=str(private) if private else None)
    start = time.perf_counter()
    for i in range(APPENDS):
        ledger.append(draft(i))
    return time.perf_counter() - start


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="mlgate-signed-ledger-bench-"))
    try:
        private, public = keys(workdir)
        path = workdir / "ledger.jsonl"
        built = build(path, private)
        base = [sys.executable, "-m", "mlgate", "audit", "verify", "--no-anchors", "--ledger", f"file:{path}"]
        plain = process(base)
        signed = process([*base, "--public-key", str(public)])
        trust = Trust(load_public_key(str(public)))
        start = time.perf_counter()
        with path.open("rb") as stream:
            assert first_bad_signature(stream, trust) is None
        every = time.perf_counter() - start
        append_plain, append_signed = appends(workdir, None), appends(workdir, private)
        size = path.stat().st_size / (1 << 20)
        print(f"ledger: {ENTRIES:,} signed entries, {size:.1f} MiB, written in {built:.2f} s "
              f"({built / ENTRIES * 1e6:.1f} us/entry incl. signing); {os.cpu_count()} cores")
        print(f"{'what':<52} {'seconds':>8} {'vs audit verify':>16}")
        for what, seconds in (
            ("mlgate audit verify (chain only, process)", plain),
            ("mlgate audit verify --public-key (process)", signed),
            ("every signature verified (in-process, no chain)", every),
        ):
            print(f"{what:<52} {seconds:>8.3f} {seconds / plain:>15.2f}x")
        print(f"{'what':<52} {'ms/append':>8} {'vs unsigned':>16}")
        for what, seconds in ((f"{APPENDS} appends, file ledger", append_plain),
                              (f"{APPENDS} appends, file ledger, --ledger-key PEM", append_signed)):
            print(f"{what:<52} {seconds / APPENDS * 1e3:>8.2f} {seconds / append_plain:>15.2f}x")
        print(f"signing adds {signed - plain:+.3f} s to verifying {ENTRIES:,} entries; checking every signature "
              f"would add {every:.2f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
