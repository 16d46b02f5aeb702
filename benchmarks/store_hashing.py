"""Seal a model kept in object storage: `mlgate seal --model` against download + sha256sum.

For each store, Azurite (Azure Blob) and moto (S3) on loopback, it starts a real
`mlflow server --no-serve-artifacts` whose artifact root is that store, and logs two models with
MLflow's own client straight into it: one of many small files in a few directories, one of a
single large file. For each model it then times, each as its own process:

* `mlgate seal --model NAME/1` (list, stream and hash every file from the store, store the manifest);
* the baseline a user would otherwise script: `mlflow artifacts download --artifact-uri
  models:/NAME/1` into a temporary directory, then `sha256sum` of every file.

Per row: wall seconds, requests to MLflow (the server's access log) and to the store (Azurite's
debug log, moto's request log), peak RSS of the processes (GNU time's maximum resident set), and
the ratio seal / baseline measured in the same run.

    python benchmarks/store_hashing.py [--big-mib 1024] [--small-files 2000] [--dirs 20]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlgate.demo.azurite import LocalAzurite
from mlgate.demo.mlflow_server import LocalMlflow, free_port, mlflow_command

SRC = Path(__file__).resolve().parents[1] / "src"

CONTAINER = "mlflow"
MLFLOW_REQUEST = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD) /')
AZURITE_REQUEST = re.compile(r"RequestMethod=")
MOTO_REQUEST = re.compile(r'"(?:GET|POST|PUT|DELETE|HEAD) /')


@dataclass(frozen=True)
class Log:
    """A log file whose matching lines count requests; ``since(mark)`` counts those after ``mark``."""

    path: Path
    pattern: re.Pattern[str]

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> int:
        time.sleep(0.5)  # let the servers flush their logs
        with open(self.path, "rb") as f:
            f.seek(mark)
            return len(self.pattern.findall(f.read().decode(errors="replace")))


@dataclass(frozen=True)
class Store:
    name: str
    root: str  # MLflow's artifact root
    env: dict[str, str]
    log: Log


@dataclass(frozen=True)
class Measured:
    seconds: float
    rss_kib: int
    mlflow_requests: int
    store_requests: int


@contextmanager
def azurite(work: Path) -> Iterator[Store]:
    with LocalAzurite(work / "azurite", debug_log=work / "azurite-debug.log") as server:
        server.create_container(CONTAINER)
        yield Store("azurite", f"wasbs://{CONTAINER}@devstoreaccount1.blob.core.windows.net/artifacts",
                    {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string},
                    Log(work / "azurite-debug.log", AZURITE_REQUEST))


@contextmanager
def moto(work: Path) -> Iterator[Store]:
    port = free_port()
    log = work / "moto.log"
    env = {"MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import boto3

        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], region_name="us-east-1",
                             aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=CONTAINER)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        yield Store("moto", f"s3://{CONTAINER}/artifacts", env, Log(log, MOTO_REQUEST))
    finally:
        proc.terminate()
        proc.wait(10)


def small_files(root: Path, n: int, dirs: int) -> None:
    (root / "MLmodel").write_text("flavors: {}\n")
    for i in range(n - 1):
        path = root / "shards" / f"d{i % dirs:03d}" / f"f{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"i": {i}, "pad": "{"x" * (i % 2000)}"}}')


def big_file(root: Path, mib: int) -> None:
    (root / "MLmodel").write_text("flavors: {}\n")
    block = os.urandom(1 << 20)
    with open(root / "weights.bin", "wb") as f:
        for i in range(mib):
            f.write(i.to_bytes(8, "big") + block[8:])


def register(uri: str, name: str, files: Path) -> None:
    """Log ``files`` as a MLflow 3 logged model (MLflow's client writes them to the store) and register it."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = mlflow.set_experiment(name)
    run = client.create_run(exp.experiment_id)
    logged = mlflow.initialize_logged_model(name="model", source_run_id=run.info.run_id,
                                            experiment_id=exp.experiment_id)
    client.log_model_artifacts(logged.model_id, str(files))
    mlflow.finalize_logged_model(logged.model_id, "READY")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    client.create_model_version(name, f"models:/{logged.model_id}", run_id=run.info.run_id, model_id=logged.model_id)


def timed_process(argv: list[str], env: dict[str, str], stats: Path, *, expect: str = "") -> tuple[float, int]:
    """Run ``argv`` under GNU time; its wall seconds and maximum resident set (KiB). ``expect``: in its output."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *argv], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if expect not in proc.stdout:
        raise SystemExit(f"{argv[0]} did not say {expect!r}: {proc.stdout[-2000:]}")
    seconds, rss = stats.read_text().split()[-2:]
    return float(seconds), int(rss)


def measure(runs: Callable[[], list[tuple[float, int]]], store: Store, mlflow_log: Log) -> Measured:
    marks = mlflow_log.mark(), store.log.mark()
    results = runs()
    return Measured(sum(s for s, _ in results), max(r for _, r in results),
                    mlflow_log.since(marks[0]), store.log.since(marks[1]))


def bench_model(store: Store, uri: str, mlflow_log: Log, name: str, work: Path,
                sealed: str) -> tuple[Measured, Measured]:
    """Baseline and seal of ``name``/1; ``sealed``: what seal must report (every file and byte hashed)."""
    env = {**os.environ, **store.env, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(SRC),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLGATE_LEDGER", None)
    stats = work / "time.txt"

    def baseline() -> list[tuple[float, int]]:
        dst = Path(tempfile.mkdtemp(prefix=f"dl-{name}-", dir=work))
        download = timed_process([*mlflow_command(), "artifacts", "download", "--artifact-uri", f"models:/{name}/1",
                                  "--dst-path", str(dst)], env, stats)
        hashing = timed_process(["sh", "-c", 'find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null', "sh",
                                 str(dst)], env, stats)
        return [download, hashing]

    def seal() -> list[tuple[float, int]]:
        return [timed_process([sys.executable, "-m", "mlgate", "seal", "--model", f"{name}/1", "--platform", "local"],
                              env, stats, expect=sealed)]

    return measure(baseline, store, mlflow_log), measure(seal, store, mlflow_log)


def bench_store(start: Callable[[Path], AbstractContextManager[Store]], work: Path,
                args: argparse.Namespace) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with start(work) as store:
        saved = {k: os.environ.get(k) for k in store.env}
        os.environ.update(store.env)
        try:
            with LocalMlflow(work / "mlflow", artifact_root=store.root, env=store.env) as server:
                shapes: dict[str, tuple[Callable[[Path], None], int]] = {
                    "small": (functools.partial(small_files, n=args.small_files, dirs=args.dirs), args.small_files),
                    "big": (functools.partial(big_file, mib=args.big_mib), 2)}
                mlflow_log = Log(work / "mlflow" / "mlflow-server.log", MLFLOW_REQUEST)
                for shape, (make, n) in shapes.items():
                    files = work / f"files-{shape}"
                    files.mkdir()
                    make(files)
                    size = sum(p.stat().st_size for p in files.rglob("*") if p.is_file())
                    register(server.uri, f"bench-{shape}", files)
                    base, sealed = bench_model(store, server.uri, mlflow_log, f"bench-{shape}", work,
                                               f"{n} files ({size} bytes)")
                    rows += table_rows(store.name, shape, n, size, base, sealed)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return rows


def table_rows(store: str, shape: str, n: int, size: int, base: Measured, sealed: Measured) -> list[tuple[str, ...]]:
    def row(label: str, m: Measured, ratio: str) -> tuple[str, ...]:
        return (store, f"{shape} ({n} files, {size / (1 << 20):.0f} MiB)", label, f"{m.seconds:.2f}",
                str(m.mlflow_requests), str(m.store_requests), f"{m.rss_kib / 1024:.0f}", ratio)

    ratio = (f"{sealed.seconds / base.seconds:.2f}x time, {sealed.store_requests / max(1, base.store_requests):.2f}x "
             f"store req, {sealed.rss_kib / base.rss_kib:.2f}x RSS")
    return [row("download + sha256sum", base, "1.00x (reference)"), row("mlgate seal --model", sealed, ratio)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the single-file model (default 1024)")
    parser.add_argument("--small-files", type=int, default=2000, help="files of the many-files model (default 2000)")
    parser.add_argument("--dirs", type=int, default=20, help="directories they are spread over (default 20)")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    for start in (azurite, moto):
        with tempfile.TemporaryDirectory(prefix="mlgate-store-bench-") as tmp:
            rows += bench_store(start, Path(tmp), args)
    header = ("store", "model", "run", "wall s", "MLflow req", "store req", "peak RSS MiB", "seal / baseline")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nstore hashing benchmark: {args.small_files} small files in {args.dirs} directories; one file of "
          f"{args.big_mib} MiB; {os.cpu_count()} cores\n")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
