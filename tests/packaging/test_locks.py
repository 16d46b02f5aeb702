"""The locked, hashed runtime dependencies (locks/*.txt): they match pyproject.toml, agree with each
other, and install with --require-hashes into a fresh virtual environment with the built wheel."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.conftest import ROOT, tool

pytestmark = pytest.mark.packaging

LOCKS = ROOT / "locks"
PROFILES = {
    "core": [],
    "azure": ["azure"],
    "github": ["github"],
    "service": ["service"],
    "s3": ["s3"],
    "all": ["azure", "github", "service", "s3"],
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)(?: ;([^\\]+))?", re.M)


def pins(name: str) -> dict[tuple[str, str], str]:
    """{(package, marker): version} of one lock file."""
    text = (LOCKS / f"{name}.txt").read_text(encoding="utf-8")
    return {(canonicalize_name(m[1]), (m[3] or "").strip()): m[2] for m in PIN.finditer(text)}


def direct(wheel: Path, extras: list[str]) -> set[str]:
    """The built wheel's requirements (Requires-Dist) for the core and ``extras``."""
    from tests.packaging.test_release import wheel_metadata

    names = set()
    for line in wheel_metadata(wheel).get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        wanted = requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in extras)
        if wanted and canonicalize_name(requirement.name) != "mlgate":
            names.add(canonicalize_name(requirement.name))
    return names


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_lock_pins_its_profiles_requirements_with_hashes(name: str, dist: dict[str, Path]) -> None:
    text = (LOCKS / f"{name}.txt").read_text(encoding="utf-8")
    locked = {package for package, _marker in pins(name)}
    assert direct(dist["wheel"], PROFILES[name]) <= locked, f"{name}.txt is stale: run `make lock`"
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.strip()):
        if block.startswith("#"):
            continue
        assert "--hash=sha256:" in block, f"{name}.txt: {block.splitlines()[0]} has no hash"
    assert "--index-url" not in text and "http" not in text, "a lock names no index"


def test_the_locks_agree_on_every_version() -> None:
    everything: dict[str, set[str]] = {}
    for (package, _marker), version in pins("all").items():
        everything.setdefault(package, set()).add(version)
    for name in PROFILES:
        for (package, _marker), version in pins(name).items():
            assert version in everything.get(package, set()), (
                f"{name}.txt: {package} {version}, all.txt {everything.get(package)}"
            )
    # only the core profile lacks the SDKs
    assert not any(p.startswith(("azure-", "pygithub", "waitress", "boto")) for p, _ in pins("core"))
    assert any(p == "azure-identity" for p, _ in pins("azure"))


def test_the_tool_locks_pin_uv_and_the_build_tools() -> None:
    assert {p for p, _ in pins("tools")} == {"uv"}
    assert {"build", "twine", "hatchling"} <= {p for p, _ in pins("release")}


def test_the_core_lock_and_the_wheel_install_with_hashes_on_a_fresh_venv(
    dist: dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    uv = [tool("uv"), "pip", "install", "--no-config", "--python", str(python), "--require-hashes", "--quiet"]
    proc = subprocess.run([*uv, "-r", str(LOCKS / "core.txt")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [
            tool("uv"),
            "pip",
            "install",
            "--no-config",
            "--python",
            str(python),
            "--no-deps",
            "--offline",
            str(dist["wheel"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # a requirement without a hash is refused under --require-hashes
    (tmp_path / "loose.txt").write_text("six==1.17.0\n")
    loose = subprocess.run(
        [*uv, "-r", str(tmp_path / "loose.txt")], capture_output=True, text=True, timeout=300
    )
    assert loose.returncode != 0 and "hash" in loose.stderr.lower(), loose.stderr

    mlgate = venv / "bin" / "mlgate"
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 1000)
    sealed = subprocess.run(
        [str(mlgate), "seal", str(model), "-o", str(tmp_path / "m.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert sealed.returncode == 0, sealed.stderr
    verified = subprocess.run(
        [str(mlgate), "verify", str(model), "--manifest", str(tmp_path / "m.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert verified.returncode == 0, verified.stderr
    for argv, extra in (
        (["secrets", "--vault", "kv", "--secrets", "a"], "azure"),
        (["serve", "--port", "0"], "service"),
    ):
        out = subprocess.run(
            [str(mlgate), *argv, "--platform", "local"] if argv[0] == "secrets" else [str(mlgate), *argv],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        assert f"'{extra}' extra" in out.stderr and f"locks/{extra}.txt" in out.stderr, out.stderr
