"""Optional parts of mlgate (pip extras) and the error when a command needs one that is missing.

The core (``pip install <mlgate wheel>``) seals, verifies, traces, gates, records and audits against
MLflow, a file ledger and stores reached over HTTP. The SDKs below are imported only inside the code
paths that use them; when one is absent, :func:`missing_extra` turns the ``ModuleNotFoundError`` into
a usage error (exit 2) that names the extra to install, instead of an internal error.
"""

from __future__ import annotations

from mlgate import __version__
from mlgate.errors import UsageError

# module (the most specific prefix wins) -> (extra, what needs it)
MODULES: dict[str, tuple[str, str]] = {
    "azure.storage.queue": ("service", "the approval-check service's Azure Storage state (queue)"),
    "azure.data": ("service", "the approval-check service's Azure Storage state (table)"),
    "azure": ("azure", "Azure Key Vault, the Azure Blob ledger or store, or an Azure ML tracking token"),
    "msal": ("azure", "an Azure token (azure-identity)"),
    "github": ("github", "GitHub App authentication (PyGithub)"),
    "waitress": ("service", "the approval-check service's WSGI server"),
    "boto3": ("s3", "an S3 artifact store"),
    "botocore": ("s3", "an S3 artifact store"),
}


def install_hint(extra: str) -> str:
    """How to add ``extra`` to an installation made from a release wheel (README: Install)."""
    wheel = f"mlgate-{__version__}-py3-none-any.whl"
    return (
        f"install mlgate with its '{extra}' extra, from the release wheel and the locked dependencies: "
        f"pip install --require-hashes -r locks/{extra}.txt, then pip install --no-deps '{wheel}' "
        f"(or pip install '{wheel}[{extra}]'); the GitHub Action and the Azure DevOps task install it "
        "for the commands that need it"
    )


def missing_extra(exc: ModuleNotFoundError) -> UsageError | None:
    """The usage error for a missing optional SDK, or None when ``exc`` is about something else."""
    name = exc.name or ""
    known = [m for m in MODULES if name == m or name.startswith(m + ".")]
    if not known:
        return None
    extra, needed_by = MODULES[max(known, key=len)]
    return UsageError(
        f"this command needs {needed_by}, and the Python package {exc.name!r} is not installed "
        f"(mlgate's optional '{extra}' extra)",
        hint=install_hint(extra),
    )
