"""Process-wide registry of secret values, so no output path can print one.

Every secret mlgate handles is registered here *before* anything else is printed; the
console and the CI adapters pass all text through :func:`redact`. This is defence in
depth: code must still never put a secret into a message in the first place.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_values: set[str] = set()
MASK = "***"


def register(value: str) -> list[str]:
    """Remember ``value`` (and each of its lines) as secret; return the strings registered."""
    parts = [value, *value.splitlines()]
    new = [p for p in dict.fromkeys(parts) if p.strip()]
    with _lock:
        _values.update(new)
    return new


def redact(text: str) -> str:
    """Replace every registered secret value in ``text`` with ``***`` (longest first)."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def clear() -> None:
    """Forget every registered value (tests only)."""
    with _lock:
        _values.clear()
