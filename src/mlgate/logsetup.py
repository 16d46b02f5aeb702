"""The CLI's logging: one format, levels from ``-v``, every record redacted; set up once logging is loaded.

Most commands never import :mod:`logging` (``mlgate seal DIR`` does not), so the CLI does not load it
for them: :func:`configure_when_imported` configures it at once when it is already loaded, else the
moment anything imports it (mlgate's MLflow client, urllib3, the Azure SDK, ``concurrent.futures``),
before that import returns. No record is ever written before the configuration and its redaction.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


def configure(verbosity: int) -> None:
    """mlgate's logging configuration for ``verbosity`` (the count of ``-v``)."""
    import logging

    from mlgate.redact import redact_logging

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redact_logging()
    logging.getLogger("mlgate").setLevel(level)
    if verbosity < 2:
        # Third-party HTTP logs may echo headers; keep them quiet unless asked for debug.
        for noisy in ("azure", "urllib3", "msal", "github"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def configure_when_imported(verbosity: int) -> None:
    """:func:`configure` now if :mod:`logging` is loaded, else as soon as it is (a one-shot import hook)."""
    for finder in [f for f in sys.meta_path if isinstance(f, _ConfigureOnImport)]:
        sys.meta_path.remove(finder)  # an earlier run in this process that never loaded logging
    if "logging" in sys.modules:
        configure(verbosity)
    else:
        sys.meta_path.insert(0, _ConfigureOnImport(verbosity))


class _ConfigureOnImport:
    """A meta path finder for ``logging`` alone: the real spec, whose loading ends with :func:`configure`."""

    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> Any:
        if name != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenConfigure(spec.loader, self.verbosity)  # type: ignore[assignment]
                return spec
            if spec is not None:
                return spec
        return None


class _ThenConfigure:
    """Load the module with ``loader``, put ``loader`` back in its place, then :func:`configure`."""

    def __init__(self, loader: Any, verbosity: int) -> None:
        self.loader = loader
        self.verbosity = verbosity

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        configure(self.verbosity)
