"""Azure DevOps Pipelines: ``##vso[...]`` logging commands on stdout.

Escaping follows ``azure-pipelines-task-lib``: the message part escapes ``%`` -> ``%AZP25``,
CR -> ``%0D``, LF -> ``%0A``; property values also escape ``]`` -> ``%5D`` and ``;`` -> ``%3B``,
so a value can neither end the command nor add a property.

Secret variables (``issecret=true``) are masked by the agent but, unlike plain variables,
are *not* put into the environment of later scripts: a script must map them in ``env:``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlgate.errors import EvaluationError, UsageError
from mlgate.platforms.base import SUMMARY_LIMIT, CIContext, Level, Platform, truncate_utf8

if TYPE_CHECKING:
    from mlgate.approvals import ApprovalReport, ApprovalRequest
from mlgate.redact import redact

VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
RESERVED_PREFIXES = ("endpoint", "input", "secret", "path", "securefile")
TRUNCATED_NOTE = (
    "\n\n> **Note:** this summary was truncated by mlgate to 1 MiB; the full text is in the "
    "step log or the evidence files.\n"
)
COMPLETE_RESULTS = ("Succeeded", "SucceededWithIssues", "Failed")


def escape_data(value: str) -> str:
    """Escape the message part of a logging command."""
    return value.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a property value of a logging command."""
    return escape_data(value).replace("]", "%5D").replace(";", "%3B")


def logging_command(command: str, message: str = "", properties: Mapping[str, str] | None = None) -> str:
    """``##vso[command k=v;k=v;]message`` with every part escaped."""
    props = "".join(f"{key}={escape_property(val)};" for key, val in (properties or {}).items() if val != "")
    return f"##vso[{command}{' ' + props if props else ''}]{escape_data(message)}"


def _write_stdout_raw(line: str) -> None:
    """Write a logging command unredacted (``task.setsecret`` must carry the value itself)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def check_variable_name(name: str) -> None:
    if not VARIABLE_NAME.match(name):
        raise UsageError(
            f"invalid pipeline variable name {name!r}",
            hint="Azure DevOps variable names contain only letters, digits, . and _",
        )
    if name.lower().startswith(RESERVED_PREFIXES):
        raise UsageError(
            f"pipeline variable name {name!r} starts with a prefix Azure DevOps reserves",
            hint="do not start variable names with " + ", ".join(RESERVED_PREFIXES),
        )


class AzureDevOps(Platform):
    name = "azure-devops"
    title = "an Azure Pipelines run"
    marker = "TF_BUILD"
    default_identity = "azure-pipelines"

    def _emit_mask(self, value: str) -> None:
        _write_stdout_raw(logging_command("task.setsecret", value))

    def check_name(self, name: str, *, output: bool = False) -> None:
        check_variable_name(name)

    def _set_variable(self, name: str, value: str, *, secret: bool, output: bool) -> None:
        check_variable_name(name)
        if secret:
            self.mask(value)
        props = {"variable": name, "issecret": str(secret).lower(), "isOutput": str(output).lower()}
        line = logging_command("task.setvariable", value, props)
        # A plain value is still redacted if it happens to contain a known secret.
        _write_stdout_raw(line if secret else redact(line))

    def set_output(self, name: str, value: str, *, secret: bool = False) -> None:
        """An output variable: later jobs read it as ``dependencies.<job>.outputs['<step>.<name>']``."""
        self._set_variable(name, value, secret=secret, output=True)

    def set_env(self, name: str, value: str, *, secret: bool = False) -> None:
        """A job variable; plain ones reach later scripts as ``$NAME``, secret ones only via ``env:``."""
        self._set_variable(name, value, secret=secret, output=False)

    def annotate(self, level: Level, message: str, *, file: str | None = None, line: int | None = None) -> None:
        if level == "notice":  # Azure DevOps issues are errors or warnings only
            _write_stdout_raw(redact(message).replace("##vso[", "##vso\u200b["))
            return
        props: dict[str, str] = {"type": level}
        if file:
            props["sourcepath"] = redact(file)
        if file and line is not None:
            props["linenumber"] = str(line)
        _write_stdout_raw(logging_command("task.logissue", redact(message), props))

    def _group(self, title: str, *, start: bool) -> None:
        # formatting commands: `##[group]` must start the line; the title is one line, with no command in it
        text = redact(title).replace("\r", " ").replace("\n", " ").replace("##", "#\u200b#")
        _write_stdout_raw(f"##[group]{text}" if start else "##[endgroup]")

    def complete(self, result: str, message: str = "") -> None:
        """``task.complete``: set the step's result (Succeeded, SucceededWithIssues, Failed)."""
        if result not in COMPLETE_RESULTS:
            raise ValueError(f"unknown task result {result!r}")
        _write_stdout_raw(logging_command("task.complete", redact(message), {"result": result}))

    def fail(self, message: str) -> None:
        self.annotate("error", message)
        self.complete("Failed", message)

    def summary(self, markdown: str) -> None:
        temp = self._env.get("AGENT_TEMPDIRECTORY")
        if not temp or not os.path.isdir(temp):
            raise EvaluationError(
                "$AGENT_TEMPDIRECTORY is not set or not a directory, so the run summary cannot be uploaded",
                hint="run this step on an Azure Pipelines agent (which sets it), or use --platform local",
            )
        import uuid

        text = truncate_utf8(redact(markdown), SUMMARY_LIMIT, TRUNCATED_NOTE)
        path = os.path.join(temp, f"mlgate-summary-{uuid.uuid4().hex}.md")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        except OSError as exc:
            raise EvaluationError(f"cannot write the run summary under $AGENT_TEMPDIRECTORY: {exc.strerror}",
                                  hint="check the agent's temp directory") from None
        _write_stdout_raw(logging_command("task.uploadsummary", path))

    def read_approvals(self, request: ApprovalRequest) -> ApprovalReport:
        """The environment approval of ``--approval-stage`` (default: this stage)."""
        from mlgate.approvals import azure_devops

        self.check_approval_request(request)
        return azure_devops.read_approvals(self._env, stage=request.approval_stage)

    def context(self) -> CIContext:
        from urllib.parse import quote

        env = self._env
        collection = env.get("SYSTEM_COLLECTIONURI", "").rstrip("/")
        project = env.get("SYSTEM_TEAMPROJECT", "")
        build_id = env.get("BUILD_BUILDID") or None
        run_url = (
            f"{collection}/{quote(project, safe='')}/_build/results?buildId={quote(build_id, safe='')}"
            if collection and project and build_id
            else None
        )
        extra = {
            key: env[var]
            for key, var in (
                ("requested_for", "BUILD_REQUESTEDFOR"),
                ("requested_for_email", "BUILD_REQUESTEDFOREMAIL"),
                ("requested_for_id", "BUILD_REQUESTEDFORID"),
                ("collection_uri", "SYSTEM_COLLECTIONURI"),
                ("project", "SYSTEM_TEAMPROJECT"),
                ("definition", "BUILD_DEFINITIONNAME"),
                ("reason", "BUILD_REASON"),
                ("source_branch", "BUILD_SOURCEBRANCH"),
                ("stage", "SYSTEM_STAGENAME"),
                ("job", "SYSTEM_JOBNAME"),
                ("plan_id", "SYSTEM_PLANID"),
            )
            if env.get(var)
        }
        return CIContext(
            platform=self.name,
            run_url=run_url,
            run_id=build_id,
            commit=env.get("BUILD_SOURCEVERSION") or None,
            requester=env.get("BUILD_REQUESTEDFOREMAIL") or env.get("BUILD_REQUESTEDFOR") or None,
            repository=env.get("BUILD_REPOSITORY_NAME") or None,
            extra=extra,
        )
