"""Fake Azure DevOps (build timeline, Approvals API) and GitHub (run reviews, workflow run) servers.

Answers come from the vendors' API descriptions in ``tests/specs/`` and are validated against
their schemas before they are sent. Start with ``with FakeAzureDevOps().server: ...``; ``env()``
gives the environment a CI job would have, pointing at the fake.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.server import FakeServer, Reply, Request
from tests.fakes.specs import Spec, recorded_example

ADO_TOKEN = "ado-canary-token-5c1f0e"
GH_TOKEN = "ghs_canaryTOKEN0123456789abcdef"
ORG, PROJECT, BUILD_ID, STAGE = "fabrikam", "RM", "4711", "deploy_prod"
# Microsoft's recorded example of an approved approval (PATCH__UpdateApproval.json's answer).
APPROVED_ID = "aab27959-a5be-4ee3-97ca-f19b3602cd2f"
# Microsoft's recorded example of a pending approval (GET__QueryApproval.json).
PENDING_ID = "ee14f612-6838-43c0-b445-db238ef14153"

APPROVALS_PATH = "/{organization}/{project}/_apis/pipelines/approvals"
TIMELINE_PATH = "/{organization}/{project}/_apis/build/builds/{buildId}/timeline/{timelineId}"
REVIEWS_PATH = "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals"
RUN_PATH = "/repos/{owner}/{repo}/actions/runs/{run_id}"


def timeline(approval_ids: list[str], *, stage: str = STAGE) -> dict[str, Any]:
    """A build timeline: stage -> Checkpoint -> Checkpoint.Approval records (ids = approval ids)."""
    records: list[dict[str, Any]] = [
        {
            "id": "11111111-1111-1111-1111-111111111111",
            "type": "Stage",
            "identifier": "build",
            "name": "Build",
            "state": "completed",
            "result": "succeeded",
        },
        {
            "id": "22222222-2222-2222-2222-222222222222",
            "type": "Stage",
            "identifier": stage,
            "name": "Deploy",
            "state": "inProgress",
        },
        {
            "id": "33333333-3333-3333-3333-333333333333",
            "type": "Checkpoint",
            "name": "Checkpoint",
            "parentId": "22222222-2222-2222-2222-222222222222",
            "state": "completed",
            "result": "succeeded",
        },
    ]
    records += [
        {
            "id": a,
            "type": "Checkpoint.Approval",
            "name": "Checkpoint.Approval",
            "parentId": "33333333-3333-3333-3333-333333333333",
            "state": "completed",
            "result": "succeeded",
        }
        for a in approval_ids
    ]
    # a decoy approval under another stage's checkpoint must not be read
    records += [
        {
            "id": "44444444-4444-4444-4444-444444444444",
            "type": "Checkpoint",
            "parentId": "11111111-1111-1111-1111-111111111111",
        },
        {
            "id": "55555555-5555-5555-5555-555555555555",
            "type": "Checkpoint.Approval",
            "parentId": "44444444-4444-4444-4444-444444444444",
        },
    ]
    return {"id": "66666666-6666-6666-6666-666666666666", "changeId": 12, "records": records}


class FakeAzureDevOps:
    """Timeline and Approvals endpoints; answers validated against Microsoft's Swagger files."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.build_spec = Spec("azure-devops/build-7.1-build.json")
        self.approvals_spec = Spec("azure-devops/approvalsAndChecks-7.1-pipelinesapproval.json")
        approved = recorded_example("azure-devops/examples/PATCH__UpdateApproval.json")["value"]
        pending = recorded_example("azure-devops/examples/GET__QueryApproval.json")["value"]
        self.approvals: dict[str, dict[str, Any]] = {a["id"]: a for a in [*pending, *approved]}
        self.approval_ids: list[str] = [APPROVED_ID]
        self.server.add("GET", f"/{ORG}/{PROJECT}/_apis/build/builds/{{build}}/timeline", self._timeline)
        self.server.add("GET", f"/{ORG}/{PROJECT}/_apis/pipelines/approvals", self._approvals)

    def _authorized(self, request: Request) -> bool:
        return request.header("Authorization") == f"Bearer {ADO_TOKEN}"

    def _timeline(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, {"message": "unauthorized"})
        body = timeline(self.approval_ids)
        self.build_spec.validate(body, "#/definitions/Timeline")
        return Reply(200, body)

    def _approvals(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, {"message": "unauthorized"})
        ids = request.query.get("approvalIds", [""])[0].split(",")
        expand = request.query.get("$expand", ["none"])[0]
        items = []
        for approval_id in ids:
            if approval_id in self.approvals:
                item = dict(self.approvals[approval_id])
                if expand != "steps":  # the service only lists steps when asked (see the examples)
                    item["steps"] = []
                items.append(item)
        self.approvals_spec.validate_response(APPROVALS_PATH, "get", items)
        return Reply(200, {"count": len(items), "value": items})  # the wire form wraps the array

    def env(self) -> dict[str, str]:
        return {
            "TF_BUILD": "True",
            "SYSTEM_ACCESSTOKEN": ADO_TOKEN,
            "SYSTEM_COLLECTIONURI": f"{self.server.url}/{ORG}/",
            "SYSTEM_TEAMPROJECT": PROJECT,
            "BUILD_BUILDID": BUILD_ID,
            "SYSTEM_STAGENAME": STAGE,
            "BUILD_REQUESTEDFOR": "Requester Person",
            "BUILD_REQUESTEDFOREMAIL": "requester@fabrikam.example",
            "BUILD_REQUESTEDFORID": "9d2f6c1e-0000-4000-8000-000000000001",
        }


class FakeGitHub:
    """Run review history and workflow run; answers from GitHub's OpenAPI examples, validated."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.spec = Spec("github/openapi-subset.json")
        self.reviews: list[dict[str, Any]] = self.spec.example("environment-approvals-items")
        self.run: dict[str, Any] = self.spec.example("workflow-run")
        self.server.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals", self._reviews)
        self.server.add("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", self._run)

    def _authorized(self, request: Request) -> bool:
        return request.header("Authorization") == f"Bearer {GH_TOKEN}"

    def _reviews(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, {"message": "Bad credentials"})
        self.spec.validate_response(REVIEWS_PATH, "get", self.reviews)
        return Reply(200, self.reviews)

    def _run(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, {"message": "Bad credentials"})
        self.spec.validate_response(RUN_PATH, "get", self.run)
        return Reply(200, self.run)

    def env(self) -> dict[str, str]:
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_TOKEN": GH_TOKEN,
            "GITHUB_API_URL": self.server.url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "octo-org/hello-world",
            "GITHUB_RUN_ID": "30433642",
            "GITHUB_ACTOR": "octocat",
            "GITHUB_TRIGGERING_ACTOR": "octocat",
        }
