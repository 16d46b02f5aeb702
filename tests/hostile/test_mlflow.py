"""Hostile MLflow: a loopback server answering what MLflow never should, and bad refs and tracking URIs.

Each case runs the real CLI (``lineage``, ``seal --model``, ``verify --model``) against a small
MLflow-shaped server whose one answer the case replaces, and asserts the exact exit code, a
message naming what was wrong, and no traceback / "internal error" / canary in the output.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.harness import Case, assert_case, run_in_process

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
ROOT = "0/models/m-1/artifacts"
MANIFEST_PATH = "0/models/m-1/mlgate-manifests/x.json"
CANARY = "PW-CANARY-5e1f"

Answer = tuple[int, bytes, dict[str, str]]
Handler = Callable[["FakeMlflow", str, dict[str, str]], Answer]


def _json(value: object, status: int = 200) -> Answer:
    return status, json.dumps(value).encode(), {"Content-Type": "application/json"}


def defaults() -> dict[str, Any]:
    """The JSON answers of a well-formed MLflow 3 server holding one traced model version."""
    return {
        API + "/model-versions/get": {"model_version": {
            "name": "m", "version": "1", "source": "models:/m-1", "run_id": "r1", "status": "READY",
            "tags": [{"key": "owner", "value": "team"}]}},
        API + "/registered-models/get": {"registered_model": {
            "name": "m", "tags": [{"key": "use_case", "value": "uc"}], "aliases": [{"alias": "a", "version": "1"}]}},
        API + "/logged-models/m-1": {"model": {"info": {
            "model_id": "m-1", "source_run_id": "r1", "experiment_id": "0",
            "artifact_uri": f"mlflow-artifacts:/{ROOT}"}}},
        API + "/runs/get": {"run": {
            "info": {"run_id": "r1", "experiment_id": "0", "status": "FINISHED", "lifecycle_stage": "active",
                     "artifact_uri": "mlflow-artifacts:/0/r1/artifacts"},
            "data": {"metrics": [{"key": "auc", "value": 0.9}],
                     "tags": [{"key": "mlflow.source.git.commit", "value": "a" * 40}]},
            "inputs": {"dataset_inputs": [{"tags": [{"key": "mlflow.data.context", "value": "training"}],
                                           "dataset": {"name": "train", "digest": "d1", "source": "{}"}}]}}},
        API + "/experiments/get": {"experiment": {"experiment_id": "0", "name": "exp", "lifecycle_stage": "active"}},
        API + "/logged-models/m-1/artifacts/directories": {"files": [
            {"path": "w.bin", "is_dir": False, "file_size": 3}]},
        API + "/model-versions/set-tag": {},
    }


@dataclass
class FakeMlflow:
    """What the loopback server answers: the defaults, with per-case JSON edits and raw handlers."""

    base: str = ""
    answers: dict[str, Any] = field(default_factory=defaults)
    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: int = 0

    def answer(self, path: str, query: dict[str, str]) -> Answer:
        self.calls += 1
        if path in self.handlers:
            return self.handlers[path](self, path, query)
        if path in self.answers:
            return _json(self.answers[path])
        if path == PROXY + "/" + ROOT + "/w.bin":
            return 200, b"abc", {}
        if path.startswith(PROXY):
            return 200, b"", {}
        return _json({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such thing"}, 404)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        answer = self.server.fake.answer(parts.path, query)
        if answer[0] == -1:  # trickle: headers, then one byte at a time
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        status, body, headers = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may hang up first (a refused answer)
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeMlflow


@pytest.fixture()
def fake() -> Iterator[FakeMlflow]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeMlflow(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- the table
Edit = Callable[[FakeMlflow], None]


@dataclass(frozen=True)
class Hostile:
    case: Case
    edit: Edit | None = None
    max_pages: int | None = None


def field_(path: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    """Edit the default JSON answer of ``path`` in place."""

    def edit(fake: FakeMlflow) -> None:
        fake.answers[path] = copy.deepcopy(fake.answers[path])
        change(fake.answers[path])

    return edit


def raw(path: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> Edit:
    def edit(fake: FakeMlflow) -> None:
        fake.handlers[path] = lambda f, p, q: (status, body, headers or {"Content-Type": "application/json"})

    return edit


def handler(path: str, fn: Handler) -> Edit:
    def edit(fake: FakeMlflow) -> None:
        fake.handlers[path] = fn

    return edit


def both(*edits: Edit) -> Edit:
    def edit(fake: FakeMlflow) -> None:
        for one in edits:
            one(fake)

    return edit


LINEAGE = ("lineage", "models:/m/1", "--platform", "local")
SEAL = ("seal", "--model", "models:/m/1", "--platform", "local")
VERIFY = ("verify", "{dir}", "--model", "models:/m/1", "--platform", "local")
MV, RUN, RM, LM, EXP = (API + p for p in ("/model-versions/get", "/runs/get", "/registered-models/get",
                                          "/logged-models/m-1", "/experiments/get"))
LIST = API + "/logged-models/m-1/artifacts/directories"


def lineage_case(id: str, edit: Edit, *says: str, code: int = 3) -> Hostile:
    return Hostile(Case(id, LINEAGE, code, says=says), edit)


def seal_case(id: str, edit: Edit, *says: str, code: int = 3, max_pages: int | None = None) -> Hostile:
    return Hostile(Case(id, SEAL, code, says=says), edit, max_pages)


WRONG_TYPES = [
    lineage_case("run.info-string", field_(RUN, lambda a: a["run"].update(info="x")), "field run.info"),
    lineage_case("run.data-string", field_(RUN, lambda a: a["run"].update(data="x")), "field run.data"),
    lineage_case("metric-true", field_(RUN, lambda a: a["run"]["data"]["metrics"][0].update(value=True)),
                 "field run.data.metrics[0].value: expected a finite number, got a boolean"),
    lineage_case("metric-string", field_(RUN, lambda a: a["run"]["data"]["metrics"][0].update(value="0.9")),
                 "run.data.metrics[0].value"),
    lineage_case("metric-key-null", field_(RUN, lambda a: a["run"]["data"]["metrics"][0].update(key=None)),
                 "run.data.metrics[0].key"),
    lineage_case("metrics-object", field_(RUN, lambda a: a["run"]["data"].update(metrics={"auc": 1})),
                 "run.data.metrics: expected a list"),
    lineage_case("run-tags-string", field_(RUN, lambda a: a["run"]["data"].update(tags="x")), "run.data.tags"),
    lineage_case("run-status-number", field_(RUN, lambda a: a["run"]["info"].update(status=1)), "run.info.status"),
    lineage_case("dataset-inputs-object", field_(RUN, lambda a: a["run"]["inputs"].update(dataset_inputs={})),
                 "run.inputs.dataset_inputs"),
    lineage_case("dataset-digest-number",
                 field_(RUN, lambda a: a["run"]["inputs"]["dataset_inputs"][0]["dataset"].update(digest=5)),
                 "run.inputs.dataset_inputs[0].dataset.digest"),
    lineage_case("version-tags-string", field_(MV, lambda a: a["model_version"].update(tags="owner=team")),
                 "field model_version.tags"),
    lineage_case("version-tag-without-key", field_(MV, lambda a: a["model_version"].update(tags=[{"value": "v"}])),
                 "model_version.tags[0].key"),
    lineage_case("version-name-number", field_(MV, lambda a: a["model_version"].update(name=7)),
                 "model_version.name"),
    lineage_case("version-run-id-object", field_(MV, lambda a: a["model_version"].update(run_id={})),
                 "model_version.run_id"),
    lineage_case("version-version-bool", field_(MV, lambda a: a["model_version"].update(version=True)),
                 "model_version.version"),
    lineage_case("version-aliases-string", field_(MV, lambda a: a["model_version"].update(aliases="a")),
                 "model_version.aliases"),
    lineage_case("model_version-a-list", field_(MV, lambda a: a.update(model_version=[])),
                 "model_version: expected an object"),
    lineage_case("no-model_version", field_(MV, lambda a: a.clear()), "without 'model_version'"),
    lineage_case("registered-aliases-string", field_(RM, lambda a: a["registered_model"].update(aliases="a")),
                 "registered_model.aliases"),
    lineage_case("logged-info-string", field_(LM, lambda a: a["model"].update(info="x")), "field model.info"),
    lineage_case("experiment-stage-list", field_(EXP, lambda a: a["experiment"].update(lifecycle_stage=[])),
                 "experiment.lifecycle_stage"),
    lineage_case("top-level-list", raw(RUN, 200, b"[1, 2]"), "(top level)"),
]

GARBAGE = [
    lineage_case("html-login-page", raw(MV, 200, b"<html><body>sign in</body></html>", {"Content-Type": "text/html"}),
                 "HTML or text, not JSON"),
    lineage_case("truncated-json", raw(MV, 200, b'{"model_version": {"name": "m"'), "not valid JSON"),
    lineage_case("deep-json", raw(RUN, 200, b'{"run": ' + b"[" * 5000 + b"]" * 5000 + b"}"), "nested deeper"),
    lineage_case("5000-digit-number", raw(RUN, 200, b'{"run": {"info": {}, "x": 1' + b"0" * 5000 + b"}}"),
                 "digits"),
    lineage_case("nan-literal", raw(RUN, 200, b'{"run": {"info": {"x": NaN}}}'), "non-finite"),
    lineage_case("1e999", raw(RUN, 200, b'{"run": {"info": {"x": 1e999}}}'), "infinity"),
    lineage_case("not-utf8", raw(MV, 200, b'{"model_version": "\xff\xfe"}'), "not UTF-8"),
    lineage_case("huge-announced", raw(MV, 200, b"{}", {"Content-Length": str(200 << 20)}), "(limit)"),
    lineage_case("unauthorized", raw(MV, 401, b"{}"), "refused our credentials"),
    lineage_case("version-missing", raw(MV, 404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}'), "not found",
                 code=1),
]


def _redirect_off(fake: FakeMlflow, path: str, query: dict[str, str]) -> Answer:
    return 302, b"", {"Location": "http://127.0.0.2:1/api/2.0/mlflow/model-versions/get"}


def _trickle(fake: FakeMlflow, path: str, query: dict[str, str]) -> Answer:
    return -1, b"", {}


def _same_token(fake: FakeMlflow, path: str, query: dict[str, str]) -> Answer:
    return _json({"files": [{"path": f"f{fake.calls}", "is_dir": False, "file_size": 0}], "next_page_token": "t"})


def _endless(fake: FakeMlflow, path: str, query: dict[str, str]) -> Answer:
    return _json({"files": [], "next_page_token": f"t{fake.calls}"})


def _self_listing(fake: FakeMlflow, path: str, query: dict[str, str]) -> Answer:
    return _json({"files": [{"path": "d", "is_dir": True}]})


RUNS_SOURCE = field_(MV, lambda a: a["model_version"].update(source="runs:/r1/model"))
TRANSPORT = [
    lineage_case("redirect-off-origin", handler(MV, _redirect_off), "another origin"),
    Hostile(Case("trickle", ("--deadline", "2", *LINEAGE), 3, says=("deadline",)), handler(RUN, _trickle)),
    seal_case("artifact-location-off-origin",
              field_(LM, lambda a: a["model"]["info"].update(
                  artifact_uri="http://127.0.0.2:1/api/2.0/mlflow-artifacts/artifacts/0/models/m-1/artifacts")),
              "another origin"),
    seal_case("artifact-location-not-proxied",
              field_(LM, lambda a: a["model"]["info"].update(artifact_uri="gs://bucket/m-1")), "does not proxy"),
    seal_case("repeated-page-token", handler(LIST, _same_token), "repeated a next_page_token"),
    seal_case("endless-paging", handler(LIST, _endless), "past 20 pages (limit)", max_pages=20),
    seal_case("page-token-number", field_(LIST, lambda a: a.update(next_page_token=5)), "next_page_token"),
    seal_case("directory-contains-itself", handler(LIST, _self_listing), "contains itself"),
    seal_case("directory-nested-forever", both(RUNS_SOURCE, handler(PROXY, _self_listing)),
              "deeper than 64 levels"),
    seal_case("files-not-a-list", field_(LIST, lambda a: a.update(files="w.bin")), "field files"),
    seal_case("file-size-text", field_(LIST, lambda a: a["files"][0].update(file_size="big")), "files[0].file_size"),
    seal_case("is-dir-text", field_(LIST, lambda a: a["files"][0].update(is_dir="yes")), "files[0].is_dir"),
    seal_case("path-traversal", field_(LIST, lambda a: a["files"][0].update(path="../../etc/passwd")),
              "unsafe artifact name", code=1),
    seal_case("short-download", field_(LIST, lambda a: a["files"][0].update(file_size=10)),
              "gave 3 bytes, the listing says 10"),
]


def _sealed(manifest: bytes, digest: str | None = None) -> Edit:
    tags = [{"key": "mlgate.manifest.sha256", "value": digest or hashlib.sha256(manifest).hexdigest()},
            {"key": "mlgate.manifest.uri", "value": f"mlflow-artifacts:/{MANIFEST_PATH}"}]
    return both(field_(MV, lambda a: a["model_version"].update(tags=tags)),
                raw(PROXY + "/" + MANIFEST_PATH, 200, manifest, {}))


def _good_manifest() -> bytes:
    from mlgate.integrity.manifest import Manifest

    return Manifest.build({"w.bin": hashlib.sha256(b"abc").hexdigest()}, 3, follow_internal_symlinks=False).canonical()


def verify_case(id: str, edit: Edit, *says: str, code: int = 1) -> Hostile:
    return Hostile(Case(id, VERIFY, code, says=says), edit)


STORED = [
    verify_case("stored-manifest-garbage", _sealed(b"garbage", "b" * 64), "stored manifest"),
    verify_case("stored-manifest-html", _sealed(b"<html>", "b" * 64), "stored manifest"),
    verify_case("stored-manifest-wrong-shape", _sealed(b'{"_type": 1}', "b" * 64), "stored manifest"),
    verify_case("stored-manifest-other-digest", lambda f: _sealed(_good_manifest(), "c" * 64)(f),
                "does not match its seal"),
    verify_case("stored-manifest-missing", both(_sealed(b"", "b" * 64), raw(PROXY + "/" + MANIFEST_PATH, 404, b"")),
                "missing from the artifact store"),
    verify_case("seal-tag-not-hex", _sealed(b"x", "not-a-digest"), "not a SHA-256"),
    verify_case("never-sealed", lambda f: None, "never sealed"),
    verify_case("stored-manifest-matches", lambda f: _sealed(_good_manifest())(f), code=0),
]

BAD_INPUTS = [
    Hostile(Case("ref-superscript-digit", ("lineage", "models:/x/²"), 2, says=("ASCII digits",))),
    Hostile(Case("ref-5001-digit-version", ("lineage", "models:/x/" + "7" * 5001), 2, says=("5011 characters",))),
    Hostile(Case("ref-version-zero", ("lineage", "models:/x/0"), 2, says=("not a model reference",))),
    Hostile(Case("ref-bad-alias", ("lineage", "x@no way"), 2, says=("not a model reference",))),
    Hostile(Case("ref-empty", ("lineage", ""), 2, says=("not a model reference",))),
    Hostile(Case("ref-two-slashes", ("lineage", "models:/a/b/1"), 2,
                 says=("not a model reference",))),
    Hostile(Case("uri-ipv6-unclosed", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://[::1"},
                 says=("MLFLOW_TRACKING_URI", "Invalid IPv6"))),
    Hostile(Case("uri-port-too-big", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://h:99999"},
                 says=("MLFLOW_TRACKING_URI", "out of range"))),
    Hostile(Case("uri-port-not-a-number", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://h:abc"},
                 says=("MLFLOW_TRACKING_URI",))),
    Hostile(Case("uri-empty-host", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://:5000"},
                 says=("MLFLOW_TRACKING_URI has no host",))),
    Hostile(Case("uri-no-host", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://"}, says=("no host",))),
    Hostile(Case("uri-port-zero", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "http://h:0"}, says=("port 0",))),
    Hostile(Case("uri-ftp", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": "ftp://h"}, says=("http(s)://",))),
    Hostile(Case("uri-with-password", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": f"http://u:{CANARY}@h"},
                 canaries=(CANARY,), says=("must not embed credentials",))),
    Hostile(Case("uri-unset", LINEAGE, 2, env={"MLFLOW_TRACKING_URI": ""}, says=("MLFLOW_TRACKING_URI",))),
]

SERVED = WRONG_TYPES + GARBAGE + TRANSPORT + STORED


@pytest.mark.parametrize("hostile", SERVED, ids=[h.case.id for h in SERVED])
def test_hostile_mlflow_answers(hostile: Hostile, fake: FakeMlflow, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if hostile.edit is not None:
        hostile.edit(fake)
    if hostile.max_pages is not None:
        monkeypatch.setattr("mlgate.lineage.mlflow.MAX_PAGES", hostile.max_pages)
    (tmp_path / "w.bin").write_bytes(b"abc")
    argv = tuple(a.replace("{dir}", str(tmp_path)) for a in hostile.case.argv)
    code, output = run_in_process(argv, capsys, monkeypatch,
                                  env={"MLFLOW_TRACKING_URI": fake.base, "MLFLOW_TRACKING_PASSWORD": CANARY,
                                       "MLFLOW_TRACKING_USERNAME": "u"})
    assert_case(hostile.case, code, output)
    assert CANARY not in output


@pytest.mark.parametrize("hostile", BAD_INPUTS, ids=[h.case.id for h in BAD_INPUTS])
def test_bad_refs_and_tracking_uris(hostile: Hostile, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", **hostile.case.env}
    code, output = run_in_process(hostile.case.argv, capsys, monkeypatch, env=env)
    assert_case(hostile.case, code, output)


def test_the_corpus_is_large_enough() -> None:
    assert len(SERVED) + len(BAD_INPUTS) >= 40
