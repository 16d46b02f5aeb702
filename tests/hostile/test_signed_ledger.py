"""Hostile signed ledgers and keys, offline: `mlgate audit verify --public-key` on every damage.

Each case builds an honest three-entry ledger signed with a P-256 key, damages it (or the key
given), runs `mlgate audit verify` in-process and asserts the exact exit code, the fragment that
says what happened and a clean output (no traceback, no "internal error", no key material).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.integrity.manifest import canonical_json
from mlgate.ledger import Draft, open_ledger
from mlgate.ledger.base import GENESIS, entry_hash

from .harness import Case, assert_case, run_in_process

CANARY = "CANARY-KEY-MATERIAL-91c2"


def write_key(directory: Path, name: str, curve: ec.EllipticCurve) -> tuple[Path, Path]:
    key = ec.generate_private_key(curve)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def rechained(path: Path, change: Callable[[list[dict[str, object]]], None]) -> None:
    entries = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    change(entries)
    out, prev = [], GENESIS
    for entry in entries:
        entry = {k: v for k, v in entry.items() if k != "hash"}
        entry["prev"] = prev
        entry["hash"] = prev = entry_hash(entry)
        out.append(canonical_json(entry) + b"\n")
    path.write_bytes(b"".join(out))


def sig_of(index: int, value: object) -> Callable[[list[dict[str, object]]], None]:
    def change(entries: list[dict[str, object]]) -> None:
        if value is None:
            entries[index].pop("sig")
        else:
            entries[index]["sig"] = value
    return change


def truncate_sig(entries: list[dict[str, object]], replacement: str | None = None) -> None:
    """The last entry's signature cut short (or replaced), its keyid left as it was."""
    sig = dict(entries[-1]["sig"])  # type: ignore[call-overload]
    sig["sig"] = sig["sig"][:20] if replacement is None else replacement
    entries[-1]["sig"] = sig


DAMAGE: dict[str, tuple[Callable[[list[dict[str, object]]], None], int, tuple[str, ...]]] = {
    "sig-removed-in-the-middle": (sig_of(1, None), 1, ("line 2 (seq 2): not signed", "signing began at seq 1")),
    "sig-an-array": (sig_of(2, ["keyid", "sig"]), 1, ("line 3 (seq 3): field sig: expected an object",)),
    "sig-extra-member": (sig_of(0, {"keyid": "a", "sig": "b", "cert": "c"}), 1, ("exactly the strings keyid and sig",)),
    "sig-keyid-another-key": (sig_of(2, {"keyid": "00" * 32, "sig": "AAAA"}), 1,
                              ("signed by the key with hint " + "00" * 32,)),
    "sig-truncated": (truncate_sig, 1, ("line 3 (seq 3)", "does not verify")),
    "sig-not-base64": (lambda entries: truncate_sig(entries, "not base64!"), 1,
                       ("line 3 (seq 3): its signature is not base64",)),
}


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    private, public = write_key(tmp_path, "key", ec.SECP256R1())
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(f"file:{path}", sign=str(private))
    for i in (1, 2, 3):
        ledger.append(Draft(event="approved", model=f"models:/fraud/{i}", stage="production", actor="ci",
                            approvers=[{"name": "Ana", "comment": f"ok {i}", "source": "local"}], key=f"k{i}"))
    return path, private, public


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damaged_signatures(name: str, signed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, public = signed
    change, code, says = DAMAGE[name]
    rechained(path, change)
    case = Case(name, ("audit", "verify", "--no-anchors", "--ledger", f"file:{path}", "--public-key", str(public)),
                code, says=says)
    assert_case(case, *run_in_process(case.argv, capsys, monkeypatch))


def test_hostile_keys_are_usage_errors(signed: tuple[Path, Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, private, _ = signed
    p384_private, p384_public = write_key(tmp_path, "p384", ec.SECP384R1())
    planted = tmp_path / "planted.pem"
    planted.write_text(f"-----BEGIN PUBLIC KEY-----\n{CANARY}\n-----END PUBLIC KEY-----\n")
    verify = ("audit", "verify", "--no-anchors", "--ledger", f"file:{path}")
    cases = [
        Case("p384-public-key", (*verify, "--public-key", str(p384_public)), 2, says=("expected an ECDSA P-256",)),
        Case("private-key-as-public", (*verify, "--public-key", str(private)), 2, says=("holds a private key",)),
        Case("garbage-pem", (*verify, "--public-key", str(planted)), 2, canaries=(CANARY,)),
        Case("missing-key-file", (*verify, "--public-key", str(tmp_path / "nope.pem")), 2),
        Case("unsigned-until-negative", (*verify, "--unsigned-until", "-1"), 2),
        Case("p384-ledger-key", ("record", "m/1", "--platform", "local", "--ledger", f"file:{path}",
                                 "--ledger-key", str(p384_private), "--approver", "a", "--comment", "c"), 2,
             says=("expected an ECDSA P-256",)),
        Case("env-unsigned-until-garbage", verify, 2, env={"MLGATE_UNSIGNED_UNTIL": "lots"},  # last: env stays set
             says=("MLGATE_UNSIGNED_UNTIL",)),
    ]
    secret_body = "".join(private.read_text().splitlines()[1:-1])[8:48]
    for case in cases:
        code, output = run_in_process(case.argv, capsys, monkeypatch, env=case.env)
        assert_case(case, code, output)
        assert secret_body not in output
