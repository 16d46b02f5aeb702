"""Sealing and verifying against an MLflow model version (`seal --model`, `verify --model`)."""

from __future__ import annotations

import argparse

from mlgate.commands._common import not_built
from mlgate.integrity.manifest import Manifest
from mlgate.platforms.base import Platform


def seal_model(args: argparse.Namespace, platform: Platform) -> int:
    return not_built("seal --model")


def load_sealed_manifest(ref: str) -> Manifest:
    not_built("verify --model")
    raise AssertionError("unreachable")
