"""Approvals readers against fake Azure DevOps / GitHub servers answering from the vendors' specs."""

from __future__ import annotations

import jsonschema
import pytest

from mlgate.approvals import ApprovalReport, azure_devops, local
from mlgate.errors import EvaluationError, NetworkError, RefusedError, UsageError
from tests.fakes.ci import ADO_TOKEN, APPROVED_ID, GH_TOKEN, PENDING_ID, STAGE, FakeAzureDevOps, FakeGitHub
from tests.fakes.server import Reply, Request

pytestmark = pytest.mark.integration


def test_azure_devops_reads_microsofts_recorded_approver(ado: FakeAzureDevOps) -> None:
    report = azure_devops.read_approvals(ado.env())
    assert [a.approver for a in report.approvals] == ["User Name"]
    approval = report.approvals[0]
    assert approval.approver_id == "uniqueName"
    assert approval.comment == "Approving"
    assert approval.time == "2020-11-19T09:57:54.252505Z"
    assert approval.source == "azure-devops"
    assert "3b3db741-9d03-4e32-a7c0-6c3dfc2013c1" in approval.identities
    assert report.min_required == 1
    assert report.requesters == (
        "Requester Person",
        "requester@fabrikam.example",
        "9d2f6c1e-0000-4000-8000-000000000001",
    )
    assert report.where == f"stage {STAGE}"
    # timeline first, then the Approvals API with $expand=steps for exactly the stage's approval ids
    timeline_calls = ado.server.requests_to("/timeline")
    approval_calls = ado.server.requests_to("/pipelines/approvals")
    assert len(timeline_calls) == 1 and len(approval_calls) == 1
    assert approval_calls[0].query["$expand"] == ["steps"]
    assert approval_calls[0].query["approvalIds"] == [APPROVED_ID]
    assert approval_calls[0].query["api-version"] == ["7.1"]


def test_azure_devops_pending_approval_is_refused(ado: FakeAzureDevOps) -> None:
    ado.approval_ids = [PENDING_ID]
    with pytest.raises(RefusedError, match="'pending', not approved"):
        azure_devops.read_approvals(ado.env())


def test_azure_devops_without_expand_would_have_no_steps(ado: FakeAzureDevOps) -> None:
    # the fake honours $expand like the service does; a body without steps is an unusable answer
    with pytest.raises(NetworkError, match="steps"):
        azure_devops.parse_approvals([{"id": APPROVED_ID, "status": "approved"}], [APPROVED_ID], STAGE)


def test_azure_devops_stage_without_approvals(ado: FakeAzureDevOps) -> None:
    ado.approval_ids = []
    report = azure_devops.read_approvals(ado.env())
    assert report.approvals == ()
    assert not ado.server.requests_to("/pipelines/approvals")


def test_azure_devops_unknown_stage_is_a_usage_error(ado: FakeAzureDevOps) -> None:
    with pytest.raises(UsageError, match="'nope' is not in this run's timeline"):
        azure_devops.read_approvals(ado.env(), stage="nope")


def test_azure_devops_bad_token_is_exit_3_without_leaking_it(ado: FakeAzureDevOps) -> None:
    env = ado.env() | {"SYSTEM_ACCESSTOKEN": "wrong-" + ADO_TOKEN}
    with pytest.raises(EvaluationError) as info:
        azure_devops.read_approvals(env)
    assert info.value.exit_code == 3
    assert "HTTP 401" in info.value.message
    assert ADO_TOKEN not in info.value.diagnostics()


def test_azure_devops_missing_token_names_the_variable(ado: FakeAzureDevOps) -> None:
    env = ado.env()
    del env["SYSTEM_ACCESSTOKEN"]
    with pytest.raises(UsageError, match="SYSTEM_ACCESSTOKEN"):
        azure_devops.read_approvals(env)


def test_azure_devops_garbage_answer_fails_closed(ado: FakeAzureDevOps) -> None:
    ado.server.add(
        "GET",
        "/fabrikam/RM/_apis/pipelines/approvals",
        Reply(200, b"<html>sign in</html>", {"Content-Type": "text/html"}),
    )
    with pytest.raises(NetworkError, match="not JSON"):
        azure_devops.read_approvals(ado.env())


def test_github_reads_the_environment_reviewer(github: FakeGitHub) -> None:
    report = _github(github, "staging")
    assert [(a.approver, a.comment, a.source) for a in report.approvals] == [("octocat", "Ship it!", "github")]
    assert report.approvals[0].approver_id == "1"
    assert report.approvals[0].time is None
    assert "octocat" in report.requesters
    assert report.commit_authors == ("Octo Cat", "octocat@github.com")
    calls = github.server.requests_to("/actions/runs/")
    assert {c.path for c in calls} == {
        "/repos/octo-org/hello-world/actions/runs/30433642/approvals",
        "/repos/octo-org/hello-world/actions/runs/30433642",
    }
    assert all(c.header("X-GitHub-Api-Version") == "2022-11-28" for c in calls)


def _github(fake: FakeGitHub, environment: str) -> ApprovalReport:
    from mlgate.approvals import github as reader

    return reader.read_approvals(fake.env(), environment=environment)


def test_github_reviews_for_other_environments_or_rejected_do_not_count(github: FakeGitHub) -> None:
    assert _github(github, "production").approvals == ()
    github.reviews[0]["state"] = "rejected"
    assert _github(github, "staging").approvals == ()


def test_github_noreply_email_maps_to_login(github: FakeGitHub) -> None:
    github.run["head_commit"]["author"] = {
        "name": "Mona",
        "email": "583231+monalisa@users.noreply.github.com",
    }
    assert "monalisa" in _github(github, "staging").commit_authors


def test_github_bad_token_is_exit_3_without_leaking_it(github: FakeGitHub) -> None:
    env = github.env() | {"GITHUB_TOKEN": GH_TOKEN + "x"}
    from mlgate.approvals import github as reader

    with pytest.raises(EvaluationError) as info:
        reader.read_approvals(env, environment="staging")
    assert "HTTP 401" in info.value.message and GH_TOKEN not in info.value.diagnostics()


def test_local_approval_needs_name_and_reason() -> None:
    report = local.read_approvals(["Ana", "Ana", "Ben"], "risk reviewed", time="2026-01-01T00:00:00.000Z")
    assert [a.approver for a in report.approvals] == ["Ana", "Ben"]
    assert report.approvals[0].source == "local"
    with pytest.raises(UsageError, match="no approver"):
        local.read_approvals([], "x", time="t")
    with pytest.raises(UsageError, match="reason"):
        local.read_approvals(["Ana"], " ", time="t")


def test_fake_answers_are_checked_against_the_spec(ado: FakeAzureDevOps) -> None:
    # a fake that drifts from Microsoft's schema fails loudly, so tests cannot pass on invented shapes
    ado.approvals[APPROVED_ID]["steps"][0]["actualApprover"]["displayName"] = 42
    request = Request(
        "GET",
        "/fabrikam/RM/_apis/pipelines/approvals",
        {"approvalIds": [APPROVED_ID], "$expand": ["steps"]},
        {"Authorization": f"Bearer {ADO_TOKEN}"},
        b"",
    )
    with pytest.raises(jsonschema.ValidationError, match="42 is not of type 'string'"):
        ado._approvals(request)


def test_github_review_history_pages_are_all_read(github: FakeGitHub) -> None:
    # GitHub pages a list with `Link: <...?page=2>; rel="next"`; an approval on page 2 counts
    second = [dict(github.reviews[0], user={**github.reviews[0]["user"], "login": "hubot", "id": 2})]
    first = github.reviews

    def pages(request: Request) -> Reply:
        if request.query.get("page") == ["2"]:
            github.spec.validate_response("/repos/{owner}/{repo}/actions/runs/{run_id}/approvals", "get", second)
            return Reply(200, second)
        page2 = f"{github.server.url}{request.path}?page=2"
        link = f'<{page2}>; rel="next", <{page2}>; rel="last"'
        return Reply(200, first, {"Link": link})

    github.server.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals", pages)
    report = _github(github, "staging")
    assert [a.approver for a in report.approvals] == ["octocat", "hubot"]
    assert len(github.server.requests_to("/approvals")) == 2


def test_azure_devops_continuation_token_pages_are_all_read(ado: FakeAzureDevOps) -> None:
    # Azure DevOps pages with the x-ms-continuationtoken header, sent back as ?continuationToken=
    ado.approval_ids = [APPROVED_ID, "bbbbbbbb-0000-4000-8000-000000000002"]
    second = dict(ado.approvals[APPROVED_ID], id="bbbbbbbb-0000-4000-8000-000000000002")
    second["steps"] = [dict(second["steps"][0], actualApprover={"displayName": "Second Approver", "id": "2",
                                                                 "uniqueName": "second@fabrikam.example"})]

    def pages(request: Request) -> Reply:
        if request.query.get("continuationToken") == ["page2"]:
            return Reply(200, {"count": 1, "value": [second]})
        first = dict(ado.approvals[APPROVED_ID])
        return Reply(200, {"count": 1, "value": [first]}, {"x-ms-continuationtoken": "page2"})

    ado.server.add("GET", "/fabrikam/RM/_apis/pipelines/approvals", pages)
    report = azure_devops.read_approvals(ado.env())
    assert [a.approver for a in report.approvals] == ["User Name", "Second Approver"]
    calls = ado.server.requests_to("/pipelines/approvals")
    assert len(calls) == 2 and calls[1].query["approvalIds"] == calls[0].query["approvalIds"]
    assert calls[1].query["$expand"] == ["steps"]

