"""Install mlgate for the composite action into its own virtual environment (standard library only).

Run with the interpreter that ``actions/setup-python`` installed (``update-environment: false``,
so the caller's Python, PATH and pip are untouched):

* ``plan``: print the venv directory, its interpreter and a cache key to ``$GITHUB_OUTPUT``.
  The key is derived from the action's own version and a digest of the files that get installed
  (so a new action version never reuses an old venv), the interpreter and the runner.
* ``install``: reuse the venv when its mlgate imports and has this action's version; otherwise
  create it afresh and ``pip install`` the action's own source tree into it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

INSTALLED = ("pyproject.toml", "README.md", "LICENSE", "src")


def action_root() -> Path:
    root = os.environ.get("GITHUB_ACTION_PATH") or str(Path(__file__).resolve().parent.parent)
    return Path(root)


def action_version(root: Path) -> str:
    text = (root / "src" / "mlgate" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("error: cannot read mlgate's version from src/mlgate/__init__.py")
    return match.group(1)


def source_digest(root: Path) -> str:
    """SHA-256 over the relative names and contents of everything ``pip install`` reads."""
    digest = hashlib.sha256()
    for name in INSTALLED:
        top = root / name
        if top.is_dir():
            files = sorted(path for path in top.rglob("*") if path.is_file())
        else:
            files = [top] if top.is_file() else []
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(root).as_posix()
            digest.update(rel.encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def plan() -> dict[str, str]:
    root = action_root()
    version = action_version(root)
    temp = Path(os.environ.get("RUNNER_TEMP") or Path.home() / ".cache")
    python_version = ".".join(str(part) for part in sys.version_info[:3])
    seed = "\n".join([source_digest(root), sys.executable, str(temp), platform.machine()])
    tag = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:20]
    venv = temp / f"mlgate-action-{tag}"
    runner = (
        f"{os.environ.get('RUNNER_OS', sys.platform)}-{os.environ.get('RUNNER_ARCH', platform.machine())}"
    )
    return {
        "venv": str(venv),
        "python": str(venv_python(venv)),
        "key": f"mlgate-action-{version}-{runner}-py{python_version}-{tag}",
        "version": version,
    }


def write_outputs(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    lines = "".join(f"{key}={value}\n" for key, value in values.items())
    if target:
        with open(target, "a", encoding="utf-8", newline="\n") as stream:
            stream.write(lines)
    else:
        sys.stdout.write(lines)


def works(python: Path, version: str) -> bool:
    if not python.exists():
        return False
    check = f"import mlgate, sys; sys.exit(0 if mlgate.__version__ == {version!r} else 1)"
    proc = subprocess.run([str(python), "-c", check], capture_output=True, timeout=120, check=False)
    return proc.returncode == 0


def install() -> int:
    values = plan()
    venv, python, version = Path(values["venv"]), Path(values["python"]), values["version"]
    if works(python, version):
        print(f"mlgate {version}: reusing the cached environment {venv}")
        return 0
    shutil.rmtree(venv, ignore_errors=True)
    print(f"mlgate {version}: installing into a new environment {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            str(action_root()),
        ],
        check=True,
        timeout=1200,
    )
    if not works(python, version):
        print(f"error: mlgate {version} does not import from {venv} after installation", file=sys.stderr)
        return 3
    return 0


def main(argv: list[str]) -> int:
    if argv == ["plan"]:
        write_outputs(plan())
        return 0
    if argv == ["install"]:
        try:
            return install()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"error: installing mlgate failed: {exc}", file=sys.stderr)
            return 3
    print("usage: setup_venv.py plan|install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
