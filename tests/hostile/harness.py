"""The hostile corpus's one assertion: the exact exit code, and nothing a user must never see.

Every case of ``tests/hostile`` runs mlgate and checks, besides its exit code, that the
output holds no traceback, no "internal error" (that is for real bugs, never for input) and
none of the canary values the case planted (secrets, passwords, SAS signatures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from mlgate.cli import main

FORBIDDEN = ("Traceback (most recent call last)", "internal error")


@dataclass(frozen=True)
class Case:
    """One hostile input: a name, the argv, the exit code it must get, and what must not leak."""

    id: str
    argv: tuple[str, ...]
    exit_code: int
    env: Mapping[str, str] = field(default_factory=dict)
    canaries: tuple[str, ...] = ()
    says: tuple[str, ...] = ()  # fragments the error must contain (what to fix)


def check_output(text: str, *, canaries: Sequence[str] = (), says: Sequence[str] = ()) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} in output:\n{text}"
    for canary in canaries:
        assert canary not in text, f"canary {canary!r} leaked:\n{text}"
    for fragment in says:
        assert fragment in text, f"{fragment!r} not in output:\n{text}"


def run_in_process(
    argv: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """``mlgate.cli.main(argv)`` with ``env`` applied; returns (exit code, stdout + stderr)."""
    for name in ("GITHUB_ACTIONS", "TF_BUILD", "MLGATE_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def run_process(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """``python -m mlgate argv`` in a child process; returns (exit code, stdout + stderr)."""
    full = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "TF_BUILD", "MLGATE_PLATFORM")}
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "mlgate", *argv], env=full, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def assert_case(case: Case, code: int, output: str) -> None:
    assert code == case.exit_code, f"{case.id}: exit {code}, expected {case.exit_code}:\n{output}"
    check_output(output, canaries=case.canaries, says=case.says)
