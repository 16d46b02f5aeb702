"""`mlgate audit verify|export|show` (kept out of the command module to keep start-up light)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlgate.console import out
from mlgate.errors import UsageError
from mlgate.ledger import Ledger, open_ledger
from mlgate.ledger.base import VerifyResult
from mlgate.ledger.export import Anchors


def describe_result(result: VerifyResult, where: str) -> str:
    if result.head is None:
        return f"ledger {where} verified: empty (no entries)"
    text = (
        f"ledger {where} verified: {result.entries} entries, chain intact, "
        f"head seq {result.head.seq} sha256 {result.head.hash}"
    )
    if result.anchors_checked:
        text += f"; {result.anchors_checked} anchor(s) on model versions match"
    return text


def load_anchors(args: argparse.Namespace, ledger: Ledger) -> Anchors:
    """The mlgate.ledger.head anchors from MLflow (empty without MLFLOW_TRACKING_URI or with --no-anchors)."""
    if getattr(args, "no_anchors", False):
        return {}
    from mlgate.ledger.anchors import read_anchors

    return read_anchors(ledger.location)


def _open_existing(args: argparse.Namespace) -> Ledger:
    ledger = open_ledger(args.ledger)
    if not ledger.exists():
        raise UsageError(
            f"no ledger at {ledger.location}",
            hint="point --ledger (or MLGATE_LEDGER) at the ledger that `mlgate record` writes",
        )
    return ledger


def run_verify(args: argparse.Namespace) -> int:
    if args.file:
        from mlgate.ledger.export import verify_file

        result, header = verify_file(args.file)
        text = describe_result(result, args.file)
        if header is not None:
            text += f" (export of {header.get('source')} at {header.get('exported_at')}"
            anchors = header.get("anchors") or []
            text += f", {len(anchors)} anchor(s) checked)" if anchors else ", no anchors)"
        out(text)
        return 0
    ledger = _open_existing(args)
    anchors = load_anchors(args, ledger)
    result = ledger.verify(anchors=anchors)
    out(describe_result(result, ledger.location))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mlgate.ledger.export import export_ledger

    ledger = _open_existing(args)
    anchors = load_anchors(args, ledger)
    result = export_ledger(ledger, args.output, anchors=anchors)
    out(describe_result(result, ledger.location))
    out(f"exported to {args.output}; check it offline with `mlgate audit verify --file {args.output}`")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from mlgate.ledger.show import audit_answer, render_text

    answer: dict[str, Any] = audit_answer(args.ref, _open_existing(args))
    if args.json:
        out(json.dumps(answer, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        out(render_text(answer))
    return 0 if answer["recorded"] else 1
