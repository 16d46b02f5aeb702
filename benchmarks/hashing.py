"""Seal throughput against sha256sum and openssl over the same model-like directory (warm cache).

Builds about 1 GiB in 8 shard files plus 200 small files in a temp dir, then times, in one run:
the whole `mlgate seal` process, `sha256sum` and `openssl dgst -sha256` over the same files, and
prints a table with GB/s, each tool's ratio to mlgate, the machine's SHA-256 limit
(`openssl speed -evp sha256` times the cores) and mlgate's peak RSS at two model sizes.

    python benchmarks/hashing.py [--size-mib 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(root: Path, total_mib: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    shard = (total_mib << 20) // 8
    block = os.urandom(1 << 20)
    files = []
    for i in range(8):
        path = root / f"model-{i:05d}-of-00008.safetensors"
        with open(path, "wb") as f:
            for j in range(shard >> 20):
                f.write(block[j % 7 :] + block[: j % 7])
        files.append(path)
    (root / "tokenizer").mkdir(exist_ok=True)
    for i in range(200):
        path = root / "tokenizer" / f"piece-{i:03d}.json"
        path.write_bytes(os.urandom(512 + 37 * i))
        files.append(path)
    return files


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss


def best(cmd: list[str], repeat: int) -> tuple[float, int]:
    runs = [run(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def openssl_limit() -> float:
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", "sha256"],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.MULTILINE)
    if not match:
        sys.exit(f"cannot parse openssl speed output:\n{out}")
    return float(match.group(1)) * 1000 / 1e9  # 1000s of bytes per second -> GB/s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    mlgate = [sys.executable, "-m", "mlgate"]
    tmp = Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    try:
        files = build(tmp / "model", args.size_mib)
        total = sum(f.stat().st_size for f in files)
        names = [str(f) for f in files]
        for f in names:  # warm the page cache
            with open(f, "rb") as stream:
                while stream.read(1 << 24):
                    pass
        rows: list[tuple[str, float, int | None]] = []
        wall, rss = best([*mlgate, "seal", str(tmp / "model"), "-o", str(tmp / "m.json")], args.repeat)
        rows.append(("mlgate seal (whole process)", wall, rss))
        rows.append(("sha256sum", best(["sha256sum", *names], args.repeat)[0], None))
        rows.append(("openssl dgst -sha256", best(["openssl", "dgst", "-sha256", *names], args.repeat)[0], None))
        small = build(tmp / "small", max(8, args.size_mib // 4))
        _, small_rss = best([*mlgate, "seal", str(tmp / "small"), "-o", str(tmp / "s.json")], 1)
        small_total = sum(f.stat().st_size for f in small)
        limit = openssl_limit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    gb = total / 1e9
    ref = rows[0][1]
    print(f"model: {len(files)} files, {total / (1 << 30):.2f} GiB; {cores} cores; best of {args.repeat}, warm cache\n")
    print(f"| {'tool':<28} | {'wall s':>7} | {'GB/s':>6} | {'time vs mlgate':>14} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 8}|{'-' * 16}|")
    for name, wall, _ in rows:
        print(f"| {name:<28} | {wall:7.3f} | {gb / wall:6.2f} | {wall / ref:13.2f}x |")
    print(f"\nSHA-256 limit (openssl speed -evp sha256, 16 KiB blocks): {limit:.2f} GB/s per core, "
          f"{limit * cores:.2f} GB/s on {cores} cores; mlgate reaches {gb / ref / (limit * cores):.0%} of it")
    print(f"mlgate peak RSS: {rows[0][2] / 1024:.1f} MiB at {total / (1 << 30):.2f} GiB, "
          f"{small_rss / 1024:.1f} MiB at {small_total / (1 << 30):.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
