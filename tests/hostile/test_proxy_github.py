"""`mlgate record --platform github` reading approvals through a faulty proxy in front of the fake.

The spec-driven GitHub fake (tests/fakes/ci.py: the run's review history and the workflow run,
answers from GitHub's OpenAPI examples, validated) answers behind
:class:`tests.fakes.faultproxy.FaultProxy`. Every fault is exit 3 naming GitHub, records nothing
(no ledger entry, no tags, no alias) and never shows the token; a short 429 followed by success
records; an off-origin redirect's target never receives the token; a trickle is cut off by
``--deadline``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.ci import GH_TOKEN, FakeGitHub
from tests.fakes.faultproxy import FaultProxy, Rule
from tests.hostile.conftest import Recordable, ci_files
from tests.hostile.harness import check_output, run_in_process, run_process
from tests.integration.governed.helpers import alias_of, version_tags

pytestmark = pytest.mark.integration

REVIEWS = r"/actions/runs/[^/]+/approvals$"
RUN = r"/actions/runs/[^/]+$"
ENVIRONMENT = ("--environment", "staging")  # the environment GitHub's example review approved


@dataclass(frozen=True)
class Fault:
    id: str
    rule: Rule
    says: tuple[str, ...] = ()


def transport(short: str, path: str) -> list[Fault]:
    return [
        Fault(f"{short}-refuse", Rule("refuse", path=path)),
        Fault(f"{short}-503", Rule("5xx", path=path, status=503)),
        Fault(f"{short}-500", Rule("5xx", path=path, status=500)),
        Fault(f"{short}-429-forever", Rule("429", path=path, retry_after="0")),
        Fault(f"{short}-garbage", Rule("garbage", path=path)),
        Fault(f"{short}-redirect", Rule("redirect", path=path), says=("another origin",)),
        Fault(f"{short}-huge", Rule("huge", path=path, declare=True)),
        Fault(f"{short}-truncated", Rule("truncated", path=path)),
        Fault(f"{short}-deep", Rule("deep", path=path)),
        Fault(f"{short}-bignum", Rule("bignum", path=path)),
    ]


def typed(short: str, path: str, field: str, value: object) -> Fault:
    return Fault(f"{short}-{field}-{type(value).__name__}", Rule("wrong-typed", path=path, field=field, value=value),
                 says=(field.split(".")[-1].split("[")[0],))


CASES: list[Fault] = [
    *transport("reviews", REVIEWS),
    *transport("run", RUN),
    typed("reviews", REVIEWS, "[0]", "x"),
    typed("reviews", REVIEWS, "[0].state", True),
    typed("reviews", REVIEWS, "[0].user", "hubot"),
    typed("reviews", REVIEWS, "[0].user.login", 5),
    typed("reviews", REVIEWS, "[0].user.id", "two"),
    typed("reviews", REVIEWS, "[0].environments", "staging"),
    typed("reviews", REVIEWS, "[0].environments[0].name", ["staging"]),
    typed("reviews", REVIEWS, "[0].comment", {"x": 1}),
    typed("run", RUN, "actor", "octocat"),
    typed("run", RUN, "triggering_actor.login", 5),
    typed("run", RUN, "head_commit", "x"),
    typed("run", RUN, "head_commit.author.email", {"x": 1}),
    Fault("reviews-huge-chunked", Rule("huge", path=REVIEWS)),
    Fault("reviews-user-id-bignum", Rule("bignum", path=REVIEWS, field="[0].user.id")),
    Fault("run-deep-actor", Rule("deep", path=RUN, field="actor")),
]


def gh_env(github: FakeGitHub, proxy: FaultProxy, tmp: Path) -> dict[str, str]:
    return {**github.env(), "GITHUB_API_URL": proxy.url, **ci_files(tmp)}


@pytest.fixture(autouse=True)
def _another_reviewer(github: FakeGitHub) -> None:
    """GitHub's example reviewer is also the run's actor; a different reviewer makes the record valid."""
    github.reviews[0]["user"]["login"] = "hubot"
    github.reviews[0]["user"]["id"] = 2


def state(model: Recordable, mlflow_server: str) -> tuple[dict[str, str], str | None]:
    """What a record changes in MLflow: the version's tags and the production alias."""
    return version_tags(mlflow_server, model.name, model.version), alias_of(mlflow_server, model.name, "production")


def nothing_recorded(model: Recordable, mlflow_server: str, before: tuple[dict[str, str], str | None]) -> None:
    assert not Path(model.ledger.removeprefix("file:")).exists(), "a ledger entry was written"
    assert state(model, mlflow_server) == before, "tags or the alias changed"


def no_token_off_origin(proxy: FaultProxy) -> None:
    assert proxy.other is not None
    for hit in proxy.other.seen:
        assert GH_TOKEN not in (hit.authorization or ""), "the token was sent off-origin"


@pytest.mark.parametrize("fault", CASES, ids=lambda f: f.id)
def test_fault_is_exit_3(fault: Fault, github: FakeGitHub, github_proxy: FaultProxy, recordable: Recordable,
                         mlflow_server: str, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = state(recordable, mlflow_server)
    github_proxy.add(fault.rule)
    code, output = run_in_process(recordable.argv("github", *ENVIRONMENT), capsys, monkeypatch,
                                  env=gh_env(github, github_proxy, recordable.tmp))
    assert github_proxy.faulted(fault.rule.mode), f"{fault.id}: the fault was never injected"
    assert github_proxy.errors == []
    assert code == 3, f"{fault.id}: exit {code}, expected 3:\n{output}"
    check_output(output, canaries=(GH_TOKEN,), says=fault.says)
    named = "github" in output.lower() or github_proxy.origin in output  # the service, or its URL
    assert named, f"{fault.id}: the message names neither GitHub nor its URL:\n{output}"
    nothing_recorded(recordable, mlflow_server, before)
    no_token_off_origin(github_proxy)


def test_pass_through_records_the_reviewer(github: FakeGitHub, github_proxy: FaultProxy,
                                                  fresh_recordable: Recordable, mlflow_server: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run_in_process(fresh_recordable.argv("github", *ENVIRONMENT), capsys, monkeypatch,
                                  env=gh_env(github, github_proxy, fresh_recordable.tmp))
    assert code == 0, output
    check_output(output, canaries=(GH_TOKEN,))
    tags = version_tags(mlflow_server, fresh_recordable.name, fresh_recordable.version)
    assert tags["mlgate.approved_by"] == "hubot"
    assert len(github_proxy.seen) == 2 and not github_proxy.faulted()
    assert all(s.authorization == f"Bearer {GH_TOKEN}" for s in github_proxy.seen)


@pytest.mark.parametrize("path", [REVIEWS, RUN], ids=["reviews", "run"])
def test_short_429_then_success_records(path: str, github: FakeGitHub, github_proxy: FaultProxy,
                                        fresh_recordable: Recordable, mlflow_server: str,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    github_proxy.add(Rule("429", path=path, nth=1, retry_after="1"))
    started = time.monotonic()
    code, output = run_in_process(fresh_recordable.argv("github", *ENVIRONMENT), capsys, monkeypatch,
                                  env=gh_env(github, github_proxy, fresh_recordable.tmp))
    assert code == 0, output
    check_output(output, canaries=(GH_TOKEN,))
    assert len(github_proxy.faulted("429")) == 1
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    assert alias_of(mlflow_server, fresh_recordable.name, "production") == fresh_recordable.version


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_target_never_receives_the_job_token(status: int, github: FakeGitHub, github_proxy: FaultProxy,
                                                      recordable: Recordable, mlflow_server: str,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = state(recordable, mlflow_server)
    github_proxy.add(Rule("redirect", path=REVIEWS, status=status))
    code, output = run_in_process(recordable.argv("github", *ENVIRONMENT), capsys, monkeypatch,
                                  env=gh_env(github, github_proxy, recordable.tmp))
    assert code == 3, output
    check_output(output, canaries=(GH_TOKEN,), says=("another origin",))
    assert github_proxy.other is not None and github_proxy.other.seen == [], "the off-origin redirect was followed"
    nothing_recorded(recordable, mlflow_server, before)


@pytest.mark.parametrize("path", [REVIEWS], ids=["reviews"])
def test_trickle_is_cut_off_by_the_deadline(path: str, github: FakeGitHub, github_proxy: FaultProxy,
                                            recordable: Recordable, mlflow_server: str) -> None:
    before = state(recordable, mlflow_server)
    github_proxy.add(Rule("trickle", path=path, interval=0.5))
    started = time.monotonic()
    code, output = run_process([*recordable.argv("github", *ENVIRONMENT), "--deadline", "2"],
                               env=gh_env(github, github_proxy, recordable.tmp), timeout=60)
    elapsed = time.monotonic() - started
    assert github_proxy.faulted("trickle")
    assert code == 3, output
    check_output(output, canaries=(GH_TOKEN,), says=("deadline",))
    assert elapsed < 20, f"took {elapsed:.1f} s"
    nothing_recorded(recordable, mlflow_server, before)
