"""GitHub Actions: the named reviewers who approved this run's deployment environment.

``GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals`` (the run's review history:
``user.login``, ``comment``, ``state``, ``environments``) and ``GET .../actions/runs/{run_id}``
(``triggering_actor``, ``actor``, ``head_commit.author``). PyGithub 2.x has no call for the
review history, so both are plain REST with ``requests`` and the job's ``GITHUB_TOKEN``
(``actions: read``); the review history's pages are followed by ``Link: rel="next"`` (same
origin only, bounded). Both answers are parsed once into typed records, every field's type
checked (exit 3 naming the field). The review history carries no timestamp; ``time`` is left empty and the
ledger entry's own time says when it was read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mlgate import redact
from mlgate.approvals import Approval, ApprovalReport, handles
from mlgate.errors import NetworkError, UsageError
from mlgate.jsonvalue import Fields, kind_of

SOURCE = "github"
DEFAULT_API = "https://api.github.com"
REVIEWS = "the GitHub run review history"
RUN = "the GitHub workflow run"
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


@dataclass(frozen=True)
class Review:
    """One entry of the run's review history (``environment-approvals``)."""

    state: str
    environments: tuple[str, ...]
    login: str
    user_id: int | None
    comment: str

    @classmethod
    def parse(cls, f: Fields) -> Review:
        user = f.obj("user")
        names = tuple(name for e in f.objs("environments") if (name := e.opt_text("name")))
        return cls(f.text("state"), names, user.text("login"), user.opt_integer("id"), f.opt_text("comment", "") or "")


@dataclass(frozen=True)
class RunPeople:
    """Who started the workflow run and who authored its head commit (``workflow-run``)."""

    requesters: tuple[str, ...]
    authors: tuple[str, ...]

    @classmethod
    def parse(cls, f: Fields) -> RunPeople:
        requesters: list[object] = []
        for key in ("triggering_actor", "actor"):
            person = f.opt_obj(key)
            requesters += [person.opt_text("login"), person.opt_integer("id")]
        author = f.opt_obj("head_commit").opt_obj("author")
        email = author.opt_text("email")
        match = _NOREPLY.match(email) if email else None
        authors = [author.opt_text("name"), email, match.group(1) if match else None]
        return cls(handles(*requesters), handles(*authors))


def read_approvals(env: Mapping[str, str], *, environment: str) -> ApprovalReport:
    """Read who approved deployment to ``environment`` in run ``GITHUB_RUN_ID``."""
    from mlgate.approvals._http import get_json, get_pages
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
    reviews = [review for page in get_pages(session, f"{run_url}/approvals", what=REVIEWS, auth_hint=AUTH_HINT)
               for review in parse_reviews(page)]
    people = RunPeople.parse(Fields(get_json(session, run_url, what=RUN, auth_hint=AUTH_HINT), RUN))
    requesters = handles(*people.requesters, env.get("GITHUB_TRIGGERING_ACTOR"), env.get("GITHUB_ACTOR"))
    return ApprovalReport(SOURCE, approvals_for(reviews, environment), None, requesters, people.authors,
                          where=f"environment {environment}")


def parse_reviews(body: Any) -> list[Review]:
    """One page of the review history (a list of ``environment-approvals``)."""
    if not isinstance(body, list):
        raise NetworkError(f"{REVIEWS}: expected a list of reviews, got {kind_of(body)}",
                           hint="the GitHub API answered an unknown shape; nothing was recorded")
    return [Review.parse(Fields(item, REVIEWS, path=f"[{i}]")) for i, item in enumerate(body)]


def approvals_for(reviews: list[Review], environment: str) -> tuple[Approval, ...]:
    """The approved reviews of ``environment``."""
    return tuple(
        Approval(
            approver=r.login,
            approver_id=str(r.user_id) if r.user_id is not None else r.login,
            comment=r.comment,
            time=None,
            source=SOURCE,
            identities=handles(r.login, r.user_id),
        )
        for r in reviews
        if r.state == "approved" and environment in r.environments
    )
