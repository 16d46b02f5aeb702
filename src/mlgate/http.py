"""``requests`` sessions with timeouts and bounded retries on 429/5xx honouring Retry-After."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from mlgate import __version__

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TimeoutSession(requests.Session):
    """A Session whose every request has a timeout, unless the caller gives one."""

    def __init__(self, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def make_session(
    *,
    total_retries: int = 4,
    backoff_factor: float = 0.5,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retry_methods: frozenset[str] | None = None,
) -> requests.Session:
    """A session retrying 429/5xx a bounded number of times, honouring ``Retry-After``.

    POSTs are retried too by default: MLflow's write calls used here (set tag, set alias)
    are idempotent. Pass ``retry_methods`` to narrow it.
    """
    retry = Retry(
        total=total_retries,
        connect=total_retries,
        read=2,
        status=total_retries,
        backoff_factor=backoff_factor,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=retry_methods or frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"mlgate/{__version__}"
    return session
