"""Azure DevOps adapter: ##vso escaping, secret variables, issues, complete, summary, context."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate import redact
from mlgate.errors import EvaluationError, UsageError
from mlgate.platforms import azure_devops as ado
from mlgate.platforms import base, detect_platform
from mlgate.platforms.azure_devops import AzureDevOps, escape_data, escape_property, logging_command


def unescape_property(value: str) -> str:
    """The agent's unescaping (inverse order of escaping)."""
    for raw, esc in (("]", "%5D"), (";", "%3B"), ("\n", "%0A"), ("\r", "%0D"), ("%", "%AZP25")):
        value = value.replace(esc, raw)
    return value


def test_escape_data_rules() -> None:
    assert escape_data("a%b\rc\nd];") == "a%AZP25b%0Dc%0Ad];"
    assert escape_data("%0A") == "%AZP250A"


def test_escape_property_rules() -> None:
    assert escape_property("a%b\rc\nd]e;f") == "a%AZP25b%0Dc%0Ad%5De%3Bf"


@pytest.mark.parametrize("value", ["plain", "x;issecret=false]", "%0A%AZP25", "a\r\nb]", "100%;]%5D"])
def test_property_escaping_round_trips(value: str) -> None:
    assert unescape_property(escape_property(value)) == value


def test_logging_command_shape() -> None:
    assert logging_command("task.setvariable", "v;]x\n", {"variable": "A", "issecret": "true"}) == (
        "##vso[task.setvariable variable=A;issecret=true;]v;]x%0A"
    )
    assert logging_command("task.setsecret", "s") == "##vso[task.setsecret]s"


def test_mask_uses_setsecret_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({})
    p.mask("a%1\nb2")
    p.mask("b2")
    assert capsys.readouterr().out.splitlines() == [
        "##vso[task.setsecret]a%AZP251%0Ab2",
        "##vso[task.setsecret]a%AZP251",
        "##vso[task.setsecret]b2",
    ]


def test_secret_variable_masked_first_then_set(capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({})
    p.set_env("DB_PASSWORD", "pa;ss]word")
    p.set_output("TOKEN", "tok\nen", secret=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "##vso[task.setvariable variable=DB_PASSWORD;issecret=false;isOutput=false;]pa;ss]word"
    assert lines[1:4] == ["##vso[task.setsecret]tok%0Aen", "##vso[task.setsecret]tok",
                          "##vso[task.setsecret]en"]
    assert lines[4] == "##vso[task.setvariable variable=TOKEN;issecret=true;isOutput=true;]tok%0Aen"


def test_plain_variable_is_redacted_if_it_carries_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    redact.register("hunter2")
    AzureDevOps({}).set_env("URL", "https://u:hunter2@host")
    assert "hunter2" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["", "a b", "a]b", "a;b", "a-b", "secretThing", "INPUT_X", "endpoint.url",
                                  "Path2", "securefile_x"])
def test_invalid_or_reserved_variable_names(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError):
        AzureDevOps({}).set_env(name, "v", secret=True)
    assert capsys.readouterr().out == ""


def test_logissue_and_notice(capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({})
    redact.register("hunter2")
    p.annotate("error", "bad hunter2\nnext", file="a;b].py", line=3)
    p.annotate("warning", "w")
    p.annotate("notice", "note ##vso[task.setvariable variable=X]y")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "##vso[task.logissue type=error;sourcepath=a%3Bb%5D.py;linenumber=3;]bad ***%0Anext"
    assert lines[1] == "##vso[task.logissue type=warning;]w"
    assert "##vso[" not in lines[2] and lines[2].startswith("note ")


def test_complete_and_fail(capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({})
    p.complete("SucceededWithIssues", "done")
    p.fail("it broke; badly]")
    assert capsys.readouterr().out.splitlines() == [
        "##vso[task.complete result=SucceededWithIssues;]done",
        "##vso[task.logissue type=error;]it broke; badly]",
        "##vso[task.complete result=Failed;]it broke; badly]",
    ]
    with pytest.raises(ValueError):
        p.complete("Maybe")


def test_uploadsummary_writes_file_under_agent_temp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({"AGENT_TEMPDIRECTORY": str(tmp_path)})
    redact.register("topsecret")
    p.summary("# verdict\ntopsecret")
    line = capsys.readouterr().out.strip()
    assert line.startswith("##vso[task.uploadsummary]")
    path = Path(line.removeprefix("##vso[task.uploadsummary]"))
    assert path.parent == tmp_path
    assert path.read_text() == "# verdict\n***"
    assert list(tmp_path.iterdir()) == [path]


def test_uploadsummary_truncates_at_1mib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = AzureDevOps({"AGENT_TEMPDIRECTORY": str(tmp_path)})
    p.summary("a" * (base.SUMMARY_LIMIT + 10))
    (path,) = tmp_path.iterdir()
    data = path.read_bytes()
    assert len(data) <= base.SUMMARY_LIMIT
    assert data.decode().endswith(ado.TRUNCATED_NOTE)


def test_summary_without_agent_temp_fails_closed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EvaluationError, match="AGENT_TEMPDIRECTORY"):
        AzureDevOps({}).summary("x")
    assert capsys.readouterr().out == ""


def test_context_from_documented_variables() -> None:
    env = {
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/contoso/",
        "SYSTEM_TEAMPROJECT": "ML Platform",
        "BUILD_BUILDID": "1234",
        "BUILD_SOURCEVERSION": "deadbeef",
        "BUILD_REQUESTEDFOR": "Dana Example",
        "BUILD_REQUESTEDFOREMAIL": "dana@example.com",
        "BUILD_REQUESTEDFORID": "0000-1111",
        "BUILD_REPOSITORY_NAME": "models",
    }
    ctx = AzureDevOps(env).context()
    assert ctx.platform == "azure-devops"
    assert ctx.run_url == "https://dev.azure.com/contoso/ML%20Platform/_build/results?buildId=1234"
    assert ctx.run_id == "1234"
    assert ctx.commit == "deadbeef"
    assert ctx.requester == "dana@example.com"
    assert ctx.repository == "models"
    assert ctx.extra["requested_for"] == "Dana Example"
    assert ctx.extra["requested_for_id"] == "0000-1111"


def test_context_requester_falls_back_to_display_name() -> None:
    ctx = AzureDevOps({"BUILD_REQUESTEDFOR": "Dana Example"}).context()
    assert ctx.requester == "Dana Example"
    assert ctx.run_url is None


def test_detection() -> None:
    assert isinstance(detect_platform("auto", {"TF_BUILD": "True"}), AzureDevOps)
    assert isinstance(detect_platform("azure-devops", {"GITHUB_ACTIONS": "true"}), AzureDevOps)
    assert detect_platform("auto", {}).name == "local"
