"""The demo's training job: train, log and register two small models in a local MLflow.

Run as ``python -m mlgate.demo.train --tracking-uri URI --deploy-dir DIR --commit SHA``. It needs
the ``mlflow`` and ``scikit-learn`` packages (the demo/test extra); the product itself never
imports ``mlflow``. Prints one JSON line: the model references it registered.

* ``credit-risk``: fully traced (finished run, git commit, training dataset, owner, use case,
  rollback plan, AUC and a fairness metric); its files are also downloaded to DIR, as a deploy
  stage would.
* ``churn-untraced``: logged without a git commit or a training dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _data(seed: int) -> tuple[Any, Any, Any]:
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1200, n_features=8, n_informative=5, random_state=seed)
    group = np.random.default_rng(seed).integers(0, 2, size=len(y))  # a synthetic protected attribute
    return x, y, group


def _register_untraced(client: Any, x: Any, y: Any, split: int) -> str:
    """A quick experiment registered without commit, training data or owner: the gate must refuse it."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    with mlflow.start_run(run_name="churn-quick-experiment") as quick:
        model = LogisticRegression(max_iter=500).fit(x[:split], y[:split])
        mlflow.log_metric("auc", float(roc_auc_score(y[split:], model.predict_proba(x[split:])[:, 1])))
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="churn-untraced")
    untraced = str(info.registered_model_version)
    # MLflow records the commit of a git checkout by itself; this quick experiment must have none.
    client.delete_tag(quick.info.run_id, "mlflow.source.git.commit")
    client.set_model_version_tag("churn-untraced", untraced, "risk_class", "high")
    return untraced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--deploy-dir", required=True)
    parser.add_argument("--commit", required=True, help="the git commit the training code came from")
    args = parser.parse_args(argv)

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import from_pandas
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    mlflow.set_experiment("mlgate-demo")
    x, y, group = _data(7)
    split = 900
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(label=y, group=group)

    with mlflow.start_run(run_name="credit-risk-train") as run:
        mlflow.set_tag("mlflow.source.git.commit", args.commit)
        mlflow.log_input(from_pandas(frame.iloc[:split], name="loans-2026q3", targets="label"),
                         context="training")
        model = LogisticRegression(max_iter=500).fit(x[:split], y[:split])
        scores = model.predict_proba(x[split:])[:, 1]
        predicted = scores >= 0.5
        g = group[split:]
        dpd = abs(float(predicted[g == 0].mean()) - float(predicted[g == 1].mean()))
        mlflow.log_metrics({"auc": float(roc_auc_score(y[split:], scores)), "demographic_parity_difference": dpd})
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="credit-risk",
                                        input_example=x[:2])
    traced = info.registered_model_version
    client.set_registered_model_tag("credit-risk", "owner", "credit-models-team")
    client.set_registered_model_tag("credit-risk", "use_case", "retail loan pre-screening")
    client.set_model_version_tag("credit-risk", str(traced), "rollback_plan",
                                 "move the production alias back with `mlgate rollback credit-risk`")
    client.set_model_version_tag("credit-risk", str(traced), "risk_class", "high")
    # What a deploy stage fetches (MLflow adds its own `registered_model_meta`, which the gate accepts
    # only when it names exactly this version).
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/credit-risk/{traced}", dst_path=args.deploy_dir)

    untraced = _register_untraced(client, x, y, split)
    print(json.dumps({"traced": f"credit-risk/{traced}", "untraced": f"churn-untraced/{untraced}",
                      "run_id": run.info.run_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
