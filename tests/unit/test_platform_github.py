"""GitHub Actions adapter: workflow-command escaping, masking, file commands, summary, context."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate import redact
from mlgate.errors import EvaluationError, UsageError
from mlgate.platforms import base, detect_platform
from mlgate.platforms import github as gh
from mlgate.platforms.github import GitHubActions, escape_data, escape_property, heredoc, workflow_command


@pytest.fixture
def runner(tmp_path: Path) -> dict[str, str]:
    files = {}
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"):
        path = tmp_path / var.lower()
        path.write_text("")
        files[var] = str(path)
    return {"GITHUB_ACTIONS": "true", **files}


def parse_file_command(text: str) -> dict[str, str]:
    """Parse NAME<<DELIM heredocs the way the runner does."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        name, _, delim = line.partition("<<")
        value_lines = []
        i += 1
        while lines[i] != delim:
            value_lines.append(lines[i])
            i += 1
        result[name] = "\n".join(value_lines)
        i += 1
    return result


def test_escape_data_rules() -> None:
    assert escape_data("a%b\rc\nd") == "a%25b%0Dc%0Ad"
    # % first, so an already escaped-looking value round-trips
    assert escape_data("%0A") == "%250A"
    # data keeps : and ,
    assert escape_data("x:y,z") == "x:y,z"


def test_escape_property_rules() -> None:
    assert escape_property("a%b\rc\nd:e,f") == "a%25b%0Dc%0Ad%3Ae%2Cf"


def test_workflow_command_escapes_properties_and_message() -> None:
    line = workflow_command("error", "bad\nthing: 100%", {"file": "a,b:c.py", "line": "3"})
    assert line == "::error file=a%2Cb%3Ac.py,line=3::bad%0Athing: 100%25"
    assert workflow_command("add-mask", "v") == "::add-mask::v"


def test_mask_prints_add_mask_for_value_and_each_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    p = GitHubActions({})
    p.mask("line1\nline%2")
    p.mask("line1\nline%2")  # not repeated
    out = capsys.readouterr().out.splitlines()
    assert out == ["::add-mask::line1%0Aline%252", "::add-mask::line1", "::add-mask::line%252"]
    assert redact.redact("x line1 y") == "x *** y"


def test_set_output_heredoc_and_secret_masked_first(runner: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    p = GitHubActions(runner)
    p.set_output("plain", "hello")
    p.set_output("token", "s3cr3t\nline2", secret=True)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "::add-mask::s3cr3t%0Aline2"
    assert "::add-mask::s3cr3t" in out.splitlines()
    text = Path(runner["GITHUB_OUTPUT"]).read_text()
    assert parse_file_command(text) == {"plain": "hello", "token": "s3cr3t\nline2"}
    assert text.startswith("plain<<ghadelimiter_")


def test_set_env_heredoc(runner: dict[str, str]) -> None:
    p = GitHubActions(runner)
    p.set_env("DB_PASSWORD", "x=y\nEVIL=1", secret=True)
    assert parse_file_command(Path(runner["GITHUB_ENV"]).read_text()) == {"DB_PASSWORD": "x=y\nEVIL=1"}


def test_heredoc_delimiter_is_random_and_unique() -> None:
    a = heredoc("N", "v")
    b = heredoc("N", "v")
    assert a.split("\n")[0] != b.split("\n")[0]


def test_heredoc_delimiter_never_occurs_in_value() -> None:
    fixed = iter(["EOF", "EOF", "OTHER"])
    entry = heredoc("N", "a\nEOF\nINJECTED=1", lambda: next(fixed))
    assert entry == "N<<OTHER\na\nEOF\nINJECTED=1\nOTHER\n"
    with pytest.raises(EvaluationError):
        heredoc("N", "EOF", lambda: "EOF")


def test_heredoc_delimiter_never_occurs_in_name() -> None:
    fixed = iter(["N", "D"])
    assert heredoc("N", "v", lambda: next(fixed)) == "N<<D\nv\nD\n"


def test_file_command_without_runner_file_fails_closed() -> None:
    p = GitHubActions({"GITHUB_ACTIONS": "true"})
    with pytest.raises(EvaluationError, match=r"\$GITHUB_OUTPUT is not set"):
        p.set_output("a", "b")
    with pytest.raises(EvaluationError, match=r"\$GITHUB_ENV is not set"):
        p.set_env("A", "b")
    with pytest.raises(EvaluationError, match=r"\$GITHUB_STEP_SUMMARY is not set"):
        p.summary("x")


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a<<b", "a\nb", "a=b"])
def test_invalid_names_rejected(runner: dict[str, str], name: str) -> None:
    p = GitHubActions(runner)
    with pytest.raises(UsageError):
        p.set_output(name, "v")
    with pytest.raises(UsageError):
        p.set_env(name, "v")
    assert Path(runner["GITHUB_OUTPUT"]).read_text() == ""


def test_env_name_with_dash_and_node_options_rejected(runner: dict[str, str]) -> None:
    p = GitHubActions(runner)
    with pytest.raises(UsageError):
        p.set_env("db-password", "v")
    with pytest.raises(UsageError, match="NODE_OPTIONS"):
        p.set_env("NODE_OPTIONS", "--require x")


def test_annotate_levels_and_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    p = GitHubActions({})
    redact.register("hunter2")
    p.annotate("error", "failed with hunter2\nsecond", file="src/a,b.py", line=7)
    p.annotate("warning", "w")
    p.annotate("notice", "n", file="f.py")
    assert capsys.readouterr().out.splitlines() == [
        "::error file=src/a%2Cb.py,line=7::failed with ***%0Asecond",
        "::warning::w",
        "::notice file=f.py::n",
    ]


def test_summary_appends_and_redacts(runner: dict[str, str]) -> None:
    p = GitHubActions(runner)
    redact.register("topsecret")
    p.summary("# one")
    p.summary("two topsecret\n")
    assert Path(runner["GITHUB_STEP_SUMMARY"]).read_text() == "# one\ntwo ***\n"


def test_summary_truncated_with_note_at_1mib(runner: dict[str, str]) -> None:
    p = GitHubActions(runner)
    path = Path(runner["GITHUB_STEP_SUMMARY"])
    path.write_text("x" * 1000)
    p.summary("é" * (base.SUMMARY_LIMIT))  # 2 MiB of two-byte characters
    data = path.read_bytes()
    assert len(data) <= base.SUMMARY_LIMIT
    text = data.decode("utf-8")  # not split inside a character
    assert text.endswith(gh.TRUNCATED_NOTE)
    assert "1 MiB" in text


def test_summary_when_full_warns_instead_of_failing(runner: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    p = GitHubActions(runner)
    path = Path(runner["GITHUB_STEP_SUMMARY"])
    path.write_text("x" * base.SUMMARY_LIMIT)
    p.summary("more")
    assert path.stat().st_size == base.SUMMARY_LIMIT
    assert capsys.readouterr().out.startswith("::warning::the job summary is full")


def test_summary_that_fits_is_untouched(runner: dict[str, str]) -> None:
    p = GitHubActions(runner)
    p.summary("a" * 1000)
    assert Path(runner["GITHUB_STEP_SUMMARY"]).read_text() == "a" * 1000 + "\n"


def test_context_from_documented_variables() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "octo/repo",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SHA": "abc123",
        "GITHUB_ACTOR": "alice-bot",
        "GITHUB_TRIGGERING_ACTOR": "bob",
    }
    ctx = GitHubActions(env).context()
    assert ctx.platform == "github"
    assert ctx.run_url == "https://github.example/octo/repo/actions/runs/42"
    assert ctx.run_id == "42"
    assert ctx.commit == "abc123"
    assert ctx.requester == "bob"
    assert ctx.repository == "octo/repo"
    assert ctx.extra["actor"] == "alice-bot"
    assert ctx.extra["run_attempt"] == "2"


def test_context_falls_back_to_actor_and_tolerates_missing() -> None:
    ctx = GitHubActions({"GITHUB_ACTOR": "carol"}).context()
    assert ctx.requester == "carol"
    assert ctx.run_url is None
    assert ctx.commit is None


def test_detection() -> None:
    assert detect_platform("auto", {"GITHUB_ACTIONS": "true"}).name == "github"
    assert detect_platform("github", {}).name == "github"
    assert isinstance(detect_platform("auto", {"GITHUB_ACTIONS": "true"}), GitHubActions)


def test_truncate_utf8_edges() -> None:
    assert base.truncate_utf8("abc", 3, "!") == "abc"
    assert base.truncate_utf8("abcd", 3, "!") == "ab!"
    assert base.truncate_utf8("abcd", 0, "!") == ""
    for n in range(1, 8):
        assert len(base.truncate_utf8("éééé", n, "").encode()) <= n
