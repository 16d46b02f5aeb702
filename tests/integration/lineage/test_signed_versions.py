"""Signed seals on MLflow model versions, against the real MLflow server: record, verify, gate, tamper."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.lineage.mlflow import MlflowClient
from tests.integration.secrets.conftest import azure, ca_bundle, fake_azure_server  # noqa: F401 (fixtures)
from tests.integration.secrets.fake_azure import FakeAzure
from tests.integration.signing.conftest import KeyPair, make_pair

from .conftest import Built, build_model, write_tree

pytestmark = pytest.mark.integration

POLICY = "version: 1\ndefault_risk: low\nrisk_classes:\n  low: {}\n"


@pytest.fixture
def version(tracking: str, tmp_path: Path) -> Built:
    return build_model(tracking, tmp_path / "work", f"signed-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def pair(tmp_path: Path) -> KeyPair:
    return make_pair(tmp_path / "keys", "release")


def policy(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy" / "policy.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def gate(ref: str, policy_path: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, object]]:
    folder = tmp_path / f"evidence-{uuid.uuid4().hex[:6]}"
    code = main(["gate", ref, "--policy", str(policy_path), "--evidence-dir", str(folder), "--platform", "local",
                 *extra])
    return code, json.loads((folder / "evidence.json").read_text())


def rule(evidence: dict[str, object], rule_id: str) -> dict[str, object]:
    (found,) = [r for r in evidence["rules"] if r["id"] == rule_id]  # type: ignore[attr-defined]
    return found  # type: ignore[no-any-return]


def test_signed_seal_is_recorded_verified_and_gated(version: Built, pair: KeyPair, tmp_path: Path,
                                                    tracking: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seal", "--model", version.ref, "--sign", str(pair.private), "--platform", "local"]) == 0
    assert "\nsigned by PEM key" in capsys.readouterr().out
    tags = MlflowClient.from_env(tracking).resolve(version.ref).tags
    assert tags["mlgate.signature.uri"].endswith(f"mlgate-manifests/{tags['mlgate.manifest.sha256']}.sig")
    assert len(tags["mlgate.signature.sha256"]) == 64 and len(tags["mlgate.signature.key_hint"]) == 64
    art = write_tree(tmp_path / "art", version.files)
    assert main(["verify", str(art), "--model", version.ref, "--public-key", str(pair.public),
                 "--platform", "local"]) == 0
    assert f"signed by PEM public key {pair.public}" in capsys.readouterr().out
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path, "--public-key", str(pair.public))
    assert code == 0 and rule(evidence, "integrity.signed")["passed"] is True
    other = make_pair(tmp_path / "keys", "other")
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path, "--public-key", str(other.public))
    signed = rule(evidence, "integrity.signed")
    assert code == 1 and signed["passed"] is False
    assert "signed by the key with hint" in str(signed["message"]) and "expected the trusted" in str(signed["message"])


def test_policy_names_the_trusted_keys(version: Built, pair: KeyPair, tmp_path: Path) -> None:
    path = policy(tmp_path, POLICY.replace("low: {}", "low:\n    signing: {trusted_keys: [../keys/release.pub.pem]}"))
    code, evidence = gate(version.ref, path, tmp_path)
    assert code == 1  # unsealed and unsigned
    assert main(["seal", "--model", version.ref, "--platform", "local"]) == 0
    code, evidence = gate(version.ref, path, tmp_path)
    signed = rule(evidence, "integrity.signed")
    assert code == 1 and "found none recorded (no mlgate.signature.sha256 tag)" in str(signed["message"])
    assert main(["seal", "--model", version.ref, "--sign", str(pair.private), "--platform", "local"]) == 0
    code, evidence = gate(version.ref, path, tmp_path)
    assert code == 0, evidence["rules"]
    assert rule(evidence, "integrity.signed")["expected"] == f"the seal is signed by PEM public key " \
        f"{tmp_path / 'policy' / '..' / 'keys' / 'release.pub.pem'}"


def test_replaced_signature_and_unsigned_reseal(version: Built, pair: KeyPair, tmp_path: Path, tracking: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mlgate.lineage import artifacts

    assert main(["seal", "--model", version.ref, "--sign", str(pair.private), "--platform", "local"]) == 0
    client = MlflowClient.from_env(tracking)
    mv = client.resolve(version.ref)
    where = artifacts.locate(client, mv)
    other = make_pair(tmp_path / "keys", "attacker")
    from mlgate.signing.bundle import make_bundle
    from mlgate.signing.keys import load_signer

    manifest = artifacts.load_manifest(client, mv)
    (where.manifest_store or where.store).put(f"mlgate-manifests/{manifest.digest}.sig",
                                              make_bundle(manifest.canonical(), load_signer(str(other.private))))
    art = write_tree(tmp_path / "art", version.files)
    assert main(["verify", str(art), "--model", version.ref, "--public-key", str(pair.public),
                 "--platform", "local"]) == 1
    assert "the stored signature does not match its tag" in capsys.readouterr().err
    # the files change and are re-sealed without a key: the old signature tags go away
    client.set_model_version_tag(mv.name, mv.version, "mlgate.signature.sha256", "0" * 64)
    assert main(["seal", "--model", version.ref, "--force", "--platform", "local",
                 "--serialization", "shards", "--shard-size", "1MiB"]) == 0
    tags = client.resolve(version.ref).tags
    assert not any(key.startswith("mlgate.signature.") for key in tags)
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path, "--public-key", str(pair.public))
    assert code == 1 and "found none recorded" in str(rule(evidence, "integrity.signed")["message"])
    assert rule(evidence, "integrity.matches")["passed"] is True  # store mode re-hashed in shards


def test_earlier_layout_seal_stays_verifiable_and_upgrades(version: Built, tmp_path: Path, tracking: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A version sealed by an earlier mlgate (one subject per file) still gates; seal --model upgrades it."""
    from mlgate.integrity.manifest import Manifest
    from mlgate.lineage import artifacts

    client = MlflowClient.from_env(tracking)
    mv = client.resolve(version.ref)
    current, where = artifacts.seal_from_store(client, mv)
    legacy = Manifest.build(dict(current.subjects), current.total_bytes or 0, follow_internal_symlinks=False)
    uri = artifacts.store_manifest(client, where, legacy)
    client.set_model_version_tag(mv.name, mv.version, artifacts.TAG_URI, uri)
    client.set_model_version_tag(mv.name, mv.version, artifacts.TAG_SHA256, legacy.digest)
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path)
    assert code == 0, evidence["rules"]
    art = write_tree(tmp_path / "art", version.files)
    assert main(["verify", str(art), "--model", version.ref, "--platform", "local"]) == 0
    capsys.readouterr()
    assert main(["seal", "--model", version.ref, "--platform", "local"]) == 0
    assert "sealed in mlgate's earlier manifest layout with these very files" in capsys.readouterr().out
    tags = client.resolve(version.ref).tags
    assert tags[artifacts.TAG_SHA256] == current.digest and legacy.digest in tags[artifacts.TAG_RESEALED]


def test_failure_to_sign_records_nothing_on_the_version(version: Built, tracking: str, azure: FakeAzure,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Key Vault refuses the sign operation after the files were hashed: no manifest, tag or signature is recorded."""
    from tests.integration.secrets.helpers import apply, managed_env

    apply(monkeypatch, managed_env(azure))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    azure.add_key("release-signing")
    azure.sign_status = 403
    key = f"azure-keyvault://{azure.vault_url.removeprefix('https://')}/keys/release-signing"
    assert main(["seal", "--model", version.ref, "--sign", key, "--platform", "local"]) == 3
    assert "may not sign with Key Vault key" in capsys.readouterr().err
    tags = MlflowClient.from_env(tracking).resolve(version.ref).tags
    assert not any(name.startswith("mlgate.") for name in tags)


def test_seal_signs_its_ledger_entry_with_the_ledger_key(version: Built, pair: KeyPair, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ledger = f"file:{tmp_path / 'ledger.jsonl'}"
    assert main(["seal", "--model", version.ref, "--platform", "local", "--ledger", ledger,
                 "--ledger-key", str(pair.private)]) == 0
    entry = json.loads((tmp_path / "ledger.jsonl").read_text().splitlines()[0])
    assert entry["event"] == "sealed" and set(entry["sig"]) == {"keyid", "sig"}
    capsys.readouterr()
    assert main(["audit", "verify", "--no-anchors", "--ledger", ledger, "--public-key", str(pair.public)]) == 0
    assert "1 signed entries from seq 1" in capsys.readouterr().out
    other = make_pair(tmp_path / "keys", "other")
    assert main(["audit", "verify", "--no-anchors", "--ledger", ledger, "--public-key", str(other.public)]) == 1


def test_seal_with_an_unusable_ledger_key_records_nothing(version: Built, tmp_path: Path, tracking: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = make_pair(tmp_path / "keys", "p384", ec.SECP384R1())
    for key in (str(p384.private), str(tmp_path / "no-such-key.pem")):
        assert main(["seal", "--model", version.ref, "--platform", "local", "--ledger",
                     f"file:{tmp_path / 'ledger.jsonl'}", "--ledger-key", key]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("no-such-key.pem" in err or "expected an ECDSA P-256" in err), err
    tags = MlflowClient.from_env(tracking).resolve(version.ref).tags
    assert not any(name.startswith("mlgate.") for name in tags), tags  # the key was refused before sealing
    assert not (tmp_path / "ledger.jsonl").exists()


def test_gate_reads_its_trusted_keys_from_the_environment(version: Built, pair: KeyPair, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """MLGATE_PUBLIC_KEY (the action's public-key input) is gate's --public-key: one key per line."""
    assert main(["seal", "--model", version.ref, "--sign", str(pair.private), "--platform", "local"]) == 0
    other = make_pair(tmp_path / "keys", "other")
    monkeypatch.setenv("MLGATE_PUBLIC_KEY", str(other.public))
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path)
    assert code == 1 and rule(evidence, "integrity.signed")["passed"] is False  # not silently ignored
    monkeypatch.setenv("MLGATE_PUBLIC_KEY", f"{other.public}\n{pair.public}\n")
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path)
    assert code == 0 and rule(evidence, "integrity.signed")["passed"] is True
    # a key on the command line replaces the environment's instead of adding to them
    code, evidence = gate(version.ref, policy(tmp_path), tmp_path, "--public-key", str(other.public))
    assert code == 1
