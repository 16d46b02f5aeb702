"""Options shared by the commands that sign or check signatures: keys, Key Vault identities, serializations.

Standard library only at import time: ``cryptography`` and the Azure SDKs load only when a key is used.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.integrity.serialization import Serialization
    from mlgate.secrets.credentials import IdentityOptions
    from mlgate.signing.keys import PublicKey, Signer

KEY_FORMS = "a PEM file, or azure-keyvault://VAULT/keys/NAME[/VERSION] (the key never leaves Key Vault)"
IDENTITIES = ("auto", "managed", "azure-pipelines", "github-oidc", "environment")
_SIZE = re.compile(r"^\s*([0-9]+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 10**6, "mb": 10**6, "mib": 1 << 20,
          "g": 10**9, "gb": 10**9, "gib": 1 << 30, "t": 10**12, "tb": 10**12, "tib": 1 << 40}


def add_identity_options(parser: argparse.ArgumentParser) -> None:
    """``--identity`` and its ids: which Azure identity reaches a Key Vault key (as ``mlgate secrets``)."""
    group = parser.add_argument_group("Key Vault keys (azure-keyvault://...)")
    group.add_argument("--identity", choices=IDENTITIES, default="auto",
                       help="which Azure identity uses the key (default: auto; see `mlgate secrets --help`)")
    group.add_argument("--client-id", metavar="ID",
                       help="client id of the user-assigned managed identity or federated app (not a secret)")
    group.add_argument("--tenant-id", metavar="ID", help="Entra tenant id (default: AZURE_TENANT_ID)")
    group.add_argument("--service-connection-id", metavar="ID",
                       help="Azure DevOps service connection id (default: AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)")


def add_serialization_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serialization", choices=("files", "shards"), default="files",
                        help="files: one digest per file, sha256sum agrees (default); shards: each file cut into "
                        "--shard-size pieces hashed on every core (one large file hashes in parallel)")
    parser.add_argument("--shard-size", metavar="BYTES", type=parse_size, default=None,
                        help="with --serialization shards: piece size in bytes, or with a unit (1GB, 512MiB); "
                        "default 1000000000, model_signing's")


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (bytes, or a number with KB/MB/GB/KiB/MiB/GiB)")
    return int(match[1]) * _UNITS[match[2].lower()]


def identity_options(args: argparse.Namespace) -> IdentityOptions:
    from mlgate.secrets.credentials import IdentityOptions

    return IdentityOptions(identity=getattr(args, "identity", "auto"), client_id=getattr(args, "client_id", None),
                           tenant_id=getattr(args, "tenant_id", None),
                           service_connection_id=getattr(args, "service_connection_id", None))


def load_signer(spec: str, args: argparse.Namespace) -> Signer:
    from mlgate.signing.keys import is_keyvault
    from mlgate.signing.keys import load_signer as load

    return load(spec, identity=identity_options(args)) if is_keyvault(spec) else load(spec)


def load_public_key(spec: str, args: argparse.Namespace) -> PublicKey:
    from mlgate.signing.keys import is_keyvault
    from mlgate.signing.keys import load_public_key as load

    return load(spec, identity=identity_options(args)) if is_keyvault(spec) else load(spec)


def close(thing: Any) -> None:
    """Close a Key Vault signer's clients (a PEM signer has nothing to close)."""
    closer = getattr(thing, "close", None)
    if callable(closer):
        closer()


def inside(directory: str, path: str) -> str | None:
    """``path`` relative to ``directory`` (POSIX) when it lies inside it, else ``None``."""
    root = os.path.realpath(directory)
    target = os.path.realpath(path)
    if target == root or not target.startswith(root.rstrip(os.sep) + os.sep):
        return None
    return os.path.relpath(target, root).replace(os.sep, "/")


def serialization(args: argparse.Namespace, directory: str | None, outputs: list[str | None]) -> Serialization:
    """The serialization the flags ask for; outputs written inside DIR are recorded as ignored paths."""
    from mlgate.integrity.serialization import Serialization

    ignored = [rel for rel in (inside(directory, p) for p in outputs if p) if rel] if directory else []
    return Serialization.of(args.serialization, shard_size=args.shard_size,
                            allow_symlinks=bool(getattr(args, "follow_internal_symlinks", False)),
                            ignore_paths=ignored)
