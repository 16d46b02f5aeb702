"""GET a JSON document with a timeout and bounded retries; every failure is a clear exit 3."""

from __future__ import annotations

from typing import Any

import requests

from mlgate.errors import EvaluationError, NetworkError


def get_json(
    session: requests.Session, url: str, *, what: str, auth_hint: str, params: dict[str, str] | None = None
) -> Any:
    """The JSON body of ``GET url``; raise :class:`NetworkError`/:class:`EvaluationError` otherwise.

    Messages name the service and status, never the token or the full response.
    """
    try:
        response = session.get(url, params=params)
    except requests.RequestException as exc:
        raise NetworkError(
            f"could not reach {what}: {type(exc).__name__}",
            hint="check the network path to the CI service and re-run",
        ) from None
    if response.status_code in (401, 403):
        raise EvaluationError(f"{what} refused the request: HTTP {response.status_code}", hint=auth_hint)
    if response.status_code == 404:
        raise EvaluationError(
            f"{what} not found: HTTP 404",
            hint="check that this step runs inside the run whose approval is read",
        )
    if response.status_code != 200:
        raise NetworkError(
            f"{what} answered HTTP {response.status_code}",
            hint="the service may be degraded; re-run the step",
        )
    try:
        return response.json()
    except ValueError:
        raise NetworkError(
            f"{what} answered something that is not JSON",
            hint="check the service URL; a proxy or sign-in page may be in the way",
        ) from None
