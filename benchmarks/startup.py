"""Start-up: the whole `mlgate` process per command, against `python -c pass`.

Each row runs one command on a one-file model directory (nothing to hash to speak of) and prints

* its whole-process wall time (best of --repeat; the runs of all rows are interleaved, so a busy
  moment of the machine hits every row alike) and its ratio to `python -c pass`;
* the time spent inside mlgate: from before `from mlgate.cli import main` to after `main()` returned,
  measured in the same process (imports, parsing, the work), i.e. the wall time without the
  interpreter's own start-up.

Two settings, each its own table:

* bytecode cached: an installed mlgate (pip compiles every module at install time); here the cache
  lives in a temporary PYTHONPYCACHEPREFIX, warmed by one run of each row first;
* no bytecode cache: PYTHONDONTWRITEBYTECODE=1 and no cache, as in a fresh checkout or an image built
  that way: every mlgate module imported is compiled from source in every run.

    python benchmarks/startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sysconfig.get_path("scripts")) / "mlgate"
INSIDE = (
    "import sys, time\n"
    "start = time.perf_counter()\n"
    "from mlgate.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write(f'\\nINSIDE {time.perf_counter() - start}\\n')\n"
    "sys.exit(code)\n"
)


def rows(tmp: Path) -> list[tuple[str, list[str]]]:
    model = tmp / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x" * 4096)
    manifest = tmp / "manifest.json"
    python = [sys.executable]
    found = [
        ("python -c pass", [*python, "-c", "pass"]),
        ("mlgate --version", [*python, "-c", INSIDE, "--version"]),
        ("mlgate --help", [*python, "-c", INSIDE, "--help"]),
        ("mlgate seal DIR -o FILE", [*python, "-c", INSIDE, "seal", str(model), "-o", str(manifest)]),
        ("mlgate verify DIR", [*python, "-c", INSIDE, "verify", str(model), "--manifest", str(manifest)]),
        ("python -m mlgate seal", [*python, "-m", "mlgate", "seal", str(model), "-o", str(manifest)]),
    ]
    if SCRIPT.is_file():
        found.append(("console script: seal", [str(SCRIPT), "seal", str(model), "-o", str(manifest)]))
    return found


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float | None]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[-4:])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    inside = proc.stderr.rsplit("\nINSIDE ", 1)
    return wall, float(inside[1]) if len(inside) == 2 else None


def measure(table: list[tuple[str, list[str]]], env: dict[str, str], repeat: int) -> list[tuple[float, float | None]]:
    """Best wall time and best time inside mlgate of every row."""
    for _, cmd in table:  # warm the page cache (and, where it is kept, the bytecode cache)
        run(cmd, env)
    walls: list[list[float]] = [[] for _ in table]
    insides: list[list[float]] = [[] for _ in table]
    for _ in range(repeat):
        for i, (_, cmd) in enumerate(table):
            wall, inside = run(cmd, env)
            walls[i].append(wall)
            if inside is not None:
                insides[i].append(inside)
    return [(min(w), min(n) if n else None) for w, n in zip(walls, insides, strict=True)]


def show(title: str, table: list[tuple[str, list[str]]], best: list[tuple[float, float | None]]) -> None:
    bare = best[0][0]
    print(f"\n{title}\n")
    print(f"| {'what':<26} | {'wall ms':>8} | {'x python -c pass':>16} | {'inside mlgate ms':>16} |")
    print(f"|{'-' * 28}|{'-' * 10}|{'-' * 18}|{'-' * 18}|")
    for (name, _), (wall, inside) in zip(table, best, strict=True):
        shown = f"{inside * 1000:.1f}" if inside is not None else ""
        print(f"| {name:<26} | {wall * 1000:8.1f} | {wall / bare:15.2f}x | {shown:>16} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MLGATE_", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"))}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    tmp = Path(tempfile.mkdtemp(prefix="mlgate-startup-bench-"))
    try:
        table = rows(tmp)
        cached = measure(table, dict(base, PYTHONPYCACHEPREFIX=str(tmp / "pycache")), args.repeat)
        uncached = measure(table, dict(base, PYTHONDONTWRITEBYTECODE="1"), args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}; best of {args.repeat} "
          f"(interleaved); Python {sys.version.split()[0]}")
    show("bytecode cached (an installed mlgate)", table, cached)
    show("no bytecode cache (every mlgate module compiled in every run)", table, uncached)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
