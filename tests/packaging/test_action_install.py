"""The action's install (action/setup_venv.py): locked wheels only, checked before use, a new private venv.

The cold install downloads the locked wheels through pip as this machine is configured (the package
index); everything after it runs offline from the wheelhouse that actions/cache would restore.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT

pytestmark = pytest.mark.packaging

SCRIPT = ROOT / "action" / "setup_venv.py"


def load_setup_venv() -> object:
    sys.path.insert(0, str(ROOT / "action"))
    try:
        import setup_venv
    finally:
        sys.path.pop(0)
    return setup_venv


def action_env(temp: Path, **inputs: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHONPATH", "GITHUB_", "MLGATE_", "ACTION_"))
    }
    env.update(RUNNER_TEMP=str(temp), GITHUB_ACTION_PATH=str(ROOT), RUNNER_OS="Linux", RUNNER_ARCH="X64")
    env.update(inputs)
    return env


def setup(step: str, env: dict[str, str]) -> tuple[int, dict[str, str], str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), step], env=env, capture_output=True, text=True, timeout=900
    )
    values = dict(
        line.split("=", 1)
        for line in proc.stdout.splitlines()
        if "=" in line and " " not in line.split("=")[0]
    )
    return proc.returncode, values, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A runner temp after one cold install of the core profile (`verify`): the wheelhouse to cache."""
    temp = tmp_path_factory.mktemp("runner-temp")
    env = action_env(temp, ACTION_MLGATE_COMMAND="verify")
    code, values, log = setup("install", env)
    assert code == 0, log
    assert values["source"] == "index" and "downloading the locked wheels" in log, log
    yield temp, values


def test_plan_keys_the_cache_by_the_lock_files_digest(tmp_path: Path) -> None:
    code, values, log = setup("plan", action_env(tmp_path, ACTION_MLGATE_COMMAND="verify"))
    assert code == 0, log
    digest = hashlib.sha256()
    for name in ("core.txt", "tools.txt"):
        digest.update(name.encode() + b"\0" + hashlib.sha256((ROOT / "locks" / name).read_bytes()).digest())
    python = ".".join(map(str, sys.version_info[:3]))
    assert values["key"] == f"mlgate-wheels-v2-Linux-X64-py{python}-core-{digest.hexdigest()[:32]}"
    assert values["lock"] == str(ROOT / "locks" / "core.txt")
    assert values["wheelhouse"] == str(tmp_path / f"mlgate-wheels-core-{digest.hexdigest()[:16]}")


@pytest.mark.parametrize(
    ("inputs", "profile"),
    [
        ({"ACTION_MLGATE_COMMAND": "verify"}, "core"),
        ({"ACTION_MLGATE_COMMAND": "seal"}, "core"),
        ({"ACTION_MLGATE_COMMAND": "seal", "MLGATE_MODEL": "models:/m/1"}, "azure"),
        (
            {"ACTION_MLGATE_COMMAND": "seal", "MLGATE_LEDGER": "https://acct.blob.core.windows.net/c/l"},
            "azure",
        ),
        ({"ACTION_MLGATE_COMMAND": "secrets"}, "azure"),
        ({"ACTION_MLGATE_COMMAND": "gate"}, "azure"),
        (
            {"ACTION_MLGATE_COMMAND": "audit verify", "MLGATE_FILE": "l.jsonl", "MLGATE_NO_ANCHORS": "true"},
            "core",
        ),
        ({"ACTION_MLGATE_COMMAND": "seal", "MLGATE_SIGN": "release.pem"}, "core"),
        ({"ACTION_MLGATE_COMMAND": "seal", "MLGATE_SIGN": "Azure-KeyVault://kv/keys/release"}, "azure"),
        ({"ACTION_MLGATE_COMMAND": "verify", "MLGATE_PUBLIC_KEY": "release.pub.pem"}, "core"),
        ({"ACTION_MLGATE_COMMAND": "verify", "MLGATE_PUBLIC_KEY": "a.pem\n azure-keyvault://kv/keys/k"}, "azure"),
        ({"ACTION_MLGATE_COMMAND": "seal", "MLGATE_LEDGER_KEY": "azure-keyvault://kv/keys/ledger"}, "azure"),
        (
            {"ACTION_MLGATE_COMMAND": "audit verify", "MLGATE_FILE": "l.jsonl", "MLGATE_NO_ANCHORS": "true",
             "MLGATE_PUBLIC_KEY": "azure-keyvault://kv/keys/ledger"},
            "azure",
        ),
        ({"ACTION_MLGATE_COMMAND": "verify", "MLGATE_EVIDENCE_KEY": "azure-keyvault://kv/keys/g"}, "azure"),
        ({"ACTION_MLGATE_COMMAND": "seal", "MLGATE_SIGN": "azure-keyvault://kv/keys/k", "ACTION_MLGATE_EXTRAS": "all"},
         "all"),
        ({"ACTION_MLGATE_COMMAND": "gate", "ACTION_MLGATE_EXTRAS": "s3"}, "s3"),
        ({"ACTION_MLGATE_COMMAND": "secrets", "ACTION_MLGATE_EXTRAS": "all"}, "all"),
    ],
)
def test_the_command_chooses_the_lock(inputs: dict[str, str], profile: str) -> None:
    setup_venv = load_setup_venv()
    assert setup_venv.profile(inputs) == profile  # type: ignore[attr-defined]


def test_an_unknown_extras_value_is_a_configuration_error(tmp_path: Path) -> None:
    code, _values, log = setup(
        "plan", action_env(tmp_path, ACTION_MLGATE_COMMAND="verify", ACTION_MLGATE_EXTRAS="x")
    )
    assert code == 2 and "input 'extras' is 'x'" in log, log


def test_the_key_changes_when_a_lock_changes(tmp_path: Path) -> None:
    setup_venv = load_setup_venv()
    copy = tmp_path / "locks"
    shutil.copytree(ROOT / "locks", copy)
    paths = [copy / "core.txt", copy / "tools.txt"]
    before = setup_venv.lock_digest(paths)  # type: ignore[attr-defined]
    (copy / "core.txt").write_text((copy / "core.txt").read_text() + "# changed\n")
    assert setup_venv.lock_digest(paths) != before  # type: ignore[attr-defined]


def run_in(python: str, code: str) -> str:
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_warm_install_uses_the_verified_wheels_in_a_new_private_environment(
    runner: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    temp, cold = runner
    code, warm, log = setup("install", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    assert code == 0, log
    assert warm["source"] == "cache" and "every restored wheel matches core.txt's hashes" in log
    assert "installed with uv (kept unpacked in the cache)" in log, log
    assert warm["venv"] != cold["venv"] and Path(warm["venv"]).parent.parent == temp
    assert oct(Path(warm["venv"]).parent.stat().st_mode & 0o777) == "0o700"
    prefix = run_in(warm["python"], "import sys; print(sys.prefix)")
    assert Path(prefix) == Path(warm["venv"]) and Path(prefix) != Path(sys.prefix)
    # core only: verify needs no Azure SDK, and pip itself is not in the environment
    found = run_in(
        warm["python"],
        "import importlib.util as u; print([u.find_spec(m) is None for m in ('azure', 'github', 'pip')])",
    )
    assert found == "[True, True, True]"
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(os.urandom(256))
    out = subprocess.run(
        [warm["python"], "-m", "mlgate", "seal", str(model)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["_type"] == "https://in-toto.io/Statement/v1"
    # a command that needs an extra names it (exit 2), not an internal error
    out = subprocess.run(
        [warm["python"], "-m", "mlgate", "secrets", "--vault", "kv", "--secrets", "a", "--platform", "local"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "'azure' extra" in out.stderr and "Traceback" not in out.stderr


def old_predictable_venv(temp: Path) -> Path:
    """Where the previous setup_venv.py put (and reused) the environment: derivable by any earlier step."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "README.md", "LICENSE", "src"):
        top = ROOT / name
        files = (
            sorted(p for p in top.rglob("*") if p.is_file())
            if top.is_dir()
            else [top]
            if top.is_file()
            else []
        )
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    seed = "\n".join([digest.hexdigest(), sys.executable, str(temp), platform.machine()])
    return temp / f"mlgate-action-{hashlib.sha256(seed.encode()).hexdigest()[:20]}"


def test_a_planted_environment_at_the_old_predictable_path_is_not_used(
    runner: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    temp, _cold = runner
    planted = old_predictable_venv(temp)
    marker = tmp_path / "pwned"
    (planted / "bin").mkdir(parents=True)
    fake = planted / "bin" / "python"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    fake.chmod(0o755)
    package = planted / "lib" / "python3" / "site-packages" / "mlgate"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "1.0.0"\nopen({str(marker)!r}, "w")\n')

    code, values, log = setup("install", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    assert code == 0, log
    assert not values["python"].startswith(str(planted)) and "reusing" not in log
    origin = run_in(values["python"], "import mlgate; print(mlgate.__file__)")
    assert origin.startswith(str(ROOT / "src")), origin
    assert not marker.exists(), "the planted environment ran"


def tamper(wheel: Path) -> None:
    """Rewrite one module of the wheel: a valid wheel whose bytes the lock does not list."""
    data = wheel.read_bytes()
    copy = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            body = source.read(item)
            if item.filename.endswith("/__init__.py") and b"PLANTED" not in body:
                body += b"\nPLANTED = True\n"
            target.writestr(item, body)
    copy.replace(wheel)
    assert wheel.read_bytes() != data


@pytest.mark.parametrize("poison", ["tampered wheel", "extra file", "symlink"])
def test_a_poisoned_wheelhouse_is_discarded_and_downloaded_again(
    runner: tuple[Path, dict[str, str]], poison: str
) -> None:
    temp, _cold = runner
    _code, plan, _log = setup("plan", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    wheelhouse = Path(plan["wheelhouse"])
    [requests] = wheelhouse.glob("requests-*.whl")
    if poison == "tampered wheel":
        tamper(requests)
        reason = f"{requests.name} matches no hash of the lock file"
    elif poison == "extra file":
        (wheelhouse / "sitecustomize.py").write_text("PLANTED = True\n")
        reason = "sitecustomize.py is not a wheel file"
    else:
        target = wheelhouse.parent / "elsewhere.whl"
        requests.replace(target)
        requests.symlink_to(target)
        reason = f"{requests.name} is not a wheel file"

    code, values, log = setup("install", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    assert code == 0, log
    assert values["source"] == "index" and f"not using the restored wheelhouse ({reason})" in log, log
    planted = run_in(values["python"], "import requests; print(hasattr(requests, 'PLANTED'))")
    assert planted == "False"
    # the refreshed wheelhouse (what the cache step saves) is clean again
    assert sorted(p.name for p in wheelhouse.iterdir() if not p.is_file() or p.is_symlink()) == []
    assert not (wheelhouse / "sitecustomize.py").exists()


def recorded_uv(wheel: Path) -> tuple[str, int]:
    """What the uv wheel's RECORD says its executable is (read here independently of the action)."""
    with zipfile.ZipFile(wheel) as archive:
        [record] = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        rows = [line.split(",") for line in archive.read(record).decode().splitlines()]
    [(digest, size)] = [(d, s) for name, d, s in rows if name.endswith(".data/scripts/uv")]
    return digest.removeprefix("sha256="), int(size)


def record_form(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_the_cold_install_keeps_uv_unpacked_next_to_its_wheel(runner: tuple[Path, dict[str, str]]) -> None:
    temp, _cold = runner
    _code, plan, _log = setup("plan", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    [wheel] = Path(plan["wheelhouse"]).glob("uv-*.whl")
    kept = wheel.with_name(wheel.name + ".uv")
    data = kept.read_bytes()
    assert (record_form(data), len(data)) == recorded_uv(wheel)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in (ROOT / "locks" / "tools.txt").read_text()


@pytest.mark.parametrize("poison", ["same size", "script", "orphan", "symlink"])
def test_a_tampered_unpacked_uv_in_the_cache_is_not_run(
    runner: tuple[Path, dict[str, str]], tmp_path: Path, poison: str
) -> None:
    temp, _cold = runner
    _code, plan, _log = setup("plan", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    wheelhouse = Path(plan["wheelhouse"])
    [wheel] = wheelhouse.glob("uv-*.whl")
    kept = wheel.with_name(wheel.name + ".uv")
    marker = tmp_path / "pwned"
    script = f"#!/bin/sh\ntouch {marker}\nexit 0\n".encode()
    original = kept.read_bytes()
    if poison == "same size":  # only the hash can tell: the RECORD's size still matches
        kept.write_bytes(script + original[len(script) :])
        reason = f"{kept.name} does not match the RECORD of {wheel.name}"
    elif poison == "script":
        kept.write_bytes(script)
        reason = f"{kept.name} does not match the RECORD of {wheel.name}"
    elif poison == "orphan":  # no wheel of that name: nothing to check it against
        kept = wheelhouse / "uv-0.0.0-py3-none-any.whl.uv"
        kept.write_bytes(script)
        reason = f"{kept.name} is not an executable unpacked from a wheel of the lock"
    else:
        target = tmp_path / "uv"
        target.write_bytes(script)
        kept.unlink()
        kept.symlink_to(target)
        reason = f"{kept.name} is not an executable unpacked from a wheel of the lock"
    os.chmod(kept, 0o700)

    code, values, log = setup("install", action_env(temp, ACTION_MLGATE_COMMAND="verify"))
    assert code == 0, log
    assert values["source"] == "index" and f"not using the restored wheelhouse ({reason})" in log, log
    assert values["installer"] == "uv" and "uv (unpacked from its wheel)" in log, log
    assert not marker.exists(), "the planted uv ran"
    assert run_in(values["python"], "import mlgate; print(mlgate.__version__)")
    # the refreshed wheelhouse keeps the genuine executable again, and nothing else
    refreshed = wheel.with_name(wheel.name + ".uv")
    assert not refreshed.is_symlink() and (record_form(refreshed.read_bytes()), refreshed.stat().st_size) == (
        recorded_uv(wheel)
    )
    assert sorted(p.name for p in wheelhouse.iterdir() if p.name.endswith(".uv")) == [refreshed.name]


def test_a_key_vault_key_with_extras_that_lack_the_azure_sdks_is_a_configuration_error(tmp_path: Path) -> None:
    code, _values, log = setup("plan", action_env(tmp_path, ACTION_MLGATE_COMMAND="seal", ACTION_MLGATE_EXTRAS="core",
                                                  MLGATE_SIGN="azure-keyvault://kv/keys/release"))
    assert code == 2, log
    assert "input 'sign' names a Key Vault key (azure-keyvault://...), which needs the Azure SDKs" in log
    assert "set 'extras' to auto, azure or all" in log
