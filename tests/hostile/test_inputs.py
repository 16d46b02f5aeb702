"""Hostile input files, trees and settings, through the CLI in-process: exact exit codes, clean output.

Each case names a builder that lays out its files under a fresh directory; ``{tmp}`` in the argv
is that directory. Policies go through ``mlgate gate`` with an unreachable MLflow: the policy is
loaded and validated before MLflow is contacted, so a bad policy is exit 2 and a good one exit 3.
Every case must also finish in bounded time (the suite's per-case budget, see ``BUDGET``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlgate.errors import InvalidInputError
from mlgate.governed.evidence import read_pack
from tests.hostile.harness import Case, assert_case, run_in_process

BUDGET = 10.0  # seconds one case may take (each runs in milliseconds; a hang or a bomb takes minutes)
UNREACHABLE = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
D1 = "a" * 64

GOOD_POLICY = """\
version: 1
default_risk: high
risk_classes:
  high:
    lineage: [source_run]
    metrics:
      auc: ">= 0.80"
stages:
  production:
    metrics:
      auc: ">= 0.85"
"""

BOMB = "lol0: &l0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))


def _write(tmp: Path, name: str, data: str | bytes) -> None:
    path = tmp / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _policy(text: str | bytes) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp, "p.yaml", text)


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda tmp: os.mkfifo(tmp / name)


def _model(tmp: Path) -> Path:
    model = tmp / "model"
    model.mkdir(exist_ok=True)
    (model / "weights.bin").write_bytes(b"weights")
    return model


def _manifest_doc(subjects: object, **predicate: object) -> dict[str, object]:
    files = len(subjects) if isinstance(subjects, list) else 0
    return {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://mlgate.dev/manifest/v1",
            "subject": subjects, "predicate": {"files": files, "bytes": 7, "hashing": {"algorithm": "sha256"},
                                               **predicate}}


def _manifest(doc: object | bytes) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        _model(tmp)
        _write(tmp, "m.json", doc if isinstance(doc, bytes) else json.dumps(doc))
    return build


def _tree(kind: str) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        model = _model(tmp)
        if kind == "fifo":
            os.mkfifo(model / "pipe")
        elif kind == "symlink-out":
            (tmp / "secret.txt").write_text("outside")
            (model / "link").symlink_to(tmp / "secret.txt")
        elif kind == "symlink-loop":
            (model / "sub").mkdir()
            (model / "sub" / "loop").symlink_to("..", target_is_directory=True)
        elif kind == "self-loop":
            (model / "me").symlink_to("me")
        elif kind == "traversal":
            (model / "up").symlink_to("../../..", target_is_directory=True)
        elif kind == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(model / "sock"))
            sock.close()
    return build


def _nothing(tmp: Path) -> None:
    _model(tmp)


def _gate(**env: str) -> tuple[tuple[str, ...], dict[str, str]]:
    return ("gate", "models:/m/1", "--policy", "{tmp}/p.yaml"), {**UNREACHABLE, **env}


GATE, GATE_ENV = _gate()
VERIFY = ("verify", "{tmp}/model", "--manifest", "{tmp}/m.json")
SEAL = ("seal", "{tmp}/model", "-o", "{tmp}/out.json")


def _policy_case(id: str, text: str | bytes, *says: str, code: int = 2) -> tuple[Case, Callable[[Path], None]]:
    return Case(id, GATE, code, env=GATE_ENV, says=says), _policy(text)


def _bad_threshold(value: str) -> str:
    return GOOD_POLICY.replace('auc: ">= 0.80"', f"auc: {value}")


CASES: list[tuple[Case, Callable[[Path], None]]] = [
    # ---- policy files: not a regular file, wrong encoding, too big
    (Case("policy-fifo", GATE, 2, env=GATE_ENV, says=("p.yaml: not a regular file (a FIFO)",)), _fifo("p.yaml")),
    (Case("policy-dev-zero", ("gate", "models:/m/1", "--policy", "/dev/zero"), 2, env=GATE_ENV,
          says=("/dev/zero: not a regular file (a device)",)), _nothing),
    (Case("policy-directory", ("gate", "models:/m/1", "--policy", "{tmp}"), 2, env=GATE_ENV,
          says=("not a regular file (a directory)",)), _nothing),
    (Case("policy-missing", GATE, 2, env=GATE_ENV, says=("p.yaml: no such file",)), _nothing),
    _policy_case("policy-not-utf8", b"version: 1\nrisk_classes: {h\xff\xfe: {}}\n", "not UTF-8"),
    _policy_case("policy-huge", "version: 1\n" + "# padding\n" * 120_000, "more than the limit of 1 MiB"),
    _policy_case("policy-empty", "", "must be a YAML mapping"),
    _policy_case("policy-nul-byte", "version: 1\nrisk_classes: {high: {}}\n\x00x: 1\n",
                 "invalid YAML: line 3: the control character U+0000 is not allowed"),
    _policy_case("policy-two-documents", GOOD_POLICY + "---\nversion: 1\n", "but found another document"),
    _policy_case("policy-undefined-alias", GOOD_POLICY + "x: *nope\n", "found undefined alias"),
    _policy_case("policy-list", "- version: 1\n", "must be a YAML mapping"),
    # ---- YAML that explodes or recurses
    _policy_case("policy-alias-bomb", GOOD_POLICY + BOMB, "alias bomb"),
    _policy_case("policy-many-aliases", GOOD_POLICY + "a: &a x\nb: [" + ", ".join(["*a"] * 150) + "]\n",
                 "more than 100 aliases"),
    _policy_case("policy-recursive-anchor", "version: 1\nrisk_classes: &a\n  high: *a\n", "recursive anchor",
                 "line 3"),
    _policy_case("policy-recursive-list", "version: 1\nrisk_classes: {high: {}}\nx: &x [a, *x]\n",
                 "recursive anchor"),
    _policy_case("policy-5000-digit-int", "version: 1" + "0" * 5000 + "\nrisk_classes: {high: {}}\n",
                 "line 1, key version", "5001 characters"),
    _policy_case("policy-100-digit-int", "version: 1" + "0" * 99 + "\nrisk_classes: {high: {}}\n",
                 "line 1, key version", "integer of 100 digits"),
    _policy_case("policy-deep-flow", "version: 1\nrisk_classes:\n  high: " + "[" * 50_000 + "]" * 50_000 + "\n",
                 "line 3", "nested deeper than 32 levels"),
    _policy_case("policy-deep-maps", "version: 1\nrisk_classes:\n  high: " + "{a: " * 50_000 + "1"
                 + "}" * 50_000 + "\n", "nested deeper than 32 levels"),
    _policy_case("policy-huge-scalar", _bad_threshold('">= 0.' + "1" * 5000 + '"'),
                 "key risk_classes.high.metrics.auc", "characters (limit 1000)"),
    _policy_case("policy-python-tag", "version: !!python/object/apply:os.system [id]\nrisk_classes: {h: {}}\n",
                 "invalid YAML: line 1"),
    # ---- keys that are not strings
    _policy_case("policy-int-risk-class", "version: 1\nrisk_classes:\n  1: {}\n", "line 3, key risk_classes",
                 "key '1' is a number"),
    _policy_case("policy-bool-risk-class", "version: 1\nrisk_classes:\n  yes: {}\n", "key 'yes' is a boolean"),
    _policy_case("policy-null-risk-class", "version: 1\nrisk_classes:\n  ~: {}\n", "key '~' is null"),
    _policy_case("policy-list-key", "version: 1\nrisk_classes:\n  ? [a, b]\n  : {}\n", "a key is a list"),
    _policy_case("policy-int-metric-name", _bad_threshold('">= 0.8"\n      7: ">= 0.1"'), "key '7' is a number"),
    # ---- thresholds and numbers that are not finite numbers
    _policy_case("policy-threshold-1e999", _bad_threshold('">= 1e999"'), "line 7, key risk_classes.high.metrics.auc",
                 "overflows to infinity"),
    _policy_case("policy-threshold-5000-digits", _bad_threshold('">= 1' + "0" * 900 + '"'),
                 "key risk_classes.high.metrics.auc", "overflows to infinity"),
    _policy_case("policy-stage-threshold-1e999", GOOD_POLICY.replace('">= 0.85"', '"<= -1e400"'),
                 "key stages.production.metrics.auc", "overflows to infinity"),
    _policy_case("policy-threshold-inf", _bad_threshold(".inf"), "line 7, key risk_classes.high.metrics.auc",
                 "'.inf' is not a finite number"),
    _policy_case("policy-threshold-nan", _bad_threshold(".nan"), "'.nan' is not a finite number"),
    _policy_case("policy-threshold-float-overflow", _bad_threshold("1.0e+999"), "is not a finite number"),
    _policy_case("policy-threshold-true", _bad_threshold("true"), "key risk_classes.high.metrics.auc",
                 "True is not of type 'string'"),
    _policy_case("policy-threshold-word", _bad_threshold('"high"'), "'high' is not a threshold"),
    _policy_case("policy-threshold-number", _bad_threshold("0.8"), "0.8 is not of type 'string'"),
    _policy_case("policy-threshold-null", _bad_threshold("null"), "None is not of type 'string'"),
    _policy_case("policy-min-approvers-true", GOOD_POLICY.replace("    metrics:\n      auc: \">= 0.80\"",
                                                                  "    approvals: {min_approvers: true}", 1),
                 "key risk_classes.high.approvals.min_approvers", "True is not of type 'integer'"),
    _policy_case("policy-duty-rule-number", GOOD_POLICY.replace("    metrics:\n      auc: \">= 0.80\"",
                                                                "    approvals: {approver_not_author: 0}", 1),
                 "approvals.approver_not_author", "0 is not of type 'boolean'"),
    _policy_case("policy-version-true", GOOD_POLICY.replace("version: 1", "version: true"), "line 1, key version"),
    _policy_case("policy-duplicate-key", GOOD_POLICY + "default_risk: high\n", "key default_risk: duplicate key"),
    # ---- a good policy: validated, then MLflow (unreachable) is exit 3, never internal error
    (Case("policy-good-mlflow-unreachable", ("--deadline", "3", *GATE), 3, env=GATE_ENV), _policy(GOOD_POLICY)),
    # ---- manifest files
    (Case("manifest-fifo", VERIFY, 2, says=("m.json: not a regular file (a FIFO)",)),
     lambda tmp: (_model(tmp), os.mkfifo(tmp / "m.json"))),
    (Case("manifest-dev-zero", ("verify", "{tmp}/model", "--manifest", "/dev/zero"), 2, says=("a device",)),
     _nothing),
    (Case("manifest-directory", ("verify", "{tmp}/model", "--manifest", "{tmp}"), 2,
          says=("not a regular file (a directory)",)), _nothing),
    (Case("manifest-missing", VERIFY, 2, says=("m.json: no such file",)), _nothing),
    (Case("manifest-dotdot", VERIFY, 2, says=("'..' in path",)),
     _manifest(_manifest_doc([{"name": "../etc/passwd", "digest": {"sha256": D1}}]))),
    (Case("manifest-absolute", VERIFY, 2, says=("absolute path",)),
     _manifest(_manifest_doc([{"name": "/etc/passwd", "digest": {"sha256": D1}}]))),
    (Case("manifest-name-int", VERIFY, 2, says=("subject[0].name 7: name must be a non-empty string",)),
     _manifest(_manifest_doc([{"name": 7, "digest": {"sha256": D1}}]))),
    (Case("manifest-digest-list", VERIFY, 2, says=("digest.sha256 must be 64 lowercase hex",)),
     _manifest(_manifest_doc([{"name": "weights.bin", "digest": [D1]}]))),
    (Case("manifest-files-bool", VERIFY, 2, says=("predicate.files",)),
     _manifest(_manifest_doc([{"name": "weights.bin", "digest": {"sha256": D1}}], files=True))),
    (Case("manifest-bytes-string", VERIFY, 2, says=("predicate.bytes",)),
     _manifest(_manifest_doc([], bytes="7"))),
    (Case("manifest-subject-object", VERIFY, 2, says=("subject must be a list",)), _manifest(_manifest_doc({}))),
    (Case("manifest-5000-digit-int", VERIFY, 2, says=("integer of 5001 digits",)),
     _manifest(b'{"_type": 1' + b"0" * 5000 + b"}")),
    (Case("manifest-deep", VERIFY, 2, says=("nested too deeply",)), _manifest(b"[" * 100_000 + b"]" * 100_000)),
    (Case("manifest-nan", VERIFY, 2, says=("non-finite number NaN",)), _manifest(b'{"predicate": NaN}')),
    (Case("manifest-not-utf8", VERIFY, 2, says=("not UTF-8",)), _manifest(b'{"_type": "\xff"}')),
    (Case("manifest-list", VERIFY, 2, says=("top level must be a JSON object",)), _manifest(b"[]")),
    (Case("manifest-garbage", VERIFY, 2, says=("invalid JSON at line 1",)), _manifest(b"<html>")),
    # ---- hostile trees: refused (exit 1), whether sealed or verified
    (Case("tree-fifo-seal", SEAL, 1, says=("pipe: a FIFO is not a model file",)), _tree("fifo")),
    (Case("tree-fifo-verify", VERIFY, 1, says=("pipe: a FIFO is not a model file",)),
     lambda tmp: (_tree("fifo")(tmp), _write(tmp, "m.json", json.dumps(_manifest_doc([]))))),
    (Case("tree-socket", SEAL, 1, says=("sock: a socket is not a model file",)), _tree("socket")),
    (Case("tree-symlink-out", (*SEAL, "--follow-internal-symlinks"), 1, says=("link: symlink leaves the directory",)),
     _tree("symlink-out")),
    (Case("tree-symlink-loop", (*SEAL, "--follow-internal-symlinks"), 1, says=("sub/loop: symlink loop",)),
     _tree("symlink-loop")),
    (Case("tree-symlink-self-loop", (*SEAL, "--follow-internal-symlinks"), 1, says=("me: dangling symlink",)),
     _tree("self-loop")),
    (Case("tree-traversal", (*SEAL, "--follow-internal-symlinks"), 1, says=("up: symlink leaves the directory",)),
     _tree("traversal")),
    (Case("tree-internal-symlink-default", SEAL, 1, says=("sub/loop: symlink inside the directory",)),
     _tree("symlink-loop")),
    (Case("tree-not-a-directory", ("seal", "{tmp}/model/weights.bin"), 2, says=("is not a directory",)), _nothing),
    # ---- MLGATE_* defaults and --deadline
    (Case("env-verbose-word", VERIFY, 2, env={"MLGATE_VERBOSE": "abc"}, says=("MLGATE_VERBOSE='abc'",)), _nothing),
    (Case("env-verbose-superscript", VERIFY, 2, env={"MLGATE_VERBOSE": "²"}, says=("MLGATE_VERBOSE",)), _nothing),
    (Case("env-verbose-huge", VERIFY, 2, env={"MLGATE_VERBOSE": "9" * 5000}, says=("MLGATE_VERBOSE",)), _nothing),
    (Case("env-deadline-nan", VERIFY, 2, env={"MLGATE_DEADLINE": "nan"}, says=("MLGATE_DEADLINE='nan'",)), _nothing),
    (Case("env-deadline-negative", VERIFY, 2, env={"MLGATE_DEADLINE": "-1"}, says=("MLGATE_DEADLINE",)), _nothing),
    (Case("env-deadline-overflow", VERIFY, 2, env={"MLGATE_DEADLINE": "1e999"}, says=("MLGATE_DEADLINE",)),
     _nothing),
    (Case("env-deadline-word", VERIFY, 2, env={"MLGATE_DEADLINE": "soon"}, says=("MLGATE_DEADLINE",)), _nothing),
    (Case("env-platform-choice", VERIFY, 2, env={"MLGATE_PLATFORM": "jenkins"}, says=("MLGATE_PLATFORM",)),
     _nothing),
    (Case("env-flag-word", VERIFY, 2, env={"MLGATE_FOLLOW_INTERNAL_SYMLINKS": "maybe"},
          says=("MLGATE_FOLLOW_INTERNAL_SYMLINKS='maybe' is not a yes/no value",)), _nothing),
    (Case("env-concurrency-word", VERIFY, 2, env={"MLGATE_CONCURRENCY": "many"}, says=("MLGATE_CONCURRENCY",)),
     _nothing),
    (Case("env-concurrency-5000-digits", VERIFY, 2, env={"MLGATE_CONCURRENCY": "1" * 5000},
          says=("MLGATE_CONCURRENCY", "...")), _nothing),
    (Case("deadline-nan", ("--deadline", "nan", *VERIFY), 2, says=("not a number of seconds",)), _nothing),
    (Case("deadline-inf", ("--deadline", "inf", *VERIFY), 2, says=("not a number of seconds",)), _nothing),
    (Case("deadline-negative", ("--deadline=-5", *VERIFY), 2, says=("not a number of seconds",)), _nothing),
    (Case("deadline-too-long", ("--deadline", "9999999", *VERIFY), 2, says=("between 0 and 604800",)), _nothing),
    (Case("deadline-after-command", (*VERIFY, "--deadline", "1e999"), 2, says=("not a number of seconds",)),
     _nothing),
]


def _argv(case: Case, tmp: Path) -> list[str]:
    return [part.replace("{tmp}", str(tmp)) for part in case.argv]


@pytest.mark.parametrize(("case", "build"), CASES, ids=[c.id for c, _ in CASES])
def test_hostile_input(case: Case, build: Callable[[Path], None], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("MLGATE_") or n.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    started = time.monotonic()
    code, output = run_in_process(_argv(case, tmp_path), capsys, monkeypatch, env=case.env)
    assert time.monotonic() - started < BUDGET, f"{case.id}: took {time.monotonic() - started:.1f} s"
    assert_case(case, code, output)
    assert not (tmp_path / "out.json").exists(), "a refused seal wrote a manifest"


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c, _ in CASES}) == len(CASES)


@pytest.fixture
def growing(tmp_path: Path) -> Iterator[Path]:
    """A model directory whose one large file a thread keeps appending to."""
    model = _model(tmp_path)
    path = model / "weights.bin"
    path.write_bytes(os.urandom(1 << 20) * 8)
    stop = threading.Event()

    def append() -> None:
        with open(path, "ab") as stream:
            while not stop.is_set():
                stream.write(b"x" * 512)
                stream.flush()
                time.sleep(0.0005)

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    try:
        yield tmp_path
    finally:
        stop.set()
        writer.join(5)


@pytest.mark.parametrize("command", ["seal", "verify"])
def test_file_growing_while_hashed_is_never_sealed(command: str, growing: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = growing / "m.json"
    manifest.write_text(json.dumps(_manifest_doc([{"name": "weights.bin", "digest": {"sha256": D1}}])))
    argv = _argv(Case(command, SEAL if command == "seal" else VERIFY, 3), growing)
    code, output = run_in_process(argv, capsys, monkeypatch)
    case = Case(command, (), 3, says=("weights.bin changed while it was being hashed (3 attempts)",))
    assert_case(case, code, output)
    assert not (growing / "out.json").exists()


def test_evidence_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """``record --evidence`` reads the pack after resolving the version; the reader itself must not block."""
    os.mkfifo(tmp_path / "evidence.json")
    with pytest.raises(InvalidInputError, match=r"evidence .*evidence\.json: not a regular file \(a FIFO\)"):
        read_pack(str(tmp_path / "evidence.json"), name="m", version="1", stage="production")
    with pytest.raises(InvalidInputError, match=r"\(a directory\)"):
        read_pack(str(tmp_path), name="m", version="1", stage="production")
