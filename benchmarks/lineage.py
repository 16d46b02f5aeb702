"""Gate a model of 5,000 small files on a local MLflow server: REST requests by endpoint and wall time.

Starts `mlflow server` on loopback (SQLite + local artifact store, proxied), registers models whose
files are laid out in different numbers of directories, then times in one run:

* `seal --model` (list, stream and hash every file from the artifact store, record the manifest);
* the gate with `--artifacts DIR` (files already on disk: constant MLflow requests);
* the gate without `--artifacts` (re-hash the files in the artifact store);
* the reference: MLflow's own client downloading the same model to disk
  (`mlflow.artifacts.download_artifacts`), which does strictly less work than the store gate.

It prints the requests each run made by endpoint, and checks the claim of DESIGN §7: listing
requests grow with directory pages, not with files (same files in 5 or 50 directories; 500 vs
5,000 files in the same directories), and the number of non-download requests per model version
is constant.

    python benchmarks/lineage.py [--files 5000] [--dirs 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mlgate.demo.mlflow_server import LocalMlflow
from mlgate.lineage import artifacts
from mlgate.lineage.mlflow import MlflowClient

POLICY = """\
version: 1
default_risk: high
risk_classes:
  high:
    lineage: [source_run_finished, git_commit, training_dataset]
    tags_required: [owner]
    metrics: {auc: ">= 0.8"}
"""


def layout(n_files: int, n_dirs: int) -> dict[str, bytes]:
    files = {"MLmodel": b"flavors: {}\n"}
    for i in range(n_files - 1):
        files[f"shards/d{i % n_dirs:03d}/f{i:05d}.json"] = f'{{"i": {i}, "pad": "{"x" * (i % 200)}"}}'.encode()
    return files


def register(uri: str, store: Path, name: str, files: dict[str, bytes]) -> str:
    """Register a model whose files are written straight into the server's artifact store (fast)."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient as Official

    mlflow.set_tracking_uri(uri)
    client = Official(uri)
    exp = mlflow.set_experiment(f"bench-{name}")
    run = client.create_run(exp.experiment_id, tags={"mlflow.source.git.commit": "ab" * 20})
    client.log_metric(run.info.run_id, "auc", 0.9)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"x": [1]}), source="s3://b/t.csv", name="t"),
                         context="training")
    logged = mlflow.initialize_logged_model(name="model", source_run_id=run.info.run_id,
                                            experiment_id=exp.experiment_id)
    root = store / str(exp.experiment_id) / "models" / logged.model_id / "artifacts"
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    mlflow.finalize_logged_model(logged.model_id, "READY")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name, tags={"owner": "bench"})
    mv = client.create_model_version(name, f"models:/{logged.model_id}", run_id=run.info.run_id,
                                     model_id=logged.model_id)
    return f"models:/{name}/{mv.version}"


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def kinds(counts: Counter[str]) -> tuple[int, int, int]:
    listing = sum(v for k, v in counts.items() if "list" in k or "directories" in k)
    downloads = counts["mlflow-artifacts download"]
    return listing, downloads, sum(counts.values()) - listing - downloads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--dirs", type=int, default=50)
    args = parser.parse_args()

    from mlgate.gate import evaluate

    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        work = Path(tmp)
        policy = work / "policy.yaml"
        policy.write_text(POLICY)
        with LocalMlflow(work / "server") as server:
            os.environ["MLFLOW_TRACKING_URI"] = server.uri
            store = work / "server" / "artifacts"
            cases = [("big", args.files, args.dirs), ("big-few-dirs", args.files, max(1, args.dirs // 10)),
                     ("small", max(2, args.files // 10), args.dirs)]
            refs = {name: register(server.uri, store, name, layout(n, d)) for name, n, d in cases}
            rows: list[tuple[str, str, int, int, Counter[str], float]] = []
            for name, n, d in cases:
                client = MlflowClient.from_env()
                version = client.resolve(refs[name])
                client.request_counts.clear()
                (manifest, where), seconds = timed(lambda c=client, v=version: artifacts.seal_from_store(c, v))
                rows.append(("hash from store", name, n, d + 1, Counter(client.request_counts), seconds))
                if name == "big":
                    uri = artifacts.store_manifest(client, where, manifest)
                    client.set_model_version_tag(version["name"], version["version"], artifacts.TAG_URI, uri)
                    client.set_model_version_tag(version["name"], version["version"], artifacts.TAG_SHA256,
                                                 manifest.digest)
            big = refs["big"]
            local_dir = work / "download"

            def reference() -> None:
                import mlflow

                mlflow.artifacts.download_artifacts(artifact_uri=big, dst_path=str(local_dir))

            _, ref_seconds = timed(reference)
            for label, kwargs in (("gate --artifacts DIR", {"artifacts_dir": str(local_dir)}),
                                  ("gate (store re-hash)", {})):
                client = MlflowClient.from_env()
                outcome, seconds = timed(lambda c=client, k=kwargs: evaluate(big, policy_path=str(policy), client=c,
                                                                              **k))
                assert outcome.passed, outcome.summary
                rows.append((label, "big", args.files, args.dirs + 1, Counter(client.request_counts), seconds))

    print(f"\nlineage benchmark: {args.files} files, local mlflow server, 2-core machine\n")
    header = (f"{'run':<22}{'model':<14}{'files':>6}{'dirs':>6}{'list req':>9}{'downloads':>10}{'other req':>10}"
              f"{'wall s':>8}{'vs mlflow':>10}")
    print(header)
    print("-" * len(header))
    for label, name, n, d, counts, seconds in rows:
        listing, downloads, other = kinds(counts)
        ratio = f"{seconds / ref_seconds:.2f}x" if n == args.files else ""
        print(f"{label:<22}{name:<14}{n:>6}{d:>6}{listing:>9}{downloads:>10}{other:>10}{seconds:>8.2f}{ratio:>10}")
    print(f"{'mlflow download (ref)':<22}{'big':<14}{args.files:>6}{args.dirs + 1:>6}{'':>9}{'':>10}{'':>10}"
          f"{ref_seconds:>8.2f}{'1.00x':>10}")
    print("\nrequests by endpoint:")
    for label, name, _, _, counts, _ in rows:
        print(f"  {label} / {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    by = {(r[0], r[1]): kinds(r[4]) for r in rows}
    big_list, few_list, small_list = (by[("hash from store", n)][0] for n in ("big", "big-few-dirs", "small"))
    checks = {
        "listing = one request per directory page (big)": big_list == args.dirs + 2,
        "10x fewer directories -> fewer listing requests, same files": few_list < big_list,
        "10x fewer files in the same directories -> same listing requests": small_list == big_list,
        "gate --artifacts DIR: constant requests (one download: the manifest)":
        by[("gate --artifacts DIR", "big")][1] == 1 and sum(by[("gate --artifacts DIR", "big")]) < 10,
    }
    print()
    for text, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
