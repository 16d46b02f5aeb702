"""`mlgate secrets`: fetch Key Vault secrets through managed/federated identity, masked first."""

from __future__ import annotations

import argparse
from typing import Any

from mlgate.commands._common import command_parser, not_built

HELP = "fetch Key Vault secrets through managed/federated identity, masked first"
DESCRIPTION = """\
Fetch secrets from Azure Key Vault with the pipeline's identity, mask them in the CI log before
anything else is printed, and hand them to later steps. No secret is accepted as a flag.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "secrets", help=HELP, description=DESCRIPTION)

    return parser


def run(args: argparse.Namespace) -> int:
    return not_built("secrets")
