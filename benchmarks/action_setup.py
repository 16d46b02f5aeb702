"""What the GitHub Action's cached environment saves, and what its entry point costs.

In one run, on this tree:
* `action/setup_venv.py install` into an empty runner temp (a cache miss: venv + pip install)
  against the same command when the environment is already there (a cache hit: one import check);
* `python -m mlgate.github_action` sealing a small directory (inputs from the environment, outputs
  and summary written) against the bare `python -m mlgate seal` of the same directory.

    python benchmarks/action_setup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=1200)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_OUTPUT")}
        env.update(RUNNER_TEMP=str(work / "runner"), GITHUB_ACTION_PATH=str(ROOT))
        setup = [sys.executable, str(ROOT / "action" / "setup_venv.py"), "install"]
        miss = timed(setup, env)
        hits = [timed(setup, env) for _ in range(args.repeat)]

        model = work / "model"
        model.mkdir()
        for i in range(20):
            (model / f"part-{i}.bin").write_bytes(os.urandom(64 << 10))
        run_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "ACTION_MLGATE_COMMAND": "seal",
            "ACTION_MLGATE_DIRECTORY": str(model),
            "GITHUB_OUTPUT": str(work / "out"),
            "GITHUB_STEP_SUMMARY": str(work / "summary"),
            "MLGATE_PLATFORM": "local",
        }
        entry = [timed([sys.executable, "-m", "mlgate.github_action"], run_env) for _ in range(args.repeat)]
        bare = [
            timed([sys.executable, "-m", "mlgate", "seal", str(model)], run_env) for _ in range(args.repeat)
        ]

    hit = statistics.median(hits)
    rows = [
        ("setup: cache miss (venv + pip install)", miss, miss / hit),
        ("setup: cache hit (reference)", hit, 1.0),
    ]
    print(f"{'step':<48} {'seconds':>9} {'vs reference':>13}")
    for name, seconds, ratio in rows:
        print(f"{name:<48} {seconds:>9.3f} {ratio:>12.1f}x")
    ref = statistics.median(bare)
    for name, seconds in (
        ("mlgate seal, bare process (reference)", ref),
        ("mlgate seal through the action entry point", statistics.median(entry)),
    ):
        print(f"{name:<48} {seconds:>9.3f} {seconds / ref:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
