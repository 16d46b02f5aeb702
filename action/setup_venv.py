"""Install mlgate for the composite action from locked, hashed wheels (standard library only).

Run with the interpreter that ``actions/setup-python`` installed (``update-environment: false``,
so the caller's Python, PATH and pip are untouched):

* ``plan``: choose the lock file the command needs (``locks/<profile>.txt``: ``verify`` needs no
  Azure SDK), and print to ``$GITHUB_OUTPUT`` the wheelhouse directory that ``actions/cache``
  restores and saves, and a cache key made of the lock files' SHA-256, the interpreter and the
  runner.
* ``install``: the cache holds wheel files only, never an environment. Every restored file must be a
  regular ``.whl`` whose SHA-256 is one of the lock's hashes, and is copied while hashed into a fresh
  private directory (``mkdtemp``: a name no earlier step can predict); the one other file allowed is
  ``<uv wheel>.uv``, uv's executable kept unpacked (unzipping it costs more than hashing it), used
  only when its SHA-256 and size are the ones the RECORD of that verified wheel lists. Anything else
  makes the whole wheelhouse untrusted, and the wheels are downloaded again with
  ``pip download --require-hashes``. A new virtual environment is then built in that private
  directory from the verified copies, with uv (from its own hashed wheel) or pip, offline and
  ``--require-hashes``; mlgate's own code is the
  action's checkout (pinned by the caller's commit SHA), reached through a ``.pth`` file. The
  interpreter path goes to ``$GITHUB_OUTPUT`` as ``python``.
"""

from __future__ import annotations

import base64
import csv
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

PROFILES = ("core", "azure", "s3", "all")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
TIMEOUT = 900
UV_NAME = "uv.exe" if os.name == "nt" else "uv"
CACHE_LAYOUT = "v2"  # v2: the uv executable is cached unpacked next to its wheel
UNPACKED = ".uv"  # <uv wheel>.uv: its executable, kept unpacked in the cache


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


# The inputs that name a key (their MLGATE_<OPTION> variables): an azure-keyvault:// one needs the Azure SDKs.
KEY_INPUTS = {"sign": "MLGATE_SIGN", "public-key": "MLGATE_PUBLIC_KEY", "ledger-key": "MLGATE_LEDGER_KEY",
              "evidence-key": "MLGATE_EVIDENCE_KEY"}
AZURE_PROFILES = ("azure", "all")


def vault_key_inputs(env: dict[str, str]) -> list[str]:
    """The key inputs naming a Key Vault key (any line of it: public-key may list several keys)."""
    return [name for name, variable in KEY_INPUTS.items()
            if any(line.strip().lower().startswith("azure-keyvault://")
                   for line in env.get(variable, "").splitlines())]


def profile(env: dict[str, str]) -> str:
    """Which lock the command needs. ``extras`` (the action input) overrides the choice."""
    chosen = env.get("ACTION_MLGATE_EXTRAS", "").strip() or "auto"
    vault = vault_key_inputs(env)
    if chosen != "auto":
        if chosen not in PROFILES:
            raise InputError(f"input 'extras' is {chosen!r}; use auto, {', '.join(PROFILES)}")
        if vault and chosen not in AZURE_PROFILES:
            raise InputError(f"input '{vault[0]}' names a Key Vault key (azure-keyvault://...), which needs the "
                             f"Azure SDKs, and input 'extras' is {chosen!r}: set 'extras' to auto, azure or all")
        return chosen
    if vault:
        return "azure"  # signing in, or reading a public key from, Key Vault
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
        "key": f"mlgate-wheels-{CACHE_LAYOUT}-{runner}-py{python_version}-{name}-{digest[:32]}",
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
    """Copy every file of ``source`` into ``target`` and hash the copies (in parallel); None when all
    are lock-listed regular ``.whl`` files (and an unpacked uv matches its wheel's RECORD), else
    why the wheelhouse cannot be trusted."""
    if not source.is_dir() or source.is_symlink():
        return "no wheelhouse was restored"
    entries = sorted(source.iterdir())
    if not entries:
        return "the restored wheelhouse is empty"
    unpacked = [entry for entry in entries if entry.name.endswith(".whl" + UNPACKED)]
    for entry in entries:
        if entry in unpacked and not regular(entry):
            return f"{entry.name} is not an executable unpacked from a wheel of the lock"
        if entry not in unpacked and (not entry.name.endswith(".whl") or not regular(entry)):
            return f"{entry.name} is not a wheel file"
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib and the copy release the GIL
        copies = pool.map(lambda entry: copy_hashed(entry, target / entry.name), entries)
        digests = dict(zip(entries, copies, strict=True))
    for entry, digest in digests.items():
        if entry not in unpacked and (digest is None or digest.hex() not in allowed):
            return f"{entry.name} matches no hash of the lock file"
    for entry in unpacked:
        wheel = target / entry.name[: -len(UNPACKED)]
        if not wheel.is_file():
            return f"{entry.name} is not an executable unpacked from a wheel of the lock"
        found = digests[entry]
        size = (target / entry.name).stat().st_size
        if found is None or recorded_uv(wheel) != (record_form(found), size):
            return f"{entry.name} does not match the RECORD of {wheel.name}"
    return None


def regular(path: Path) -> bool:
    return stat.S_ISREG(path.lstat().st_mode)


def copy_hashed(source: Path, target: Path) -> bytes | None:
    """Copy ``source`` to ``target`` in the private directory and return the SHA-256 of the copy
    (what is checked is what is used), or None when the copy is not a regular file."""
    shutil.copyfile(source, target, follow_symlinks=False)
    if not regular(target):
        return None
    digest = hashlib.sha256()
    with open(target, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def record_form(digest: bytes) -> str:
    """A RECORD file's form of a SHA-256 (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def uv_member(name: str) -> re.Pattern[str]:
    return re.compile(rf"uv-[^/]+\.data/scripts/{re.escape(name)}")


def recorded_uv(wheel: Path) -> tuple[str, int] | None:
    """The digest and size the wheel's RECORD lists for its uv executable."""
    member = uv_member(UV_NAME)
    try:
        with zipfile.ZipFile(wheel) as archive:
            records = [m for m in archive.namelist() if re.fullmatch(r"uv-[^/]+\.dist-info/RECORD", m)]
            if len(records) != 1:
                return None
            text = archive.read(records[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    for row in csv.reader(text.splitlines()):
        if len(row) == 3 and member.fullmatch(row[0]) and row[1].startswith("sha256=") and row[2].isdigit():
            return row[1].removeprefix("sha256="), int(row[2])
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


class Uv(NamedTuple):
    path: Path
    wheel: str  # the file name of the wheel it comes from
    origin: str


def extract_uv(wheels: Path, bindir: Path) -> Uv | None:
    """The uv executable of its (hash-verified) wheel, or None when there is no uv wheel here: the
    verified unpacked copy the cache kept when there is one, else unpacked from the wheel now."""
    target = bindir / UV_NAME
    for wheel in sorted(wheels.glob("uv-*.whl")):
        bindir.mkdir(parents=True, exist_ok=True)
        kept = wheels / (wheel.name + UNPACKED)
        if kept.is_file():  # copy_verified checked it against the wheel's RECORD
            kept.replace(target)
            target.chmod(0o700)
            return Uv(target, wheel.name, "kept unpacked in the cache")
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if uv_member(UV_NAME).fullmatch(m)]
            if not members:
                continue
            target.write_bytes(archive.read(members[0]))
        target.chmod(0o700)
        return Uv(target, wheel.name, "unpacked from its wheel")
    return None


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def install_wheels(
    installer: str, uv: Uv | None, python: Path, wheels: Path, lock: Path, private: Path
) -> str:
    """Install the lock's wheels from ``wheels`` (no index) into ``python``'s venv; the installer used."""
    common = ["--no-index", "--find-links", str(wheels), "--require-hashes", "--requirement", str(lock)]
    if installer != "pip" and uv is not None:
        # hardlink from uv's cache, left in the private directory for the runner to empty with
        # $RUNNER_TEMP (deleting its files again would cost as much as the install); --no-deps as
        # the lock is complete
        cmd = [str(uv.path), "pip", "install", "--no-config", "--offline", "--quiet", "--python", str(python)]
        cmd += ["--cache-dir", str(private / "uv-cache"), "--link-mode", "hardlink", "--no-deps", *common]
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
    installer = installer or os.environ.get("MLGATE_INSTALLER", "")
    uv = None if installer == "pip" else extract_uv(wheels, private / "bin")
    if uv is not None and source == "index":  # the cache keeps it unpacked: no unzipping next time
        shutil.copyfile(uv.path, Path(values["wheelhouse"]) / (uv.wheel + UNPACKED))
    used = install_wheels(installer, uv, python, wheels, lock_files[0], private)
    (site_packages(venv) / "mlgate-action.pth").write_text(
        str((root / "src").resolve()) + "\n", encoding="utf-8"
    )
    shutil.rmtree(wheels)
    check(python, root, values["version"])
    how = f"uv ({uv.origin})" if used == "uv" and uv is not None else used
    print(
        f"mlgate {values['version']} ({values['profile']}): wheels from the {source}, installed with {how} into {venv}"
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
