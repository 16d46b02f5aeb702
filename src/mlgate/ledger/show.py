"""`mlgate audit show`: who approved the model version at REF, when, why, with what evidence."""

from __future__ import annotations

from typing import Any

from mlgate.commands._common import not_built
from mlgate.ledger.base import Ledger


def audit_answer(ref: str, ledger: Ledger) -> dict[str, Any]:
    not_built("audit show")
    raise AssertionError("unreachable")


def render_text(answer: dict[str, Any]) -> str:
    not_built("audit show")
    raise AssertionError("unreachable")
