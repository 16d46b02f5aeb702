"""Item 1 of the packaging: the sdist and wheel a user installs, and the release workflow that ships them."""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from mlgate import __version__
from tests.packaging.conftest import ROOT, tool

pytestmark = pytest.mark.packaging

RELEASE = ROOT / ".github" / "workflows" / "release.yml"


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_build_makes_an_sdist_and_a_wheel_that_pass_twine_check(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name == f"mlgate-{__version__}-py3-none-any.whl"
    assert dist["sdist"].name == f"mlgate-{__version__}.tar.gz"
    proc = subprocess.run(
        [tool("twine"), "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_wheel_carries_the_license_metadata_and_the_extras(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = set(archive.namelist())
        licence = archive.read(f"mlgate-{__version__}.dist-info/licenses/LICENSE").decode("utf-8")
    assert licence == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence  # the full text, not a one-line notice
    assert {"mlgate/__init__.py", "mlgate/cli.py", "mlgate/py.typed"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    meta = wheel_metadata(dist["wheel"])
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert set(meta.get_all("Provides-Extra") or []) >= {"azure", "github", "service", "s3", "all", "test"}
    core = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert not any(re.match(r"(azure|PyGithub|waitress|boto3)", r, re.I) for r in core), core
    assert "mlgate = mlgate.cli:entrypoint" in zipfile.ZipFile(dist["wheel"]).read(
        f"mlgate-{__version__}.dist-info/entry_points.txt"
    ).decode("utf-8")


def test_the_sdist_carries_license_changelog_and_locks(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "locks/core.txt",
        "locks/azure.txt",
    } <= names
    assert "src/mlgate/cli.py" in names


def test_the_changelog_names_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{__version__}]" in text
    assert "## [Unreleased]" in text


def test_the_release_workflow_builds_attests_and_publishes_with_trusted_publishing() -> None:
    workflow = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    uses = {job: [s.get("uses", "").split("@")[0] for s in spec["steps"]] for job, spec in jobs.items()}
    assert "actions/attest-build-provenance" in uses["build"]
    assert jobs["build"]["permissions"] == {"contents": "read", "id-token": "write", "attestations": "write"}
    assert uses["publish"][-1] == "pypa/gh-action-pypi-publish"
    publish = jobs["publish"]
    assert publish["permissions"] == {"id-token": "write"}, "trusted publishing: an OIDC token, no secret"
    assert publish["environment"]["name"] == "release"
    assert "with" not in publish["steps"][-1], "no password or token input: trusted publishing only"
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")
    build = "\n".join(s.get("run", "") for s in jobs["build"]["steps"])
    assert "pip install --require-hashes" in build and "-r locks/release.txt" in build
    assert "python -m build --no-isolation" in build and "twine check --strict" in build


def test_the_build_half_of_the_release_workflow_runs_here(tmp_path: Path) -> None:
    """The workflow's build script, run as the runner would (bash, the tag in TAG) on a copy of the tree;
    a tag that does not match the version stops it before anything is built."""
    workflow = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    [step] = [
        s for s in workflow["jobs"]["build"]["steps"] if s.get("name") == "Build the sdist and the wheel"
    ]
    tree = tmp_path / "tree"
    files = (
        subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        .stdout.decode("utf-8")
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(
            ("node_modules", "azure-pipelines-task/MlgateV1/node_modules")
        ):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(source.read_bytes())
    # a fresh venv with the build tools from locks/release.txt, as the workflow's previous step does
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=300)
    env = {
        "PATH": f"{tmp_path / 'venv' / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TAG": "v0.0.0-not-this",
    }
    [tools] = [s for s in workflow["jobs"]["build"]["steps"] if s.get("name") == "Build tools from the lock"]
    installed = subprocess.run(
        ["bash", "-c", tools["run"]], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    wrong = subprocess.run(
        ["bash", "-c", step["run"]], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )
    assert wrong.returncode == 1 and "does not match mlgate" in wrong.stdout
    assert not (tree / "dist").exists()
    env["TAG"] = f"v{__version__}"
    proc = subprocess.run(
        ["bash", "-c", step["run"]], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sums = (tree / "dist" / "SHA256SUMS").read_text(encoding="utf-8")
    for name in (
        f"mlgate-{__version__}-py3-none-any.whl",
        f"mlgate-{__version__}.tar.gz",
        "core.txt",
        "azure.txt",
    ):
        assert f"  {name}\n" in sums, sums
