"""Signed evidence: the statement's shape, and every hostile envelope `record` must refuse naming expected vs found."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlgate.errors import EXIT_REFUSED
from mlgate.evidence import attestation
from mlgate.evidence.pack import DIGEST_KEY, Evidence, digest
from mlgate.governed.evidence import check_signed, signature_path
from mlgate.integrity.manifest import canonical_json
from mlgate.signing import dsse
from mlgate.signing.keys import SignatureInvalid, load_public_key, load_signer
from tests.unit.ledger.test_signed_ledger import keypair

SEAL = "ab" * 32


def evidence(**changes: Any) -> Evidence:
    doc: dict[str, Any] = {
        "schema_version": "1", "kind": "mlgate.evidence", "generated_at": "2026-01-01T00:00:00+00:00",
        "model": {"ref": "models:/churn/3", "name": "churn", "version": "3", "alias": None},
        "stage": "production", "risk": {"class": "high", "source": "policy default_risk"},
        "policy": {"source": "policy.yaml", "sha256": "cd" * 32},
        "manifest": {"sha256": SEAL},
        "requirements": {"approvals": {"min_approvers": 1, "approver_not_author": True,
                                       "approver_not_requester": True}},
        "decision": {"passed": True, "verdict": "passed", "failed_rules": [], "rules_total": 1},
        "rules": [],
        **changes,
    }
    doc[DIGEST_KEY] = digest(doc)
    return Evidence.from_document(doc)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keypair(tmp_path)


def payload(envelope: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    return value


def test_statement_shape(keys: tuple[Path, Path]) -> None:
    pack = evidence()
    signer = load_signer(str(keys[0]))
    envelope = attestation.sign(pack, signer)
    data = json.loads(envelope)
    assert data["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in data["signatures"]] == [signer.hint]
    statement = payload(envelope)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://mlgate.dev/evidence/v1"
    assert statement["subject"] == [
        {"name": "models:/churn/3", "digest": {"sha256": SEAL}},
        {"name": "evidence.json", "digest": {"sha256": hashlib.sha256(pack.to_json()).hexdigest()}},
    ]
    assert statement["predicate"] == dict(pack.document)
    attestation.verify(envelope, pack, load_public_key(str(keys[1])), source="e.dsse.json", evidence_path="e.json")


def test_an_unsealed_version_has_only_the_evidence_subject(keys: tuple[Path, Path]) -> None:
    pack = evidence(manifest={"sha256": None})
    statement = payload(attestation.sign(pack, load_signer(str(keys[0]))))
    assert [s["name"] for s in statement["subject"]] == ["evidence.json"]


def resign(statement: dict[str, Any], key: Path, payload_type: str = dsse.PAYLOAD_TYPE_INTOTO) -> bytes:
    envelope = dsse.sign_envelope(canonical_json(statement), load_signer(str(key)), payload_type)
    return json.dumps(envelope).encode()


def hostile_cases(keys: tuple[Path, Path], tmp: Path) -> dict[str, tuple[bytes, str]]:
    pack = evidence()
    good = attestation.sign(pack, load_signer(str(keys[0])))
    statement = payload(good)
    other, _ = keypair(tmp, "other")
    altered = evidence(stage="production", policy={"source": "lax.yaml", "sha256": "00" * 32})
    return {
        "truncated": (good[: len(good) // 2], "e.dsse.json"),
        "not an object": (b"[1, 2]", "e.dsse.json"),
        "wrong payload type": (resign(statement, keys[0], "application/json"), "payloadType"),
        "another key": (attestation.sign(pack, load_signer(str(other))), "does not verify"),
        "another predicate type": (resign({**statement, "predicateType": "https://slsa.dev/provenance/v1"},
                                          keys[0]), "expected 'https://mlgate.dev/evidence/v1'"),
        "not a statement": (resign({**statement, "_type": "x"}, keys[0]), "_type"),
        "signed other evidence": (attestation.sign(altered, load_signer(str(keys[0]))),
                                  f"signs evidence sha256 {altered.sha256}, e.json is sha256 {pack.sha256}"),
        "payload not JSON": (json.dumps(dsse.sign_envelope(b"{not json", load_signer(str(keys[0])))).encode(),
                             "payload"),
        "signature swapped": (json.dumps({**json.loads(good), "payload": base64.b64encode(
            canonical_json({**statement, "predicate": {}})).decode()}).encode(), "does not verify"),
    }


@pytest.mark.parametrize("case", ["truncated", "not an object", "wrong payload type", "another key",
                                  "another predicate type", "not a statement", "signed other evidence",
                                  "payload not JSON", "signature swapped"])
def test_hostile_envelopes_are_refused(case: str, keys: tuple[Path, Path], tmp_path: Path) -> None:
    data, named = hostile_cases(keys, tmp_path)[case]
    with pytest.raises(SignatureInvalid) as caught:
        attestation.verify(data, evidence(), load_public_key(str(keys[1])), source="e.dsse.json",
                           evidence_path="e.json")
    assert caught.value.exit_code == EXIT_REFUSED
    assert named in caught.value.message


def test_evidence_altered_after_signing_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    signed = evidence()
    envelope = tmp_path / "evidence.dsse.json"
    envelope.write_bytes(attestation.sign(signed, load_signer(str(keys[0]))))
    tampered = evidence(decision={"passed": True, "verdict": "passed", "failed_rules": [], "rules_total": 9})
    with pytest.raises(SignatureInvalid, match="is not the evidence that was signed"):
        check_signed(tampered, path="evidence.json", signature=str(envelope), key=load_public_key(str(keys[1])))
    check_signed(signed, path="evidence.json", signature=str(envelope), key=load_public_key(str(keys[1])))


def test_a_missing_signature_names_the_key_expected(keys: tuple[Path, Path], tmp_path: Path) -> None:
    key = load_public_key(str(keys[1]))
    where = signature_path(str(tmp_path / "ev" / "evidence.json"), None)
    assert where == str(tmp_path / "ev" / "evidence.dsse.json")
    with pytest.raises(SignatureInvalid) as caught:
        check_signed(evidence(), path="evidence.json", signature=where, key=key)
    assert f"signed by PEM public key {keys[1]} (hint {key.hint}), found no signature at {where}" \
        in caught.value.message
