"""Helpers for governed-record tests: model versions on a real MLflow server, evidence packs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CI_VARS = (
    "GITHUB_ACTIONS",
    "TF_BUILD",
    "GITHUB_TOKEN",
    "SYSTEM_ACCESSTOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLGATE_LEDGER",
    "AZURE_STORAGE_CONNECTION_STRING",
)
AUTHOR = "dora.developer"  # mlflow.user of every training run
SEAL = "ef" * 32  # the mlgate.manifest.sha256 every registered version carries (and write_evidence gates)


@dataclass
class Registered:
    name: str
    versions: list[str]
    run_ids: list[str]

    def ref(self, i: int = 0) -> str:
        return f"models:/{self.name}/{self.versions[i]}"


def register(uri: str, versions: int = 2, *, author: str = AUTHOR, risk: str | None = None) -> Registered:
    """A registered model with ``versions`` sealed versions, each from its own run authored by ``author``."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    name = f"governed-{uuid.uuid4().hex[:10]}"
    exp = client.create_experiment(f"exp-{name}")
    client.create_registered_model(name, tags={"owner": "risk-team"})
    made, runs = [], []
    for _ in range(versions):
        run = client.create_run(exp, tags={"mlflow.user": author, "mlflow.source.git.commit": "ab" * 20})
        client.set_terminated(run.info.run_id)
        mv = client.create_model_version(
            name,
            f"runs:/{run.info.run_id}/model",
            run_id=run.info.run_id,
            tags={"mlgate.manifest.sha256": SEAL, **({"risk_class": risk} if risk else {})},
        )
        made.append(str(mv.version))
        runs.append(run.info.run_id)
    return Registered(name, made, runs)


def version_tags(uri: str, name: str, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return dict(MlflowClient(uri).get_model_version(name, version).tags)


def alias_of(uri: str, name: str, alias: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def write_evidence(
    path: Path,
    name: str,
    version: str,
    *,
    approvals: dict[str, Any] | None = None,
    passed: bool = True,
    stage: str | None = "production",
    manifest: str = SEAL,
) -> Path:
    """An evidence pack as `mlgate gate` writes it (same digest rule), for the version."""
    import json

    from mlgate.evidence.pack import DIGEST_KEY, digest

    doc: dict[str, Any] = {
        "schema_version": "1",
        "kind": "mlgate-evidence",
        "generated_at": "2026-01-01T00:00:00+00:00",
        "model": {"ref": f"models:/{name}/{version}", "name": name, "version": version, "alias": None},
        "stage": stage,
        "risk": {"class": "high", "source": "policy default_risk"},
        "policy": {"source": "policy.yaml", "sha256": "cd" * 32},
        "manifest": {"sha256": manifest},
        "requirements": {
            "approvals": approvals or {"min_approvers": 1, "approver_not_author": True, "approver_not_requester": True}
        },
        "decision": {
            "passed": passed,
            "verdict": "passed" if passed else "refused",
            "failed_rules": [] if passed else ["metrics.auc"],
            "rules_total": 9,
        },
    }
    doc[DIGEST_KEY] = digest(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
