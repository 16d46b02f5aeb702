"""Hostile corpus of the platforms and their approvals: self-declared approvals in CI, approvals APIs
that redirect elsewhere, answer HTML, wrong types, deep JSON or endless pages, and evidence paths
that are not files.

Every case asserts the exact exit code and a clean output (no traceback, no "internal error", no
job token: ``SYSTEM_ACCESSTOKEN`` / ``GITHUB_TOKEN`` are canaries). The approvals cases run
``mlgate rollback`` (which reads the approvals before touching MLflow) and ``mlgate record``
inside a CI environment against the spec-driven fakes of ``tests/fakes/ci.py`` with one answer
broken; the evidence cases run ``mlgate record`` against the real ``mlflow server``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.ci import ADO_TOKEN, GH_TOKEN, ORG, PENDING_ID, PROJECT, FakeAzureDevOps, FakeGitHub
from tests.fakes.server import FakeServer, Reply, Request
from tests.hostile.harness import Case, assert_case, run_in_process, run_process

CANARIES = (ADO_TOKEN, GH_TOKEN)
NOWHERE = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # reaching MLflow would be exit 3, never 2
LOCAL = ("--approver", "Mallory", "--comment", "trust me")
GH_ENV = {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": GH_TOKEN}
ADO_ENV = {"TF_BUILD": "True", "SYSTEM_ACCESSTOKEN": ADO_TOKEN}
ADO_APPROVALS = f"/{ORG}/{PROJECT}/_apis/pipelines/approvals"
ADO_TIMELINE = f"/{ORG}/{PROJECT}/_apis/build/builds/{{build}}/timeline"
GH_REVIEWS = "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals"
GH_RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}"


# ---------------------------------------------------------------------------- self-declared approvals in CI
def declared(id: str, env: dict[str, str], *argv: str, says: str = "a pipeline cannot name its own approver") -> Case:
    return Case(id, tuple(argv), 2, env | NOWHERE, CANARIES, (says, "how to fix:"))


DECLARED = [
    declared("record-platform-flag-github", GH_ENV, "record", "m/1", "--platform", "local", *LOCAL),
    declared("record-platform-flag-azure", ADO_ENV, "record", "m/1", "--platform", "local", *LOCAL),
    declared("record-platform-env-github", GH_ENV | {"MLGATE_PLATFORM": "local"}, "record", "m/1", *LOCAL),
    declared("record-platform-env-azure", ADO_ENV | {"MLGATE_PLATFORM": "local"}, "record", "m/1", *LOCAL),
    declared("record-approver-detected-github", GH_ENV, "record", "m/1", "--approver", "Mallory",
             says="--approver is only for local runs"),
    declared("record-comment-env-azure", ADO_ENV | {"MLGATE_COMMENT": "trust me"}, "record", "m/1",
             says="--comment is only for local runs"),
    declared("record-other-ci-platform-in-github", GH_ENV, "record", "m/1", "--platform", "azure-devops"),
    declared("rollback-platform-flag-github", GH_ENV, "rollback", "m", "--platform", "local", *LOCAL),
    declared("rollback-platform-env-azure", ADO_ENV | {"MLGATE_PLATFORM": "local"}, "rollback", "m", *LOCAL),
    declared("rollback-approver-azure", ADO_ENV, "rollback", "m", "--approver", "Mallory", "--comment", "x",
             says="--approver and --comment are only for local runs"),
    declared("rollback-other-ci-platform-in-azure", ADO_ENV, "rollback", "m", "--platform", "github"),
]


@pytest.mark.parametrize("case", DECLARED, ids=lambda c: c.id)
def test_self_declared_approval_in_process(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {**case.env, "MLGATE_LEDGER": f"file:{tmp_path / 'ledger.jsonl'}"}
    code, output = run_in_process(case.argv, capsys, monkeypatch, env=env)
    assert_case(case, code, output)
    assert not (tmp_path / "ledger.jsonl").exists()  # refused before anything was written


@pytest.mark.parametrize("case", DECLARED[::2], ids=lambda c: c.id)
def test_self_declared_approval_through_the_process(case: Case, tmp_path: Path) -> None:
    code, output = run_process(case.argv, env={**case.env, "MLGATE_LEDGER": f"file:{tmp_path / 'ledger.jsonl'}"})
    assert_case(case, code, output)


# ---------------------------------------------------------------------------- approvals APIs that misbehave
@dataclass(frozen=True)
class Fault:
    id: str
    ci: str  # "azure-devops" | "github"
    exit_code: int
    says: str
    route: str  # the fake's route template to break
    reply: Callable[[FakeServer, FakeServer], Callable[[Request], Reply]]  # (fake, elsewhere) -> handler


def fixed(reply: Reply) -> Callable[[FakeServer, FakeServer], Callable[[Request], Reply]]:
    return lambda _fake, _elsewhere: lambda _request: reply


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def redirect_elsewhere(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    return lambda request: Reply(302, b"", {"Location": f"{elsewhere.url}{request.path}"})


def next_elsewhere(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    return lambda request: Reply(200, [], {"Link": f'<{elsewhere.url}{request.path}?page=2>; rel="next"'})


def next_forever(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        page = int(request.query.get("page", ["1"])[0])
        return Reply(200, [], {"Link": f'<{fake.url}{request.path}?page={page + 1}>; rel="next"'})

    return handler


def next_same(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    return lambda request: Reply(200, [], {"Link": f'<{fake.url}{request.path}?page=2>; rel="next"'})


def token_forever(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    return lambda request: Reply(200, {"count": 0, "value": []}, {"x-ms-continuationtoken": uuid.uuid4().hex})


def token_same(fake: FakeServer, elsewhere: FakeServer) -> Callable[[Request], Reply]:
    return lambda request: Reply(200, {"count": 0, "value": []}, {"x-ms-continuationtoken": "c2FtZQ=="})


def approval(**changes: object) -> dict[str, object]:
    from tests.fakes.ci import APPROVED_ID
    from tests.fakes.specs import recorded_example

    [item] = [a for a in recorded_example("azure-devops/examples/PATCH__UpdateApproval.json")["value"]
              if a["id"] == APPROVED_ID]
    return {**item, **changes}


def step_with(**approver: object) -> dict[str, object]:
    [step] = approval()["steps"]  # type: ignore[misc]
    return approval(steps=[{**step, "actualApprover": {**step["actualApprover"], **approver}}])


def review(**changes: object) -> list[object]:
    from tests.fakes.specs import Spec

    [item] = Spec("github/openapi-subset.json").example("environment-approvals-items")
    return [{**item, **changes}]


HTML = Reply(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", {"Content-Type": "text/html"})
FAULTS = [
    # Azure DevOps: the build timeline and the Approvals API
    Fault("ado-timeline-redirect-off-origin", "azure-devops", 3, "another origin", ADO_TIMELINE, redirect_elsewhere),
    Fault("ado-approvals-redirect-off-origin", "azure-devops", 3, "another origin", ADO_APPROVALS,
          redirect_elsewhere),
    Fault("ado-approvals-html", "azure-devops", 3, "HTML or text, not JSON", ADO_APPROVALS, fixed(HTML)),
    Fault("ado-timeline-records-a-string", "azure-devops", 3, "field records", ADO_TIMELINE,
          fixed(Reply(200, {"records": "all approved"}))),
    Fault("ado-timeline-record-type-a-number", "azure-devops", 3, "field records[0].type: expected a string",
          ADO_TIMELINE, fixed(Reply(200, {"records": [{"id": "x", "type": 7}]}))),
    Fault("ado-approval-status-a-boolean", "azure-devops", 3, "field value[0].status: expected a string",
          ADO_APPROVALS, fixed(Reply(200, {"count": 1, "value": [approval(status=True)]}))),
    Fault("ado-approver-name-a-number", "azure-devops", 3, "actualApprover.displayName: expected a string",
          ADO_APPROVALS, fixed(Reply(200, {"count": 1, "value": [step_with(displayName=42)]}))),
    Fault("ado-min-approvers-5000-digits", "azure-devops", 3, "digits", ADO_APPROVALS,
          fixed(Reply(200, b'{"count": 1, "value": [{"id": "x", "minRequiredApprovers": ' + b"9" * 5000 + b"}]}"))),
    Fault("ado-approvals-deep-json", "azure-devops", 3, "nested deeper than 64", ADO_APPROVALS,
          fixed(Reply(200, deep(100_000)))),
    Fault("ado-approvals-repeated-continuation-token", "azure-devops", 3, "pagination loop", ADO_APPROVALS,
          token_same),
    Fault("ado-approvals-endless-continuation-tokens", "azure-devops", 3, "more than 50 pages (limit)",
          ADO_APPROVALS, token_forever),
    Fault("ado-timeline-401", "azure-devops", 3, "HTTP 401", ADO_TIMELINE, fixed(Reply(401, {"message": "no"}))),
    Fault("ado-approvals-404", "azure-devops", 3, "HTTP 404", ADO_APPROVALS, fixed(Reply(404, {"message": "no"}))),
    Fault("ado-approval-pending", "azure-devops", 1, "not approved", ADO_APPROVALS,
          fixed(Reply(200, {"count": 1, "value": [approval(status="pending")]}))),
    Fault("ado-approval-without-steps", "azure-devops", 3, "no steps", ADO_APPROVALS,
          fixed(Reply(200, {"count": 1, "value": [{**approval(), "steps": None}]}))),
    # GitHub: the run's review history and the workflow run
    Fault("gh-reviews-redirect-off-origin", "github", 3, "another origin", GH_REVIEWS, redirect_elsewhere),
    Fault("gh-run-redirect-off-origin", "github", 3, "another origin", GH_RUN, redirect_elsewhere),
    Fault("gh-reviews-link-next-off-origin", "github", 3, "the next page is on another origin", GH_REVIEWS,
          next_elsewhere),
    Fault("gh-reviews-endless-link-next", "github", 3, "more than 50 pages (limit)", GH_REVIEWS, next_forever),
    Fault("gh-reviews-repeated-link-next", "github", 3, "pagination loop", GH_REVIEWS, next_same),
    Fault("gh-reviews-html", "github", 3, "HTML or text, not JSON", GH_REVIEWS, fixed(HTML)),
    Fault("gh-reviews-an-object", "github", 3, "expected a list of reviews, got an object", GH_REVIEWS,
          fixed(Reply(200, {"approved": True}))),
    Fault("gh-review-login-a-number", "github", 3, "field [0].user.login: expected a string", GH_REVIEWS,
          fixed(Reply(200, review(user={"login": 1, "id": 1})))),
    Fault("gh-review-environments-a-string", "github", 3, "field [0].environments: expected a list", GH_REVIEWS,
          fixed(Reply(200, review(environments="production")))),
    Fault("gh-run-author-email-an-object", "github", 3, "head_commit.author.email: expected a string", GH_RUN,
          fixed(Reply(200, {"actor": {"login": "octocat"}, "head_commit": {"author": {"email": {"a": 1}}}}))),
    Fault("gh-reviews-deep-json", "github", 3, "nested deeper than 64", GH_REVIEWS, fixed(Reply(200, deep(70)))),
    Fault("gh-reviews-401", "github", 3, "HTTP 401", GH_REVIEWS, fixed(Reply(401, {"message": "Bad credentials"}))),
    Fault("gh-run-404", "github", 3, "HTTP 404", GH_RUN, fixed(Reply(404, {"message": "Not Found"}))),
]


@pytest.fixture
def elsewhere() -> Iterator[FakeServer]:
    """Another origin that would happily answer; it must never be asked."""
    server = FakeServer()
    server.add("GET", "/{path}", Reply(200, []))
    with server:
        yield server


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_approvals_api_fault_fails_closed(
    fault: Fault, elsewhere: FakeServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake = FakeAzureDevOps() if fault.ci == "azure-devops" else FakeGitHub()
    fake.server.add("GET", fault.route, fault.reply(fake.server, elsewhere))
    with fake.server:
        env = fake.env() | NOWHERE | {"MLGATE_LEDGER": f"file:{tmp_path / 'ledger.jsonl'}"}
        case = Case(fault.id, ("rollback", "credit-risk"), fault.exit_code, env, CANARIES, (fault.says,))
        code, output = run_in_process(case.argv, capsys, monkeypatch, env=env)
    assert_case(case, code, output)
    assert not elsewhere.requests, "a request (with the job's token) went to another origin"
    assert not (tmp_path / "ledger.jsonl").exists()


def test_approvals_fault_through_the_process(elsewhere: FakeServer, tmp_path: Path) -> None:
    fake = FakeGitHub()
    fake.server.add("GET", GH_REVIEWS, next_elsewhere(fake.server, elsewhere))
    with fake.server:
        env = fake.env() | NOWHERE | {"MLGATE_LEDGER": f"file:{tmp_path / 'ledger.jsonl'}"}
        case = Case("gh-link-next-off-origin-process", ("rollback", "m"), 3, env, CANARIES, ("another origin",))
        code, output = run_process(case.argv, env=env)
    assert_case(case, code, output)
    assert not elsewhere.requests


def test_pending_approval_in_record_promotes_nothing(
    mlflow_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.integration.governed.helpers import register, write_evidence

    model = register(mlflow_server, 1)
    evidence = write_evidence(tmp_path / "evidence.json", model.name, model.versions[0])
    fake = FakeAzureDevOps()
    fake.approval_ids = [PENDING_ID]
    with fake.server:
        env = fake.env() | {"MLFLOW_TRACKING_URI": mlflow_server, "MLGATE_LEDGER": f"file:{tmp_path / 'l.jsonl'}"}
        case = Case("ado-record-pending", ("record", model.ref(), "--evidence", str(evidence)), 1, env, CANARIES,
                    ("'pending', not approved",))
        code, output = run_in_process(case.argv, capsys, monkeypatch, env=env)
    assert_case(case, code, output)


# ---------------------------------------------------------------------------- evidence paths that are not files
def _fifo(tmp: Path) -> str:
    path = tmp / "evidence.fifo"
    os.mkfifo(path)
    return str(path)


def _directory(tmp: Path) -> str:
    (tmp / "evidence-dir").mkdir()
    return str(tmp / "evidence-dir")


def _missing(tmp: Path) -> str:
    return str(tmp / "no-such-evidence.json")


def _dangling(tmp: Path) -> str:
    (tmp / "dangling.json").symlink_to(tmp / "gone.json")
    return str(tmp / "dangling.json")


def _html(tmp: Path) -> str:
    (tmp / "evidence.html").write_text("<html>not evidence</html>")
    return str(tmp / "evidence.html")


EVIDENCE = [
    ("evidence-fifo", _fifo, 2, "not a regular file (a FIFO)"),
    ("evidence-directory", _directory, 2, "not a regular file (a directory)"),
    ("evidence-device", lambda _tmp: "/dev/null", 2, "not a regular file (a device)"),
    ("evidence-missing", _missing, 2, "no evidence pack at"),
    ("evidence-dangling-symlink", _dangling, 2, "no such file"),
    ("evidence-not-json", _html, 2, "HTML or text, not JSON"),
]


@pytest.mark.parametrize(("id", "make", "exit_code", "says"), EVIDENCE, ids=[e[0] for e in EVIDENCE])
def test_evidence_path_that_is_not_an_evidence_file(
    id: str, make: Callable[[Path], str], exit_code: int, says: str, mlflow_server: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from tests.integration.governed.helpers import register

    model = register(mlflow_server, 1)
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MLGATE_LEDGER": f"file:{tmp_path / 'l.jsonl'}",
           "GITHUB_TOKEN": GH_TOKEN}
    argv = ("record", model.ref(), "--platform", "local", *LOCAL, "--evidence", make(tmp_path))
    case = Case(id, argv, exit_code, env, CANARIES, (says,))
    code, output = run_in_process(case.argv, capsys, monkeypatch, env=env)
    assert_case(case, code, output)
    assert not (tmp_path / "l.jsonl").exists()


def test_corpus_size() -> None:
    assert len(DECLARED) + len(FAULTS) + len(EVIDENCE) >= 25
    assert json.dumps([c.id for c in DECLARED]) and len({f.id for f in FAULTS}) == len(FAULTS)
