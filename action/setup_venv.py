"""Install mlgate for the composite action from locked, hashed wheels (standard library only).

Run with the interpreter that ``actions/setup-python`` installed (``update-environment: false``,
so the caller's Python, PATH and pip are untouched):

* ``plan``: choose the lock file the command needs (``locks/<profile>.txt``: ``verify`` needs no
  Azure SDK), and print to ``$GITHUB_OUTPUT`` the wheelhouse directory that ``actions/cache``
  restores and saves, and a cache key made of the lock files' SHA-256, the interpreter and the
  runner.
* ``install``: the cache holds wheel files only, never an environment. Every restored file must be a
  regular ``.whl`` whose SHA-256 is one of the lock's hashes, and is copied while hashed into a fresh
  private directory (``mkdtemp``: a name no earlier step can predict); anything else makes the whole
  wheelhouse untrusted, and the wheels are downloaded again with ``pip download --require-hashes``.
  A new virtual environment is then built in that private directory from the verified copies, with
  uv (from its own hashed wheel) or pip, offline and ``--require-hashes``; mlgate's own code is the
  action's checkout (pinned by the caller's commit SHA), reached through a ``.pth`` file. The
  interpreter path goes to ``$GITHUB_OUTPUT`` as ``python``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import venv as venvlib
import zipfile
from pathlib import Path

PROFILES = ("core", "azure", "s3", "all")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
TIMEOUT = 900


class SetupError(Exception):
    """Installing mlgate failed; the message says why (exit 3)."""

    exit_code = 3


class InputError(SetupError):
    """An action input is wrong (exit 2)."""

    exit_code = 2


def action_root() -> Path:
    root = os.environ.get("GITHUB_ACTION_PATH") or str(Path(__file__).resolve().parent.parent)
    return Path(root)


def action_version(root: Path) -> str:
    text = (root / "src" / "mlgate" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("error: cannot read mlgate's version from src/mlgate/__init__.py")
    return match.group(1)


def profile(env: dict[str, str]) -> str:
    """Which lock the command needs. ``extras`` (the action input) overrides the choice."""
    chosen = env.get("ACTION_MLGATE_EXTRAS", "").strip() or "auto"
    if chosen != "auto":
        if chosen not in PROFILES:
            raise InputError(f"input 'extras' is {chosen!r}; use auto, {', '.join(PROFILES)}")
        return chosen
    command = env.get("ACTION_MLGATE_COMMAND", "").strip()
    remote_ledger = env.get("MLGATE_LEDGER", "").strip().lower().startswith("https:")
    if command in ("seal", "verify") and not env.get("MLGATE_MODEL", "").strip() and not remote_ledger:
        return "core"  # local files against a manifest file: no SDK at all
    if (
        command == "audit verify"
        and env.get("MLGATE_FILE", "").strip()
        and env.get("MLGATE_NO_ANCHORS") == "true"
    ):
        return "core"
    return "azure"  # MLflow may keep files in Azure Blob, Azure ML tracking, the blob ledger, Key Vault


def locks(root: Path, name: str) -> list[Path]:
    return [root / "locks" / f"{name}.txt", root / "locks" / "tools.txt"]


def lock_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def allowed_hashes(paths: list[Path]) -> set[str]:
    return {m.group(1) for path in paths for m in HASH.finditer(path.read_text(encoding="utf-8"))}


def runner_temp() -> Path:
    return Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir())


def plan(env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if env is None else env)
    root = action_root()
    name = profile(env)
    digest = lock_digest(locks(root, name))
    python_version = ".".join(str(part) for part in sys.version_info[:3])
    runner = f"{env.get('RUNNER_OS', sys.platform)}-{env.get('RUNNER_ARCH', platform.machine())}"
    return {
        "profile": name,
        "lock": str(locks(root, name)[0]),
        "wheelhouse": str(runner_temp() / f"mlgate-wheels-{name}-{digest[:16]}"),
        "key": f"mlgate-wheels-{runner}-py{python_version}-{name}-{digest[:32]}",
        "version": action_version(root),
    }


def write_outputs(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    lines = "".join(f"{key}={value}\n" for key, value in values.items())
    if target:
        with open(target, "a", encoding="utf-8", newline="\n") as stream:
            stream.write(lines)
    else:
        sys.stdout.write(lines)


def copy_verified(source: Path, target: Path, allowed: set[str]) -> str | None:
    """Copy every wheel of ``source`` into ``target``, hashing the bytes it copies; None when all are
    lock-listed regular ``.whl`` files, else why the wheelhouse cannot be trusted."""
    if not source.is_dir() or source.is_symlink():
        return "no wheelhouse was restored"
    entries = sorted(source.iterdir())
    if not entries:
        return "the restored wheelhouse is empty"
    for entry in entries:
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode) or not entry.name.endswith(".whl"):
            return f"{entry.name} is not a wheel file"
        data = entry.read_bytes()
        if hashlib.sha256(data).hexdigest() not in allowed:
            return f"{entry.name} matches no hash of the lock file"
        (target / entry.name).write_bytes(data)
    return None


def download(wheels: Path, lock_files: list[Path]) -> None:
    """Every wheel this interpreter and platform need, checked against the lock's hashes by pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-input", "--disable-pip-version-check"]
    cmd += ["--require-hashes", "--no-deps", "--only-binary", ":all:", "--dest", str(wheels)]
    for path in lock_files:
        cmd += ["--requirement", str(path)]
    run(cmd, "downloading the locked wheels")


def run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{what} failed: {exc}") from None
    if proc.returncode != 0:
        raise SetupError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())


def extract_uv(wheels: Path, bindir: Path) -> Path | None:
    """The uv executable from its (hash-verified) wheel, or None when there is no uv wheel here."""
    name = "uv.exe" if os.name == "nt" else "uv"
    for wheel in sorted(wheels.glob("uv-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            members = [
                m for m in archive.namelist() if re.fullmatch(rf"uv-[^/]+\.data/scripts/{re.escape(name)}", m)
            ]
            if not members:
                continue
            bindir.mkdir(parents=True, exist_ok=True)
            target = bindir / name
            target.write_bytes(archive.read(members[0]))
            target.chmod(0o700)
            return target
    return None


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def install_wheels(
    installer: str, uv: Path | None, python: Path, wheels: Path, lock: Path, private: Path
) -> str:
    """Install the lock's wheels from ``wheels`` (no index) into ``python``'s venv; the installer used."""
    common = ["--no-index", "--find-links", str(wheels), "--require-hashes", "--requirement", str(lock)]
    if installer != "pip" and uv is not None:
        cmd = [str(uv), "pip", "install", "--no-config", "--offline", "--quiet", "--python", str(python)]
        cmd += ["--cache-dir", str(private / "uv-cache"), "--link-mode", "hardlink", *common]
        run(cmd, "installing the locked wheels with uv")
        return "uv"
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--isolated", "--quiet"]
    cmd += ["--no-input", "--disable-pip-version-check", "--no-deps", "--no-compile", *common]
    run(cmd, "installing the locked wheels with pip")
    return "pip"


def check(python: Path, root: Path, version: str) -> None:
    src = str((root / "src").resolve())
    probe = (
        "import mlgate, os, sys; "
        f"sys.exit(0 if mlgate.__version__ == {version!r} and "
        f"os.path.realpath(mlgate.__file__).startswith({src!r}) else 1)"
    )
    run([str(python), "-c", probe], f"checking that mlgate {version} imports from the action")


def prepare_wheels(values: dict[str, str], wheels: Path, lock_files: list[Path]) -> str:
    """Fill ``wheels`` from the verified cache, or from the index (then refresh the cache's copy)."""
    restored = Path(values["wheelhouse"])
    problem = copy_verified(restored, wheels, allowed_hashes(lock_files))
    if problem is None:
        print(f"mlgate: every restored wheel matches {Path(values['lock']).name}'s hashes")
        return "cache"
    print(f"mlgate: not using the restored wheelhouse ({problem}); downloading the locked wheels")
    for stale in wheels.iterdir():
        stale.unlink()
    download(wheels, lock_files)
    shutil.rmtree(restored, ignore_errors=True)
    if restored.is_symlink() or restored.exists():
        restored.unlink()
    shutil.copytree(wheels, restored)  # what actions/cache/save stores for the next run
    return "index"


def install(installer: str = "") -> dict[str, str]:
    values = plan()
    root = action_root()
    lock_files = locks(root, values["profile"])
    temp = runner_temp()
    temp.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="mlgate-", dir=temp))  # mode 0700, unpredictable name
    wheels = private / "wheels"
    wheels.mkdir()
    source = prepare_wheels(values, wheels, lock_files)
    venv = private / "venv"
    try:  # in this process: no second interpreter start-up
        venvlib.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(f"creating the virtual environment failed: {exc}") from None
    python = venv_python(venv)
    uv = extract_uv(wheels, private / "bin")
    used = install_wheels(
        installer or os.environ.get("MLGATE_INSTALLER", ""), uv, python, wheels, lock_files[0], private
    )
    (site_packages(venv) / "mlgate-action.pth").write_text(
        str((root / "src").resolve()) + "\n", encoding="utf-8"
    )
    shutil.rmtree(wheels)
    shutil.rmtree(private / "uv-cache", ignore_errors=True)
    check(python, root, values["version"])
    print(
        f"mlgate {values['version']} ({values['profile']}): wheels from the {source}, installed with {used} into {venv}"
    )
    return {"python": str(python), "venv": str(venv), "source": source, "installer": used}


def main(argv: list[str]) -> int:
    try:
        if argv == ["plan"]:
            write_outputs(plan())
            return 0
        if argv == ["install"]:
            write_outputs(install())
            return 0
    except SetupError as exc:
        print(f"error: installing mlgate failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: installing mlgate failed: {exc}", file=sys.stderr)
        return 3
    print("usage: setup_venv.py plan|install", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
