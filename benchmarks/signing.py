"""Signed seals: mlgate against model_signing, shards against files, and start-up, in one run (warm cache).

In one run, on the same files and the same P-256 PEM key:

1. a 1 GiB model-like directory (8 shard files and 200 small ones): the whole `mlgate seal --sign`
   process against `model_signing sign key`, and `mlgate verify --signature --public-key` against
   `model_signing verify key`; plus the unsigned `mlgate seal`, so the cost of signing shows;
2. one 2 GiB file: `mlgate seal --serialization files` and `--serialization shards` against
   `openssl dgst -sha256` (one core, the reference);
3. the whole `mlgate seal` process on a one-file directory (start-up), against `python -c pass`, and the
   same with `--sign` (what signing itself adds, with no hashing to speak of).

Each row prints its wall time (best of --repeat) and its ratio to the row it is compared with.

    python benchmarks/signing.py [--size-mib 1024] [--large-mib 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from hashing import build  # noqa: E402  (the same model-like directory as the hashing benchmark)


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return wall


def best(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    return min(run(cmd, env) for _ in range(repeat))


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass


def make_key(folder: Path) -> tuple[Path, Path]:
    private, public = folder / "key.pem", folder / "key.pub.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(private)],
                   check=True)
    subprocess.run(["openssl", "ec", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                   stderr=subprocess.DEVNULL)
    return private, public


def large_file(folder: Path, mib: int) -> Path:
    folder.mkdir()
    path = folder / "model.safetensors"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(block[i % 13:] + block[: i % 13])
    return path


def signing_rows(tmp: Path, env: dict[str, str], repeat: int, size_mib: int) -> list[tuple[str, float, str, float]]:
    mlgate = [sys.executable, "-m", "mlgate"]
    ms = [sys.executable, "-m", "model_signing"]
    model = tmp / "model"
    warm(build(model, size_mib))
    private, public = make_key(tmp)
    out = tmp / "out"
    out.mkdir()
    seal = best([*mlgate, "seal", str(model), "-o", str(out / "m.json")], env, repeat)
    signed = best([*mlgate, "seal", str(model), "-o", str(out / "m.json"), "--sign", str(private)], env, repeat)
    theirs = best([*ms, "sign", "key", str(model), "--private_key", str(private), "--signature",
                   str(tmp / "ms.sig")], env, repeat)
    verify = best([*mlgate, "verify", str(model), "--signature", str(out / "model.sig"), "--public-key",
                   str(public)], env, repeat)
    their_verify = best([*ms, "verify", "key", str(model), "--signature", str(tmp / "ms.sig"), "--public_key",
                         str(public)], env, repeat)
    return [
        ("mlgate seal (unsigned)", seal, "mlgate seal --sign", signed),
        ("mlgate seal --sign", signed, "", 0.0),
        ("model_signing sign key", theirs, "mlgate seal --sign", signed),
        ("mlgate verify --public-key", verify, "", 0.0),
        ("model_signing verify key", their_verify, "mlgate verify --public-key", verify),
    ]


def shard_rows(tmp: Path, env: dict[str, str], repeat: int, large_mib: int) -> list[tuple[str, float, str, float]]:
    mlgate = [sys.executable, "-m", "mlgate"]
    path = large_file(tmp / "large", large_mib)
    warm([path])
    openssl = best(["openssl", "dgst", "-sha256", str(path)], env, repeat)
    files = best([*mlgate, "seal", str(path.parent), "-o", str(tmp / "l1.json")], env, repeat)
    shards = best([*mlgate, "seal", str(path.parent), "-o", str(tmp / "l2.json"), "--serialization", "shards"],
                  env, repeat)
    shards_64 = best([*mlgate, "seal", str(path.parent), "-o", str(tmp / "l3.json"), "--serialization", "shards",
                      "--shard-size", "64MiB"], env, repeat)
    return [
        ("openssl dgst -sha256", openssl, "", 0.0),
        ("mlgate seal, files", files, "openssl dgst -sha256", openssl),
        ("mlgate seal, shards 1 GB", shards, "mlgate seal, files", files),
        ("mlgate seal, shards 64 MiB", shards_64, "mlgate seal, files", files),
    ]


def startup_rows(tmp: Path, env: dict[str, str], repeat: int) -> list[tuple[str, float, str, float]]:
    one = tmp / "one"
    one.mkdir()
    (one / "model.bin").write_bytes(b"x" * 4096)
    private, _ = make_key(tmp) if not (tmp / "key.pem").exists() else (tmp / "key.pem", tmp / "key.pub.pem")
    seal = [sys.executable, "-m", "mlgate", "seal", str(one), "-o", str(tmp / "one.json")]
    bare = best([sys.executable, "-c", "pass"], env, repeat * 5)
    unsigned = best(seal, env, repeat * 5)
    signed = best([*seal, "--sign", str(private)], env, repeat * 5)
    return [("python -c pass", bare, "", 0.0), ("mlgate seal, one-file dir", unsigned, "python -c pass", bare),
            ("mlgate seal --sign, one-file", signed, "mlgate seal, one-file dir", unsigned)]


def table(title: str, rows: list[tuple[str, float, str, float]]) -> None:
    print(f"\n{title}\n")
    print(f"| {'what':<28} | {'wall s':>7} | {'compared with':<28} | {'ratio':>7} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 30}|{'-' * 9}|")
    for name, wall, other, other_wall in rows:
        ratio = f"{wall / other_wall:6.2f}x" if other else ""
        print(f"| {name:<28} | {wall:7.3f} | {other:<28} | {ratio:>7} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--large-mib", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    tmp = Path(tempfile.mkdtemp(prefix="mlgate-signing-bench-"))
    try:
        signing = signing_rows(tmp, env, args.repeat, args.size_mib)
        shards = shard_rows(tmp, env, args.repeat, args.large_mib)
        startup = startup_rows(tmp, env, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; best of {args.repeat} (start-up: best of {args.repeat * 5}); warm page cache; "
          "ratio = this row's time / the compared row's time")
    table(f"1. signing and verifying a {args.size_mib} MiB model (whole processes, one P-256 PEM key)", signing)
    print(f"\nsigning adds {(signing[1][1] - signing[0][1]) * 1000:.0f} ms to the unsigned seal of this model "
          "(noisy: the difference of two multi-second runs; see 3. for signing alone)")
    table(f"2. one {args.large_mib} MiB file", shards)
    print(f"\nshards (1 GB) vs files: {shards[1][1] / shards[2][1]:.2f}x faster")
    table("3. start-up and signing alone", startup)
    print(f"\nsigning alone adds {(startup[2][1] - startup[1][1]) * 1000:.0f} ms (import cryptography, load the "
          "key, sign, write the bundle)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
