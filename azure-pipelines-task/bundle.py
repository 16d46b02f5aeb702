"""Put the mlgate wheel and its hashed locks into the task before `npx tfx-cli extension create`.

    python azure-pipelines-task/bundle.py [--wheel dist/mlgate-X-py3-none-any.whl]

Without ``--wheel`` it builds the wheel of this tree (``python -m build --wheel``). It refuses (exit 2)
when mlgate's version, the task's version (task.json), the extension's version (vss-extension.json)
and the task's package.json differ: they move together. It writes ``MlgateV1/mlgate/``: the wheel,
``locks/{core,azure,s3,all}.txt`` and ``bundle.json`` (version, wheel name, its SHA-256, the locks),
which the task reads to install the wheel with ``pip install --require-hashes``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASK = HERE / "MlgateV1"
PROFILES = ("core", "azure", "s3", "all")


def versions(root: Path = ROOT) -> dict[str, str]:
    """Every place that carries the release version."""
    text = (root / "src" / "mlgate" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    task = json.loads((root / "azure-pipelines-task" / "MlgateV1" / "task.json").read_text(encoding="utf-8"))
    v = task["version"]
    extension = json.loads((root / "azure-pipelines-task" / "vss-extension.json").read_text(encoding="utf-8"))
    package = json.loads(
        (root / "azure-pipelines-task" / "MlgateV1" / "package.json").read_text(encoding="utf-8")
    )
    return {
        "src/mlgate/__init__.py": match.group(1) if match else "?",
        "azure-pipelines-task/MlgateV1/task.json": f"{v['Major']}.{v['Minor']}.{v['Patch']}",
        "azure-pipelines-task/vss-extension.json": str(extension["version"]),
        "azure-pipelines-task/MlgateV1/package.json": str(package["version"]),
    }


def mismatches(root: Path = ROOT) -> list[str]:
    found = versions(root)
    if len(set(found.values())) == 1:
        return []
    return [f"{where}: {version}" for where, version in found.items()]


def build_wheel(out: Path) -> Path:
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    [wheel] = out.glob("mlgate-*-py3-none-any.whl")
    return wheel


def bundle(wheel: Path, target: Path = TASK / "mlgate") -> dict[str, object]:
    version = versions()["src/mlgate/__init__.py"]
    if not wheel.name.startswith(f"mlgate-{version}-"):
        raise SystemExit(f"error: {wheel.name} is not mlgate {version}")
    shutil.rmtree(target, ignore_errors=True)
    (target / "locks").mkdir(parents=True)
    shutil.copy2(wheel, target / wheel.name)
    for name in PROFILES:
        shutil.copy2(ROOT / "locks" / f"{name}.txt", target / "locks" / f"{name}.txt")
    manifest: dict[str, object] = {
        "version": version,
        "wheel": wheel.name,
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "locks": {name: f"locks/{name}.txt" for name in PROFILES},
    }
    (target / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="the mlgate wheel to bundle (default: build this tree's)")
    args = parser.parse_args(argv)
    problems = mismatches()
    if problems:
        print(
            "error: the versions differ; give them all the same version:\n  " + "\n  ".join(problems),
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or build_wheel(Path(tmp))
        manifest = bundle(wheel)
    print(f"bundled {manifest['wheel']} (sha256 {manifest['sha256']}) into {TASK.relative_to(ROOT)}/mlgate")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
