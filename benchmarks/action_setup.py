"""What the GitHub Action's install costs: cold, restored from the cache, and the size of the venv.

In one run, on this tree, for the `core` lock (what `verify` and `seal` of local files install) and
the `azure` lock (`gate`, `secrets`, `record`, ...), with uv and with pip as the installer:

* cold: `action/setup_venv.py install` with an empty wheelhouse and an empty pip cache, so every
  locked wheel is downloaded (from the package index as pip is configured on this machine), checked
  against the lock and installed into a new venv;
* warm: what a cache hit costs: unpack the wheelhouse from a tar (zstd, as actions/cache stores it;
  gzip without zstd), check every wheel against the lock's hashes (and uv's executable, kept
  unpacked in the wheelhouse, against its wheel's RECORD), build a new venv from them offline;
* the venv's size on disk;

against the reference: the previous install (a venv with pip, then `pip install .` of the tree with
every SDK), measured cold in the same run.

    python benchmarks/action_setup.py [--repeat 3] [--skip-reference]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "action" / "setup_venv.py"
COMMANDS = {"core": "verify", "azure": "gate"}


def size_mb(path: Path) -> float:
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())
    return total / 1e6


def base_env(work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHONPATH", "GITHUB_", "MLGATE_", "ACTION_"))
    }
    env.update(GITHUB_ACTION_PATH=str(ROOT), PIP_CACHE_DIR=str(work / "pip-cache"))
    return env


def setup(env: dict[str, str]) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "install"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"setup_venv.py install failed:\n{proc.stdout}{proc.stderr}")
    values = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if line.split("=", 1)[0].isidentifier()
    )
    return seconds, values


def wheelhouse(temp: Path) -> Path:
    [found] = temp.glob("mlgate-wheels-*")
    return found


def zstd() -> bool:
    return shutil.which("zstd") is not None and shutil.which("tar") is not None


def pack(directory: Path, archive: Path) -> None:
    """As actions/cache saves: tar with zstd when there is one (``-T0``), else tar.gz."""
    if zstd():
        subprocess.run(
            [
                "tar",
                "--use-compress-program",
                "zstd -T0",
                "-cf",
                str(archive),
                "-C",
                str(directory.parent),
                directory.name,
            ],
            check=True,
            timeout=600,
        )
        return
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)


def unpack(archive: Path, into: Path) -> None:
    if zstd():
        subprocess.run(
            ["tar", "--use-compress-program", "zstd -d", "-xf", str(archive), "-C", str(into)],
            check=True,
            timeout=600,
        )
        return
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def one_profile(work: Path, profile: str, installer: str, repeat: int) -> dict[str, float]:
    temp = work / f"{profile}-{installer}"
    temp.mkdir()
    env = {
        **base_env(work / temp.name),
        "RUNNER_TEMP": str(temp),
        "ACTION_MLGATE_COMMAND": COMMANDS[profile],
        "MLGATE_INSTALLER": installer,
    }
    cold, values = setup(env)
    assert values["source"] == "index" and values["installer"] == installer, values
    venv_mb = size_mb(Path(values["venv"]))
    shutil.rmtree(Path(values["venv"]).parent)
    cached = wheelhouse(temp)
    archive = work / f"{temp.name}.tar"
    pack(cached, archive)
    warm = []
    for _ in range(repeat):
        shutil.rmtree(cached)
        start = time.perf_counter()
        unpack(archive, temp)
        _seconds, values = setup(env)
        warm.append(time.perf_counter() - start)
        assert values["source"] == "cache", values
        shutil.rmtree(Path(values["venv"]).parent)
    return {
        "cold": cold,
        "warm": statistics.median(warm),
        "venv": venv_mb,
        "cache": archive.stat().st_size / 1e6,
    }


def reference(work: Path) -> tuple[float, float]:
    """The previous install: venv (with pip) + `pip install .` of the whole tree, every SDK, cold."""
    venv = work / "reference-venv"
    env = {**base_env(work / "reference"), "PIP_CACHE_DIR": str(work / "reference-pip-cache")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600, env=env)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{ROOT}[azure,github,service]"],
        check=True,
        timeout=1800,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - start, size_mb(venv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true", help="do not measure the previous install")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref_seconds, ref_mb = (float("nan"), float("nan")) if args.skip_reference else reference(work)
        results = {(p, i): one_profile(work, p, i, args.repeat) for p in COMMANDS for i in ("uv", "pip")}
    print(f"{'install':<52} {'seconds':>8} {'vs ref':>7} {'venv MB':>8} {'vs ref':>7}")
    print(
        f"{'previous: venv + pip install . (every SDK), cold':<52} {ref_seconds:>8.2f} {1:>6.2f}x "
        f"{ref_mb:>8.1f} {1:>6.2f}x"
    )
    for (profile, installer), row in results.items():
        for phase in ("cold", "warm"):
            name = f"{profile} lock, {installer}, {phase}" + (
                " (unpack + verify + venv)" if phase == "warm" else ""
            )
            print(
                f"{name:<52} {row[phase]:>8.2f} {row[phase] / ref_seconds:>6.2f}x "
                f"{row['venv']:>8.1f} {row['venv'] / ref_mb:>6.2f}x"
            )
    print()
    for (profile, installer), row in results.items():
        kind = "tar.zst" if zstd() else "tar.gz"
        print(f"cached wheelhouse ({profile}, {installer}): {row['cache']:.1f} MB as {kind}")
    print("goals: cold < 15 s, warm < 3 s, venv < 59 MB (half of the previous 118 MB)")
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"load average (1, 5, 15 min) before/after the run: {load} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
