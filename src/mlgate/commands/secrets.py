"""`mlgate secrets`: fetch Key Vault secrets through managed/federated identity, masked first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import command_parser

if TYPE_CHECKING:
    from mlgate.secrets.interface import Failure, Secret
    from mlgate.secrets.names import SecretSpec

HELP = "fetch Key Vault secrets through managed/federated identity, masked first"
DESCRIPTION = """\
Fetch secrets from Azure Key Vault with the pipeline's identity, mask them in the CI log before
anything else is printed, and hand them to later steps. No secret is accepted as a flag.

--secrets takes names (db-password,api-key) or '*' (every enabled, unexpired secret). A name maps
to a variable by upper-casing it and turning dashes into underscores (db-password -> DB_PASSWORD);
NAME:VARIABLE overrides that (db-password:PGPASSWORD; with '*': '*,db-password:PGPASSWORD').

Hand-over (--to): on GitHub Actions, masked step outputs (default; read them as
steps.<id>.outputs.DB_PASSWORD) or $GITHUB_ENV (env: every later step of the job sees them).
On Azure DevOps, secret pipeline variables (default env: $(DB_PASSWORD) in this job; output:
isOutput=true for later jobs). Azure DevOps secret variables reach scripts only when mapped
into the step's env: block.
"""
EPILOG = """\
identities (--identity, default auto):
  managed          ManagedIdentityCredential: the agent's managed identity (system-assigned, or
                   user-assigned with --client-id)
  azure-pipelines  AzurePipelinesCredential: a workload-identity service connection; needs
                   --tenant-id, --client-id, --service-connection-id (or AZURESUBSCRIPTION_*),
                   SYSTEM_ACCESSTOKEN mapped into env:, SYSTEM_OIDCREQUESTURI
  github-oidc      ClientAssertionCredential with a fresh GitHub ID token per request; needs
                   `permissions: id-token: write`, --tenant-id/AZURE_TENANT_ID, --client-id/AZURE_CLIENT_ID
  environment      a service principal from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET
                   or AZURE_CLIENT_CERTIFICATE_PATH (local runs)
  -v explains which one was used and why.

exit codes: 0 every secret handed over; 3 anything else (no credential, 403, firewall, not found,
disabled, expired, invalid name, throttled): nothing is handed over unless --allow-partial.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "secrets", help=HELP, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--vault", metavar="NAME|URL", required=True,
                        help="the Key Vault: its name (public cloud) or https:// URL (no user, password or query: "
                        "refused without being shown)")
    parser.add_argument("--secrets", metavar="LIST", required=True,
                        help="comma-separated secret names, NAME:VARIABLE to rename, or '*' for all")
    parser.add_argument("--identity", choices=("auto", "managed", "azure-pipelines", "github-oidc", "environment"),
                        default="auto", help="which Azure identity to use (default: auto)")
    parser.add_argument("--client-id", metavar="ID",
                        help="client id of the user-assigned managed identity or federated app (not a secret)")
    parser.add_argument("--tenant-id", metavar="ID", help="Entra tenant id (default: AZURE_TENANT_ID)")
    parser.add_argument("--service-connection-id", metavar="ID",
                        help="Azure DevOps service connection id (default: AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)")
    parser.add_argument("--to", choices=("output", "env"), default=None,
                        help="hand over as step outputs or job environment/variables "
                        "(default: output on GitHub, env on Azure DevOps)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="hand over the secrets that were fetched even if others failed (exit 0 with warnings)")
    parser.add_argument("--concurrency", metavar="N", type=int, default=20,
                        help="secrets fetched at a time (default: 20, like Azure DevOps' Key Vault task)")
    return parser


def run(args: argparse.Namespace) -> int:
    from mlgate.errors import EvaluationError, UsageError

    try:
        return _run(args)
    except UsageError as exc:  # the contract of `mlgate secrets` is 0 or 3
        raise EvaluationError(exc.message, hint=exc.hint) from None


def _run(args: argparse.Namespace) -> int:
    from mlgate.console import err
    from mlgate.platforms import detect_platform
    verbose = args.verbose >= 1

    def explain(text: str) -> None:
        if verbose:
            err(f"mlgate secrets: {text}")

    platform = detect_platform(args.platform)
    # No log group here: a mask must be the first line printed. A failure is annotated in full by
    # mlgate.cli (names only, never values).
    return _fetch_and_hand_over(args, platform, explain)


def _fetch_and_hand_over(args: argparse.Namespace, platform: Any, explain: Any) -> int:
    from mlgate.errors import UsageError
    from mlgate.secrets.credentials import IdentityOptions, ObservedCredential, choose
    from mlgate.secrets.keyvault import KeyVaultSecrets, parse_vault
    from mlgate.secrets.names import parse_selection, resolve

    selection = parse_selection(args.secrets)
    vault = parse_vault(args.vault)
    if not 1 <= args.concurrency <= 64:
        raise UsageError(f"--concurrency {args.concurrency} is out of range", hint="use 1 to 64")
    to = args.to or ("output" if platform.name == "github" else "env")
    explain(f"platform {platform.name}; secrets handed over as {'step outputs' if to == 'output' else 'env'}")

    options = IdentityOptions(identity=args.identity, client_id=args.client_id, tenant_id=args.tenant_id,
                              service_connection_id=args.service_connection_id)
    choice = choose(options, on_id_token=platform.mask)
    for reason in choice.why:
        explain(reason)
    if vault.loopback:
        explain(f"vault {vault.url} is a loopback address: Key Vault challenge-resource verification is off")
    else:
        explain(f"vault {vault.url}: challenge-resource verification on (the token must be for this vault's domain)")

    credential = ObservedCredential(choice.credential)
    try:
        with KeyVaultSecrets(vault, credential, identity=choice.identity, concurrency=args.concurrency) as kv:
            listed = None
            if selection.all:
                listed, skipped = kv.list_usable()
                explain(f"listed {len(listed)} usable secret(s)" + (f"; skipped {', '.join(skipped)}" if skipped
                                                                    else ""))
            specs = resolve(selection, listed)
            for spec in specs:  # every name is checked before any value is fetched
                platform.check_name(spec.variable, output=(to == "output"))
            secrets, failures = kv.fetch([s.name for s in specs], on_value=lambda _n, value: platform.mask(value))
    finally:
        credential.close()

    explain(f"{credential.tokens} access token(s) obtained")
    code = _hand_over(args, platform, to, vault.url, specs, secrets, failures)
    if platform.is_ci:
        platform.summary(summary_markdown(vault.url, choice.kind, to, specs, secrets, failures))
    return code


def summary_markdown(source: str, identity: str, to: str, specs: list[SecretSpec], secrets: list[Secret],
                     failures: list[Failure]) -> str:
    """The step summary: which secrets (names, never values) went where, with which identity."""
    from mlgate.evidence.markdown import cell, folded_table

    fetched = {s.name for s in secrets}
    handed = [[f"`{cell(spec.name)}`", f"`{cell(spec.variable)}`"] for spec in specs if spec.name in fetched]
    kind = "step outputs (`steps.<id>.outputs.NAME`)" if to == "output" else "secret variables of this job"
    lines = [f"## mlgate secrets: {len(handed)} secret(s) handed over", "",
             f"From `{cell(source)}` with the **{cell(identity)}** identity, as {kind}. Every value was masked in "
             "the log before anything else was printed; no value appears here or in any file.", ""]
    if handed:
        lines += folded_table(["secret", "handed over as"], handed, what="secrets")
    if failures:
        lines += ["**Not handed over** (`--allow-partial`):", "",
                  *folded_table(["secret", "why"], [[f"`{f.name}`", f.error.message] for f in failures],
                                what="failures")]
    if not specs:
        lines.append("The vault has no enabled, unexpired secret: nothing was handed over.")
    return "\n".join(lines) + "\n"


def _hand_over(args: argparse.Namespace, platform: Any, to: str, source: str, specs: list[SecretSpec],
               secrets: list[Secret], failures: list[Failure]) -> int:
    """All fetched (or ``--allow-partial``): set the outputs/variables; otherwise raise, handing nothing over."""
    from mlgate.console import err
    from mlgate.errors import EvaluationError

    if failures and (not args.allow_partial or not secrets):
        if len(failures) == 1:
            raise failures[0].error
        lines = "\n  ".join(f"{f.name}: {f.error.message}" for f in failures)
        hints = "; ".join(dict.fromkeys(f.error.hint for f in failures if f.error.hint))
        raise EvaluationError(f"{len(failures)} of {len(specs)} secrets could not be fetched; none handed over:"
                              f"\n  {lines}", hint=hints or None)

    fetched = {s.name: s for s in secrets}
    handed = []
    for spec in specs:
        secret = fetched.get(spec.name)
        if secret is None:
            continue
        if to == "output":
            platform.set_output(spec.variable, secret.value, secret=True)
        else:
            platform.set_env(spec.variable, secret.value, secret=True)
        handed.append(f"{spec.name} -> {spec.variable}")
    for failure in failures:
        platform.annotate("warning", f"mlgate secrets: {failure.name} not handed over: {failure.error.message}")
    if not specs:
        platform.annotate("warning",
                          f"mlgate secrets: {source} has no enabled, unexpired secret; nothing handed over")
    err(f"mlgate secrets: handed over {len(handed)} secret(s) from {source} as "
        f"{'step outputs' if to == 'output' else 'variables'}" + (": " + ", ".join(handed) if handed else ""))
    return 0
