from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from mlgate import redact
from mlgate.service import logs
from mlgate.service.azure_devops_check import allowed_plan_url, authenticate
from mlgate.service.evaluation import Verdict
from mlgate.service.github_protection_rule import callback_under, comment_for, sign, signature_valid
from mlgate.service.http_types import Request
from mlgate.service.worker import Dispatcher, ReplayGuard


def test_signature_matches_githubs_documented_example() -> None:
    # GitHub's webhook docs: secret "It's a Secret to Everybody", payload "Hello, World!"
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(secret, body) == expected
    assert signature_valid(secret, body, expected)
    assert not signature_valid(secret, body + b" ", expected)
    assert not signature_valid(secret, body, None)
    assert not signature_valid(secret, body, expected.replace("sha256=", "sha1="))
    assert not signature_valid(secret, body, "sha256=\u00e9")


def _request(**headers: str) -> Request:
    return Request("POST", "/azure-devops/check", {k.lower(): v for k, v in headers.items()}, b"{}")


def test_shared_key_as_basic_password_or_header() -> None:
    basic = "Basic " + base64.b64encode(b"anyone:s3cret").decode()
    assert authenticate(_request(Authorization=basic), "s3cret")
    assert authenticate(_request(**{"X-Mlgate-Key": "s3cret"}), "s3cret")
    assert not authenticate(_request(Authorization=basic), "other")
    assert not authenticate(_request(**{"X-Mlgate-Key": "s3cre"}), "s3cret")
    assert not authenticate(_request(), "s3cret")
    assert not authenticate(_request(Authorization="Basic ***"), "s3cret")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://dev.azure.com/fabrikam/", True),
        ("https://fabrikam.visualstudio.com/", True),
        ("http://dev.azure.com/fabrikam/", False),  # the token never travels in clear text
        ("https://dev.azure.com.attacker.example/", False),
        ("https://evil.example/", False),
        ("file:///etc/passwd", False),
        # requests/urllib3 connect to evil.example for these; urlsplit says dev.azure.com
        ("https://evil.example\\@dev.azure.com/org", False),
        ("https://evil.example\\dev.azure.com/org", False),
        ("https://user:pass@dev.azure.com/org", False),
        ("https://evil.example@dev.azure.com/org", False),
        ("https://dev.azure.com@evil.example/org", False),
        ("https://dev%2eazure.com/org", False),
        ("https://%64ev.azure.com/org", False),
        ("HTTPS://dev.azure.com/org", False),
        ("hTTps://dev.azure.com/org", False),
        ("https://dev.azure.com:443:80/org", False),
        ("https://dev.azure.com:0x1bb/org", False),
        ("https://dev.azure.com:99999/org", False),
        ("https://dev.azure.com: 443/org", False),
        ("https://dev.azure.com:/org", False),
        ("https://dev.azure.com:443/org", True),
        ("https://dev.azure.com /org", False),
        ("https://dev.azure.com\t.evil.example/org", False),
        ("https://dev.azure.com/org\r\nX-Injected: 1", False),
        ("https://dev.azure.com/org?x=1", False),
        ("https://dev.azure.com/org#frag", False),
        ("https://dev.azure.com/org/../other", False),
        ("https://dev.azure.com/org/%2e%2e/other", False),
        ("https://dev.azure.com\u3002evil.example/org", False),
        (" https://dev.azure.com/org", False),
        ("https://[::1]/org", False),
    ],
)
def test_plan_url_allow_list(url: str, allowed: bool) -> None:
    assert (allowed_plan_url(url, ("dev.azure.com", "*.visualstudio.com")) is not None) is allowed


@pytest.mark.parametrize(
    ("url", "rebuilt"),
    [
        ("https://dev.azure.com/fabrikam/", "https://dev.azure.com/fabrikam"),
        ("https://Fabrikam.VisualStudio.com", "https://fabrikam.visualstudio.com"),
        ("https://dev.azure.com:8443/fabrikam", "https://dev.azure.com:8443/fabrikam"),
        ("http://127.0.0.1:8080/org", "http://127.0.0.1:8080/org"),
        ("https://evil.example\\@dev.azure.com/org", None),
    ],
)
def test_plan_calls_go_to_the_url_rebuilt_from_its_parsed_parts(url: str, rebuilt: str | None) -> None:
    allowed = ("dev.azure.com", "*.visualstudio.com", "127.0.0.1")
    assert allowed_plan_url(url, allowed) == rebuilt


@pytest.mark.parametrize(
    ("url", "rebuilt"),
    [
        ("https://api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule", True),
        ("https://api.github.com:443/repos/o/r/actions/runs/1/deployment_protection_rule", True),
        ("https://evil.example\\@api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule", False),
        ("https://x@api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule", False),
        ("https://api.github.com/repos/%2e%2e/app/installations", False),
        ("https://api.github.com/repos/o/r/../../../app", False),
        ("https://api.github.com/repos/o/r\\..\\..\\app", False),
        ("https://api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule?x=1", False),
        ("https://api.github.com:8443/repos/o/r/actions/runs/1/deployment_protection_rule", False),
        ("HTTPS://api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule", False),
        ("http://api.github.com/repos/o/r/actions/runs/1/deployment_protection_rule", False),
        ("https://api.github.com/user", False),
    ],
)
def test_github_callback_url_must_be_plain_and_under_the_api(url: str, rebuilt: bool) -> None:
    expected = url if rebuilt else None
    assert callback_under(url, "https://api.github.com") == expected


def test_github_callback_url_under_an_enterprise_api_path() -> None:
    base = "https://ghe.example.com/api/v3/"
    callback = "https://ghe.example.com/api/v3/repos/o/r/actions/runs/7/deployment_protection_rule"
    assert callback_under(callback, base) == callback
    assert callback_under("https://ghe.example.com/repos/o/r/actions/runs/7/deployment_protection_rule", base) is None
    # under the API but not the documented callback: the installation token never goes there
    assert callback_under("https://ghe.example.com/api/v3/repos/o/r/x", base) is None
    assert callback_under("https://ghe.example.com/api/v3/repos/o/r/actions/runs/7/approvals", base) is None


def test_replay_guard_expires_and_is_bounded() -> None:
    now = [0.0]
    guard = ReplayGuard(ttl=10, max_entries=2, clock=lambda: now[0])
    assert guard.first_time("a")
    assert not guard.first_time("a")
    now[0] = 11
    assert guard.first_time("a")  # expired, accepted again
    assert guard.first_time("b")
    assert guard.first_time("c")  # evicts the oldest
    assert len(guard) == 2
    guard.forget("c")
    assert guard.first_time("c")


def test_dispatcher_is_bounded_and_survives_crashing_jobs() -> None:
    import threading

    release = threading.Event()
    dispatcher = Dispatcher(workers=1, max_pending=2)
    assert dispatcher.submit("a", release.wait)
    assert dispatcher.submit("b", lambda: None)
    assert not dispatcher.submit("c", lambda: None)  # full: the caller answers 503 at once
    release.set()
    assert dispatcher.wait_idle(5)

    def crash() -> None:
        raise RuntimeError("boom")

    assert dispatcher.submit("crash", crash)
    assert dispatcher.wait_idle(5)
    assert dispatcher.submit("after", lambda: None)
    dispatcher.shutdown()


def test_comment_keeps_the_verdict_and_fits_the_limit() -> None:
    verdict = Verdict(
        "models:/m/1",
        False,
        "mlgate gate refused models:/m/1",
        "1 rule failed",
        ("metrics.auc: too low",),
        "x" * 5000,
        "e" * 64,
        "https://svc/evidence/" + "e" * 64 + ".md",
    )
    comment = comment_for(verdict, limit=1000)
    assert len(comment) <= 1000
    assert comment.startswith("### mlgate: **refused** `models:/m/1`")
    assert "- metrics.auc: too low" in comment
    assert comment.endswith(f"[full evidence](https://svc/evidence/{'e' * 64}.md)")
    assert len(comment_for(verdict, limit=100)) <= 100
    assert comment_for(verdict, limit=100_000).endswith("x" * 5000)


def test_json_logs_are_redacted() -> None:
    stream = io.StringIO()
    handler = logs.configure(stream)
    try:
        redact.register("canary-secret-value")
        logs.log_event(logging.INFO, "request", path="/x", note="had canary-secret-value inside")
        line = json.loads(stream.getvalue())
        assert line["event"] == "request"
        assert line["path"] == "/x"
        assert "canary-secret-value" not in stream.getvalue()
    finally:
        logging.getLogger(logs.LOGGER_NAME).removeHandler(handler)


@pytest.mark.parametrize(
    ("url", "organizations", "rebuilt"),
    [
        ("https://dev.azure.com/fabrikam/", (), "https://dev.azure.com/fabrikam"),
        ("https://dev.azure.com/fabrikam/_apis/projects", (), None),  # an API route, not an organisation
        ("https://dev.azure.com/a/b/c/d", (), None),  # deeper than any organisation or collection URL
        ("https://server.example/tfs/DefaultCollection", (), "https://server.example/tfs/DefaultCollection"),
        ("https://dev.azure.com/Fabrikam", ("https://dev.azure.com/fabrikam",), "https://dev.azure.com/Fabrikam"),
        ("https://dev.azure.com/contoso", ("https://dev.azure.com/fabrikam",), None),
    ],
)
def test_plan_url_is_an_organisation_url(url: str, organizations: tuple[str, ...], rebuilt: str | None) -> None:
    allowed = ("dev.azure.com", "server.example")
    assert allowed_plan_url(url, allowed, organizations) == rebuilt


def test_an_evaluator_result_that_is_not_a_gate_result_fails_closed() -> None:
    from mlgate.platforms.base import CIContext
    from mlgate.policy.loader import parse_policy
    from mlgate.refs import ModelRef
    from mlgate.service.evaluation import GateCall, GateResult, run_gate

    policy = parse_policy("version: 1\nrisk_classes:\n  low: {}\n", source="p.yaml")
    call = GateCall(ModelRef("m", version="1"), "production", None, CIContext(platform="github"))

    def duck(ref: object, **kwargs: object) -> object:
        return type("Outcome", (), {"passed": True, "failed_rules": []})()

    def contradictory(ref: object, **kwargs: object) -> GateResult:
        return GateResult(True, "a" * 64, "{}", "md", failed_rules=("metrics.auc",))

    for evaluator in (duck, contradictory):
        verdict = run_gate(evaluator, policy, call, None)  # type: ignore[arg-type]
        assert verdict.passed is False
