"""`mlgate audit verify` on ledgers of 25,000 / 50,000 / 100,000 entries.

Each verify runs as its own `python -m mlgate audit verify` process; we report wall time,
time net of interpreter + mlgate start-up (`mlgate --version` measured in the same run),
microseconds per entry, and the process's peak RSS. Linear growth shows as a constant
time per entry; streaming shows as a peak RSS that does not grow with the ledger size.
Reference in the same run: `sha256sum` of the same file (just reading and hashing it).

Budget (DESIGN section 7): 100,000 entries in under 2 s; streaming.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlgate.ledger.base import Draft, chain

SIZES = (25_000, 50_000, 100_000)


def build(path: Path, n: int) -> None:
    previous = None
    with path.open("wb") as stream:
        for i in range(1, n + 1):
            draft = Draft(
                event="approved" if i % 3 else "gated",
                model=f"models:/credit-risk/{i}",
                stage="production",
                actor="pipeline",
                evidence_sha256=f"{i:064x}",
                run_url=f"https://ci.example/runs/{i}",
                approvers=[
                    {
                        "name": "Approver One",
                        "id": f"u{i % 7}",
                        "comment": "evidence reviewed",
                        "time": "2026-01-01T00:00:00Z",
                        "source": "azure-devops",
                    }
                ],
                key=f"azure-devops:run/{i}:approved:credit-risk/{i}:production",
            )
            previous = chain(draft, previous, time="2026-01-01T00:00:00.000Z")
            stream.write(previous.line())


def measure(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


def best_of(argv: list[str], runs: int = 3) -> tuple[float, float]:
    results = [measure(argv) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="mlgate-ledger-bench-"))
    try:
        startup, startup_rss = best_of([sys.executable, "-m", "mlgate", "--version"])
        rows = []
        for n in SIZES:
            path = workdir / f"ledger-{n}.jsonl"
            build(path, n)
            argv = [sys.executable, "-m", "mlgate", "audit", "verify", "--no-anchors", "--ledger", str(path)]
            wall, rss = best_of(argv)
            ref = best_of(["sha256sum", str(path)])[0] if shutil.which("sha256sum") else float("nan")
            rows.append((n, path.stat().st_size / (1 << 20), wall, max(wall - startup, 1e-9), rss, ref))
        base_per_entry = rows[0][3] / rows[0][0]
        print(f"start-up (mlgate --version): {startup:.3f} s, peak RSS {startup_rss:.1f} MiB")
        print(
            f"{'entries':>8} {'file MiB':>9} {'wall s':>7} {'net s':>7} {'us/entry':>9} {'vs 25k':>7} "
            f"{'peak RSS MiB':>13} {'sha256sum s':>12} {'x sha256sum':>12}"
        )
        for n, mib, wall, net, rss, ref in rows:
            per = net / n
            print(
                f"{n:>8} {mib:>9.1f} {wall:>7.3f} {net:>7.3f} {per * 1e6:>9.2f} "
                f"{per / base_per_entry:>7.2f} {rss:>13.1f} {ref:>12.3f} {wall / ref:>12.1f}"
            )
        largest = rows[-1]
        verdict = "within" if largest[2] < 2.0 else "OVER"
        print(
            f"100,000 entries: {largest[2]:.2f} s wall ({verdict} the 2 s budget); peak RSS grows "
            f"{rows[-1][4] - rows[0][4]:+.1f} MiB from 25k to 100k entries while the file grows "
            f"{rows[-1][1] - rows[0][1]:+.1f} MiB (streaming)"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
