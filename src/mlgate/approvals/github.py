"""GitHub Actions: the named reviewers who approved this run's deployment environment.

``GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals`` (the run's review history:
``user.login``, ``comment``, ``state``, ``environments``) and ``GET .../actions/runs/{run_id}``
(``triggering_actor``, ``actor``, ``head_commit.author``). PyGithub 2.x has no call for the
review history, so both are plain REST with ``requests`` and the job's ``GITHUB_TOKEN``
(``actions: read``). The review history carries no timestamp; ``time`` is left empty and the
ledger entry's own time says when it was read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mlgate import redact
from mlgate.approvals import Approval, ApprovalReport, handles
from mlgate.errors import NetworkError, UsageError

SOURCE = "github"
DEFAULT_API = "https://api.github.com"
AUTH_HINT = (
    "pass the job's token to the step (env: GITHUB_TOKEN: ${{ github.token }}) with "
    "`permissions: actions: read`"
)
_NOREPLY = re.compile(r"^(?:\d+\+)?([A-Za-z0-9-]+)@users\.noreply\.github\.com$", re.IGNORECASE)


def _required(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set; cannot read this run's approvals from GitHub", hint=hint)
    return value


def _unusable(why: str) -> NetworkError:
    return NetworkError(
        f"the GitHub API: unexpected answer ({why})",
        hint="the GitHub API answered an unknown shape; nothing was recorded",
    )


def read_approvals(env: Mapping[str, str], *, environment: str) -> ApprovalReport:
    """Read who approved deployment to ``environment`` in run ``GITHUB_RUN_ID``."""
    from mlgate.approvals._http import get_json
    from mlgate.http import make_session

    token = _required(env, "GITHUB_TOKEN", AUTH_HINT)
    redact.register(token)
    api = (env.get("GITHUB_API_URL", "").strip() or DEFAULT_API).rstrip("/")
    repository = _required(env, "GITHUB_REPOSITORY", "run inside a GitHub Actions job")
    run_id = _required(env, "GITHUB_RUN_ID", "run inside a GitHub Actions job")
    if not environment:
        raise UsageError("no environment to read approvals for", hint="pass --environment NAME")
    session = make_session()
    session.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    )
    run_url = f"{api}/repos/{repository}/actions/runs/{quote(run_id, safe='')}"
    reviews = get_json(
        session, f"{run_url}/approvals", what="the GitHub run review history", auth_hint=AUTH_HINT
    )
    run = get_json(session, run_url, what="the GitHub workflow run", auth_hint=AUTH_HINT)
    approvals = parse_reviews(reviews, environment)
    requesters, authors = run_people(run)
    requesters = handles(*requesters, env.get("GITHUB_TRIGGERING_ACTOR"), env.get("GITHUB_ACTOR"))
    return ApprovalReport(
        SOURCE,
        approvals,
        None,
        requesters,
        authors,
        where=f"environment {environment}",
        details={"run_id": run_id, "repository": repository},
    )


def parse_reviews(reviews: Any, environment: str) -> tuple[Approval, ...]:
    if not isinstance(reviews, list):
        raise _unusable("the review history is not a list")
    approvals: list[Approval] = []
    for i, review in enumerate(reviews):
        if not isinstance(review, dict):
            raise _unusable(f"review {i} is not an object")
        envs = review.get("environments")
        names = {e.get("name") for e in envs if isinstance(e, dict)} if isinstance(envs, list) else set()
        if review.get("state") != "approved" or environment not in names:
            continue
        user = review.get("user")
        login = user.get("login") if isinstance(user, dict) else None
        if not isinstance(login, str) or not login:
            raise _unusable(f"approved review {i} names no user.login")
        user_id = user.get("id") if isinstance(user, dict) else None
        comment = review.get("comment")
        approvals.append(
            Approval(
                approver=login,
                approver_id=str(user_id) if isinstance(user_id, int) else login,
                comment=comment if isinstance(comment, str) else "",
                time=None,
                source=SOURCE,
                identities=handles(login, user_id if isinstance(user_id, int) else None),
            )
        )
    return tuple(approvals)


def run_people(run: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(who started the run, who authored its head commit) from a workflow-run document."""
    if not isinstance(run, dict):
        raise _unusable("the workflow run is not an object")
    requesters: list[object] = []
    for key in ("triggering_actor", "actor"):
        person = run.get(key)
        if isinstance(person, dict):
            requesters += [person.get("login"), person.get("id")]
    authors: list[object] = []
    commit = run.get("head_commit")
    author = commit.get("author") if isinstance(commit, dict) else None
    if isinstance(author, dict):
        email = author.get("email")
        authors += [author.get("name"), email]
        match = _NOREPLY.match(email) if isinstance(email, str) else None
        if match:
            authors.append(match.group(1))
    return handles(*requesters), handles(*authors)
