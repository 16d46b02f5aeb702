"""GET the JSON answers of a CI's approvals API, bounded in every direction; every failure is exit 3.

Requests go through :func:`mlgate.http.make_session` (timeouts, bounded retries, redirects
followed only to the same origin) with ``stream=True``, and bodies are read with
:func:`mlgate.http.read_json` (size and time caps, bounded JSON). Listing calls follow the
vendor's pagination at most :data:`MAX_PAGES` pages: GitHub's ``Link: <...>; rel="next"`` (only
to the origin of the first page) and Azure DevOps' ``x-ms-continuationtoken`` header; a next
link or token seen before is a loop and refused. Messages name the service, the status and the
limit, never the token or the body.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from mlgate.errors import EvaluationError, NetworkError

MAX_PAGES = 50
CONTINUATION_HEADER = "x-ms-continuationtoken"
CONTINUATION_PARAM = "continuationToken"
_NOTHING = "nothing was recorded"


def _get(
    session: requests.Session, url: str, *, what: str, auth_hint: str, params: Mapping[str, str] | None
) -> requests.Response:
    """``GET url`` (streamed) that answered 200; anything else raises, naming ``what`` and the status."""
    try:
        response = session.get(url, params=dict(params or {}), stream=True)
    except requests.RequestException as exc:
        raise NetworkError(
            f"could not reach {what}: {type(exc).__name__}",
            hint="check the network path to the CI service and re-run",
        ) from None
    if response.status_code == 200:
        return response
    response.close()
    if response.status_code in (401, 403):
        raise EvaluationError(f"{what} refused the request: HTTP {response.status_code}", hint=auth_hint)
    if response.status_code == 404:
        raise EvaluationError(
            f"{what} not found: HTTP 404",
            hint="check that this step runs inside the run whose approval is read",
        )
    raise NetworkError(
        f"{what} answered HTTP {response.status_code}",
        hint="the service may be degraded (or redirected without a location); re-run the step",
    )


def get_json(
    session: requests.Session, url: str, *, what: str, auth_hint: str, params: Mapping[str, str] | None = None
) -> Any:
    """The bounded JSON body of ``GET url``; raise :class:`NetworkError`/:class:`EvaluationError` otherwise."""
    from mlgate.http import read_json

    return read_json(_get(session, url, what=what, auth_hint=auth_hint, params=params), what=what)


def _next_link(response: requests.Response, first: str, what: str) -> str | None:
    from mlgate.http import same_origin
    from mlgate.urls import safe_url

    target = response.links.get("next", {}).get("url")
    if not target:
        return None
    if not same_origin(first, target):
        raise NetworkError(
            f"{what}: the next page is on another origin ({safe_url(target)}); it was not followed",
            hint="point mlgate at the CI service's API itself (not a proxy that pages elsewhere); " + _NOTHING,
        )
    return target


def get_pages(
    session: requests.Session,
    url: str,
    *,
    what: str,
    auth_hint: str,
    params: Mapping[str, str] | None = None,
    max_pages: int = MAX_PAGES,
) -> Iterator[Any]:
    """The bounded JSON body of every page of ``GET url``, following next links and continuation tokens."""
    from mlgate.http import read_json

    seen: set[str] = set()
    query = dict(params or {})
    for page in range(1, max_pages + 1):
        response = _get(session, url, what=what, auth_hint=auth_hint, params=query)
        token = response.headers.get(CONTINUATION_HEADER, "").strip()
        link = _next_link(response, url, what)
        yield read_json(response, what=what if page == 1 else f"{what} (page {page})")
        following = link or token
        if not following:
            return
        if following in seen:
            raise NetworkError(
                f"{what}: page {page} points back to a page already read (a pagination loop); stopped",
                hint="the service's pagination repeats itself; re-run later; " + _NOTHING,
            )
        seen.add(following)
        if link:
            url, query = link, {}
        else:
            query = {**(params or {}), CONTINUATION_PARAM: token}
    raise NetworkError(
        f"{what}: more than {max_pages} pages (limit); stopped",
        hint="the service paginates without end; re-run later or check the API address; " + _NOTHING,
    )
