"""GitHub Actions: workflow commands on stdout and the runner's file commands.

* Workflow commands (``::add-mask::``, ``::error ...::``) are lines on stdout. Their data is
  escaped ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``; property values also escape
  ``:`` -> ``%3A`` and ``,`` -> ``%2C`` (the rules of ``@actions/core``).
* Outputs and environment variables go to the files named by ``$GITHUB_OUTPUT`` and
  ``$GITHUB_ENV`` as ``NAME<<DELIMITER`` heredocs. The delimiter is random and checked not to
  occur in the name or the value, so a value cannot end the heredoc early and inject a variable.
* The summary is appended to ``$GITHUB_STEP_SUMMARY`` within its 1 MiB limit.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mlgate.errors import EvaluationError, UsageError
from mlgate.platforms.base import SUMMARY_LIMIT, CIContext, Level, Platform, truncate_utf8

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalReport, ApprovalRequest
from mlgate.redact import redact

OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The runner refuses these in $GITHUB_ENV; say so before it does.
FORBIDDEN_ENV = frozenset({"NODE_OPTIONS"})
TRUNCATED_NOTE = (
    "\n\n> **Note:** this summary was truncated by mlgate to stay within GitHub's 1 MiB "
    "step-summary limit; the full text is in the step log or the evidence files.\n"
)


def escape_data(value: str) -> str:
    """Escape the message part of a workflow command."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a property value of a workflow command (``key=value`` before ``::``)."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, properties: Mapping[str, str] | None = None) -> str:
    """``::command k=v,k=v::message`` with every part escaped."""
    props = ",".join(f"{key}={escape_property(val)}" for key, val in (properties or {}).items() if val != "")
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def _new_delimiter() -> str:
    import uuid

    return f"ghadelimiter_{uuid.uuid4()}"


def heredoc(name: str, value: str, delimiter_factory: Callable[[], str] = _new_delimiter) -> str:
    """One ``NAME<<DELIM`` entry of a GitHub file command, with a delimiter absent from name and value."""
    for _ in range(8):
        delimiter = delimiter_factory()
        if delimiter not in name and delimiter not in value:
            return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    raise EvaluationError(
        f"could not choose a heredoc delimiter absent from the value of {name}",
        hint="this should not happen with random delimiters; report it as a bug",
    )


def _write_stdout_raw(line: str) -> None:
    """Write a workflow command unredacted (``::add-mask::`` must carry the value itself)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class GitHubActions(Platform):
    name = "github"
    title = "a GitHub Actions run"
    marker = "GITHUB_ACTIONS"
    default_identity = "github-oidc"
    secrets_to = "output"

    # -- masking -------------------------------------------------------------------------------
    def _emit_mask(self, value: str) -> None:
        _write_stdout_raw(workflow_command("add-mask", value))

    # -- outputs and environment -----------------------------------------------------------------
    def _file_command(self, variable: str, name: str, value: str) -> None:
        path = self._env.get(variable)
        if not path:
            raise EvaluationError(
                f"${variable} is not set, so {name} cannot be handed to later steps",
                hint="run this step on a GitHub Actions runner (which sets it), or use --platform local",
            )
        entry = heredoc(name, value)
        try:
            with open(path, "a", encoding="utf-8", newline="\n") as stream:
                stream.write(entry)
        except OSError as exc:
            raise EvaluationError(
                f"cannot append {name} to ${variable}: {exc.strerror}",
                hint="the runner's file command is not writable; check the job's filesystem",
            ) from None

    def check_name(self, name: str, *, output: bool = False) -> None:
        if output:
            if not OUTPUT_NAME.match(name):
                raise UsageError(
                    f"invalid step output name {name!r}",
                    hint="output names start with a letter or _ and contain only letters, digits, - and _",
                )
            return
        if not ENV_NAME.match(name):
            raise UsageError(
                f"invalid environment variable name {name!r}",
                hint="environment variable names start with a letter or _ and contain only letters, "
                "digits and _",
            )
        if name.upper() in FORBIDDEN_ENV:
            raise UsageError(f"GitHub Actions does not allow setting {name} through $GITHUB_ENV",
                             hint="choose another variable name")

    def set_output(self, name: str, value: str, *, secret: bool = False) -> None:
        self.check_name(name, output=True)
        if secret:
            self.mask(value)
        self._file_command("GITHUB_OUTPUT", name, value)

    def set_env(self, name: str, value: str, *, secret: bool = False) -> None:
        self.check_name(name, output=False)
        if secret:
            self.mask(value)
        self._file_command("GITHUB_ENV", name, value)

    # -- annotations and summary -------------------------------------------------------------------
    def annotate(self, level: Level, message: str, *, file: str | None = None, line: int | None = None) -> None:
        props: dict[str, str] = {}
        if file:
            props["file"] = redact(self._repository_path(file))
        if file and line is not None:
            props["line"] = str(line)
        _write_stdout_raw(workflow_command(level, redact(message), props))

    def _repository_path(self, file: str) -> str:
        """``file`` relative to the checkout ($GITHUB_WORKSPACE), the form annotations link to the file by."""
        workspace = self._env.get("GITHUB_WORKSPACE")
        if workspace:
            absolute = os.path.abspath(file)
            with contextlib.suppress(ValueError):
                if os.path.commonpath([absolute, os.path.abspath(workspace)]) == os.path.abspath(workspace):
                    return os.path.relpath(absolute, workspace).replace(os.sep, "/")
        return file

    def _group(self, title: str, *, start: bool) -> None:
        _write_stdout_raw(workflow_command("group", redact(title)) if start else "::endgroup::")

    def summary(self, markdown: str) -> None:
        path = self._env.get("GITHUB_STEP_SUMMARY")
        if not path:
            raise EvaluationError(
                "$GITHUB_STEP_SUMMARY is not set, so the job summary cannot be written",
                hint="run this step on a GitHub Actions runner (which sets it), or use --platform local",
            )
        try:
            used = os.path.getsize(path)
        except OSError:
            used = 0
        text = markdown if markdown.endswith("\n") else markdown + "\n"
        text = truncate_utf8(redact(text), SUMMARY_LIMIT - used, TRUNCATED_NOTE)
        if not text:
            self.annotate("warning", "the job summary is full (1 MiB); mlgate's summary was left out")
            return
        try:
            with open(path, "a", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        except OSError as exc:
            raise EvaluationError(f"cannot append to $GITHUB_STEP_SUMMARY: {exc.strerror}",
                                  hint="check the job's filesystem") from None

    # -- approvals ---------------------------------------------------------------------------------
    def read_approvals(self, request: ApprovalRequest) -> ApprovalReport:
        """The environment's reviewers (default: the environment named like the stage)."""
        from mlgate.approvals import github

        self.check_approval_request(request)
        return github.read_approvals(self._env, environment=request.environment or request.stage)

    # -- context -----------------------------------------------------------------------------------
    def context(self) -> CIContext:
        env = self._env
        server = env.get("GITHUB_SERVER_URL", "").rstrip("/")
        repository = env.get("GITHUB_REPOSITORY") or None
        run_id = env.get("GITHUB_RUN_ID") or None
        run_url = f"{server}/{repository}/actions/runs/{run_id}" if server and repository and run_id else None
        extra = {
            key: env[var]
            for key, var in (
                ("actor", "GITHUB_ACTOR"),
                ("actor_id", "GITHUB_ACTOR_ID"),
                ("triggering_actor", "GITHUB_TRIGGERING_ACTOR"),
                ("run_attempt", "GITHUB_RUN_ATTEMPT"),
                ("workflow", "GITHUB_WORKFLOW"),
                ("workflow_ref", "GITHUB_WORKFLOW_REF"),
                ("event_name", "GITHUB_EVENT_NAME"),
                ("ref", "GITHUB_REF"),
                ("job", "GITHUB_JOB"),
            )
            if env.get(var)
        }
        return CIContext(
            platform=self.name,
            run_url=run_url,
            run_id=run_id,
            commit=env.get("GITHUB_SHA") or None,
            requester=env.get("GITHUB_TRIGGERING_ACTOR") or env.get("GITHUB_ACTOR") or None,
            repository=repository,
            extra=extra,
        )
