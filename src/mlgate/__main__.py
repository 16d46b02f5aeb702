"""``python -m mlgate``."""

from mlgate.cli import entrypoint

entrypoint()
