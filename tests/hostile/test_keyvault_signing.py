"""A Key Vault that fails while mlgate signs: `seal --sign`, `seal --model --sign`, `gate --sign`, `--ledger-key`.

The loopback Key Vault (tests/integration/secrets/fake_azure.py, TLS, the real azure-keyvault-keys
and azure-identity SDKs) answers the key's public JWK, then fails the `sign` operation: 403, 429 for
ever, 500, 503, an answer that is not JSON, a signature of the wrong length, and an error whose text
echoes the caller's bearer token. Every case is exit 3; nothing is written or recorded as signed (no
manifest or bundle file, no signature tag on the model version, no evidence.dsse.json, no ledger
entry); and the output holds no traceback, no access token, no identity header and no canary secret.
A vault that fails only the ledger entry's `sign`, after the seal or the gate's alias is recorded, is
exit 3 naming what stands recorded, and re-running the step appends exactly one signed entry.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.conftest import Recordable
from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.secrets.fake_azure import FakeAzure, Hit, Raw
from tests.integration.secrets.helpers import managed_env

pytestmark = pytest.mark.integration

KEY = "release-signing"
CANARY = "mlflow-token-canary-3e9d41"  # a secret of the job: MLflow's token, in the environment


@dataclass(frozen=True)
class Fault:
    id: str
    status: int | None = None  # the fake's sign_status
    answer: Callable[[FakeAzure, Hit], Raw] | None = None  # a hostile answer to the sign request
    says: str = ""


def echo_token(azure: FakeAzure, hit: Hit) -> Raw:
    """An error whose message repeats the request's Authorization header (a misbehaving gateway)."""
    auth = hit.headers.get("authorization", "")
    body = {"error": {"code": "BadParameter", "message": f"request {auth} rejected: token {auth.split()[-1]} "
                      f"expired (identity header {azure.identity_header})"}}
    return Raw(400, json.dumps(body).encode())


def garbage(azure: FakeAzure, hit: Hit) -> Raw:
    return Raw(200, b'{"kid": "' + azure.vault_url.encode() + b'/keys/x/1", "value": ')


def short_signature(azure: FakeAzure, hit: Hit) -> Raw:
    version = azure.keys[KEY].versions[-1][0]
    return Raw(200, json.dumps({"kid": f"{azure.vault_url}/keys/{KEY}/{version}", "value": "AAAA"}).encode())


FAULTS = [
    Fault("403", status=403, says="may not sign with Key Vault key"),
    Fault("429-forever", status=429, says="kept throttling the request to sign with"),
    Fault("500", status=500, says="answered HTTP 500 to sign with"),
    Fault("503", status=503, says="answered HTTP 503 to sign with"),
    Fault("garbage-json", answer=garbage, says="not valid JSON"),
    Fault("short-signature", answer=short_signature, says="not the 64 of an ES256 R||S signature"),
    Fault("error-echoes-the-bearer-token", answer=echo_token, says="request Bearer *** rejected: token *** expired"),
]


@pytest.fixture(autouse=True)
def _fresh_key_challenges(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.keyvault.keys._shared import http_challenge_cache

    http_challenge_cache.clear()
    monkeypatch.setattr("mlgate.secrets.keyvault.RETRIES", 1)


@pytest.fixture
def vault(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> str:
    """The key's azure-keyvault:// spec; mlgate reaches the vault with the fake's managed identity."""
    for name, value in {**managed_env(azure), "MLFLOW_TRACKING_TOKEN": CANARY}.items():
        monkeypatch.setenv(name, value)
    azure.add_key(KEY)
    azure.retry_after = "0"
    return f"azure-keyvault://{azure.vault_url.removeprefix('https://')}/keys/{KEY}"


def inject(azure: FakeAzure, fault: Fault) -> None:
    azure.sign_status = fault.status
    if fault.answer is not None:
        answer = fault.answer
        azure.hostile = lambda hit: answer(azure, hit) if hit.path.endswith("/sign") else None


def secrets_of(azure: FakeAzure) -> tuple[str, ...]:
    private = azure.keys[KEY].versions[-1][1].private_numbers().private_value
    return (CANARY, azure.identity_header, *azure.access_tokens, str(private), f"{private:x}")


def clean(output: str, azure: FakeAzure, says: tuple[str, ...] = ()) -> None:
    """The harness's check, with the vault's own 500 text ("an internal error") told apart from mlgate's."""
    check_output(output.replace("encountered an internal error", "encountered a failure"),
                 canaries=secrets_of(azure), says=says)


def signed(azure: FakeAzure) -> bool:
    return any(h.server == "vault" and h.path.endswith("/sign") for h in azure.hits)


def model_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.bin").write_bytes(os.urandom(4096))
    return root


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_seal_of_a_directory(fault: Fault, azure: FakeAzure, vault: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_dir(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    inject(azure, fault)
    code, output = run_in_process(["seal", str(model), "-o", str(out / "manifest.json"), "--sign", vault],
                                  capsys, monkeypatch)
    assert signed(azure), f"{fault.id}: the sign request was never made"
    assert code == 3, f"{fault.id}: exit {code}:\n{output}"
    clean(output, azure, (fault.says,) if fault.says else ())
    assert "nothing was signed" in output or "Key Vault" in output, output
    assert list(out.iterdir()) == [], "a manifest or bundle was written although signing failed"


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in ("403", "503", "error-echoes-the-bearer-token")],
                         ids=lambda f: f.id)
def test_seal_of_a_model_version_records_no_signature(fault: Fault, azure: FakeAzure, vault: str,
                                                      mlflow_server: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.lineage.mlflow import MlflowClient
    from tests.integration.lineage.conftest import build_model

    built = build_model(mlflow_server, tmp_path / "work", f"kv-sign-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    inject(azure, fault)
    ledger = tmp_path / "ledger.jsonl"
    code, output = run_in_process(["seal", "--model", built.ref, "--sign", vault, "--platform", "local",
                                   "--ledger", f"file:{ledger}"], capsys, monkeypatch)
    assert code == 3, output
    clean(output, azure)
    tags = MlflowClient.from_env(mlflow_server).resolve(built.ref).tags
    assert not any(name.startswith("mlgate.") for name in tags), tags  # neither sealed nor signed
    assert not ledger.exists() or ledger.read_bytes() == b""


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in ("429-forever", "error-echoes-the-bearer-token")],
                         ids=lambda f: f.id)
def test_gate_writes_no_evidence_signature(fault: Fault, azure: FakeAzure, vault: str, mlflow_server: str,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.lineage.conftest import build_model, write_tree

    built = build_model(mlflow_server, tmp_path / "work", f"kv-gate-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code, output = run_in_process(["seal", "--model", built.ref, "--platform", "local"], capsys, monkeypatch)
    assert code == 0, output
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefault_risk: low\nrisk_classes:\n  low: {}\n")
    evidence = tmp_path / "evidence"
    inject(azure, fault)
    code, output = run_in_process(["gate", built.ref, "--policy", str(policy), "--evidence-dir", str(evidence),
                                   "--artifacts", str(write_tree(tmp_path / "art", built.files)), "--sign", vault,
                                   "--platform", "local"], capsys, monkeypatch)
    assert code == 3, output
    clean(output, azure)
    assert not (evidence / "evidence.dsse.json").exists()


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in ("403", "500", "error-echoes-the-bearer-token")],
                         ids=lambda f: f.id)
def test_ledger_key_appends_nothing(fault: Fault, azure: FakeAzure, vault: str, recordable: Recordable,
                                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.governed.helpers import version_tags

    before = version_tags(os.environ["MLFLOW_TRACKING_URI"], recordable.name, recordable.version)
    inject(azure, fault)
    code, output = run_in_process(recordable.argv("local", "--approver", "risk-officer", "--comment", "ok",
                                                  "--ledger-key", vault), capsys, monkeypatch)
    assert code == 3, output
    clean(output, azure)
    ledger = Path(recordable.ledger.removeprefix("file:"))
    assert not ledger.exists() or ledger.read_bytes() == b""
    assert version_tags(os.environ["MLFLOW_TRACKING_URI"], recordable.name, recordable.version) == before


def test_process_output_with_debug_logs_never_shows_the_token(azure: FakeAzure, vault: str, tmp_path: Path,
                                                              tls_files: tuple[Path, Path]) -> None:
    """A real `mlgate -vv seal --sign` process (the SDKs' debug logs included) against the echoing vault."""
    model = model_dir(tmp_path / "model")
    inject(azure, Fault("echo", answer=echo_token))
    env = {**managed_env(azure), "MLFLOW_TRACKING_TOKEN": CANARY, "REQUESTS_CA_BUNDLE": str(tls_files[0]),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code, output = run_process(["-vv", "seal", str(model), "-o", str(tmp_path / "manifest.json"), "--sign", vault],
                               env=env, timeout=120)
    assert code == 3, output
    assert any(h.path.endswith("/sign") and h.headers.get("authorization") for h in azure.hits)
    clean(output, azure)
    assert not (tmp_path / "manifest.json").exists() and not (tmp_path / "model.sig").exists()


def _entries(ledger: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in ledger.read_bytes().splitlines()] if ledger.exists() else []


def test_a_ledger_key_failing_after_the_seal_says_what_is_recorded_and_a_re_run_finishes(
        azure: FakeAzure, vault: str, mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger key loads (so the seal goes ahead) but Key Vault fails the entry's `sign`: exit 3 naming
    the recorded seal and the missing entry; once the vault answers, the same step appends exactly one
    signed entry and keeps the seal."""
    from mlgate import tags
    from mlgate.lineage.mlflow import MlflowClient
    from tests.integration.lineage.conftest import build_model

    built = build_model(mlflow_server, tmp_path / "work", f"kv-ledger-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    ledger = tmp_path / "ledger.jsonl"
    argv = ["seal", "--model", built.ref, "--platform", "local", "--ledger", f"file:{ledger}", "--ledger-key", vault]
    inject(azure, Fault("503", status=503))
    code, output = run_in_process(argv, capsys, monkeypatch)
    assert code == 3, output
    clean(output, azure)
    assert f"{built.ref} is sealed" in output, output
    assert "`sealed` ledger entry was not appended" in output and "e-running this step completes it" in output, output
    assert _entries(ledger) == []
    sealed = MlflowClient.from_env(mlflow_server).resolve(built.ref).tags
    assert sealed.get(tags.MANIFEST_SHA256), sealed

    inject(azure, Fault("none"))
    code, output = run_in_process(argv, capsys, monkeypatch)
    assert code == 0, output
    entries = _entries(ledger)
    assert [e["event"] for e in entries] == ["sealed"], entries
    assert MlflowClient.from_env(mlflow_server).resolve(built.ref).tags.get(tags.MANIFEST_SHA256) == \
        sealed[tags.MANIFEST_SHA256]
    code, output = run_in_process(["audit", "verify", "--ledger", f"file:{ledger}", "--public-key", vault],
                                  capsys, monkeypatch)
    assert code == 0, output


def test_gate_loads_its_ledger_key_before_any_work_and_a_failed_entry_names_the_moved_alias(
        azure: FakeAzure, vault: str, mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.lineage.mlflow import MlflowClient, NotFound
    from tests.integration.lineage.conftest import build_model

    built = build_model(mlflow_server, tmp_path / "work", f"kv-gate-ledger-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code, output = run_in_process(["seal", "--model", built.ref, "--platform", "local"], capsys, monkeypatch)
    assert code == 0, output
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefault_risk: low\nrisk_classes:\n  low: {}\n")
    ledger = tmp_path / "ledger.jsonl"

    def gate(evidence: Path, key: str) -> tuple[int, str]:
        return run_in_process(["gate", built.ref, "--policy", str(policy), "--evidence-dir", str(evidence),
                               "--set-alias", "candidate", "--ledger", f"file:{ledger}", "--ledger-key", key,
                               "--platform", "local"], capsys, monkeypatch)

    missing = f"azure-keyvault://{azure.vault_url.removeprefix('https://')}/keys/no-such-key"
    code, output = gate(tmp_path / "never", missing)
    assert code in (2, 3), output
    assert not (tmp_path / "never").exists(), "the gate wrote evidence before its ledger key was loaded"
    with pytest.raises(NotFound):
        MlflowClient.from_env(mlflow_server).get_model_version_by_alias(built.name, "candidate")

    inject(azure, Fault("500", status=500))
    code, output = gate(tmp_path / "evidence", vault)
    assert code == 3, output
    clean(output, azure)
    assert f"models:/{built.name}@candidate points at version {built.version}" in output, output
    assert "`gated` ledger entry was not appended" in output, output
    assert _entries(ledger) == []

    inject(azure, Fault("none"))
    code, output = gate(tmp_path / "evidence", vault)
    assert code == 0, output
    assert [e["event"] for e in _entries(ledger)] == ["gated"]
