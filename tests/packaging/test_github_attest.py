""".github/workflows/mlgate-attest.yml: the manifest as a GitHub artifact attestation.

The attest step may use only inputs that actions/attest declares at the pinned commit, the job asks
for exactly the two permissions keyless signing needs, and the predicate step, run as the runner
runs it (bash, the step's env), turns the manifest `mlgate seal -o` wrote into the documented
predicate: the model ref, the manifest's SHA-256 (which is the seal's digest) and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlgate.cli import main
from tests.packaging.conftest import ROOT

pytestmark = pytest.mark.packaging

TEMPLATE = ROOT / ".github" / "workflows" / "mlgate-attest.yml"
ATTEST_SHA = "1e69f48acb82d1966a394da916b4c1698aa569d6"  # actions/attest v4.2.2
# the inputs of actions/attest's action.yml at that commit
ATTEST_INPUTS = {"subject-path", "subject-digest", "subject-name", "subject-checksums", "subject-version",
                 "sbom-path", "predicate-type", "predicate", "predicate-path", "push-to-registry",
                 "create-storage-record", "show-summary", "github-token"}


def job() -> dict[str, Any]:
    jobs: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))["jobs"]
    return dict(jobs["attest"])


def step(name: str) -> dict[str, Any]:
    [found] = [s for s in job()["steps"] if s.get("name", "").startswith(name)]
    return dict(found)


def test_attest_step_is_pinned_and_uses_only_declared_inputs() -> None:
    attest = step("Attest the manifest")
    assert attest["uses"] == f"actions/attest@{ATTEST_SHA}"
    assert set(attest["with"]) <= ATTEST_INPUTS
    assert attest["with"]["predicate-type"] == "https://mlgate.dev/manifest/v1"
    assert job()["permissions"] == {"id-token": "write", "attestations": "write"}


def test_predicate_step_builds_the_documented_predicate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(2048))
    manifest_dir = tmp_path / "mlgate-manifest"
    manifest_dir.mkdir()
    manifest = manifest_dir / "manifest.json"
    assert main(["seal", str(model), "-o", str(manifest), "--platform", "local"]) == 0
    sealed = re.search(r"manifest sha256:([0-9a-f]{64})", capsys.readouterr().out)
    predicate_step = step("Predicate")
    values = {"inputs.model-ref": "models:/fraud/7", "runner.temp": str(tmp_path)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLGATE_"))}
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    for name, expression in predicate_step["env"].items():
        env[name] = re.sub(r"\$\{\{ ([a-z.-]+) \}\}", lambda m: values[m.group(1)], expression)
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", predicate_step["run"]],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    predicate = json.loads((tmp_path / "mlgate-predicate.json").read_text())
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert sealed is not None and sealed.group(1) == digest  # sha256sum of the file is the seal's digest
    assert predicate == {"model": "models:/fraud/7", "manifest_sha256": digest,
                         "manifest": json.loads(manifest.read_bytes())}
    manifest.write_text("{not json")
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", predicate_step["run"]],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "is not the manifest mlgate seal wrote" in proc.stderr
