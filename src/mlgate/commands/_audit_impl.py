"""`mlgate audit verify|export|show` (kept out of the command module to keep start-up light)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlgate.console import err, out
from mlgate.errors import RefusedError, UsageError
from mlgate.ledger import Ledger, open_ledger
from mlgate.ledger.anchors import anchor_name
from mlgate.ledger.base import VerifyResult
from mlgate.ledger.export import Anchors

NO_ANCHORS_WARNING = (
    "warning: no anchor was checked, so a ledger rewritten in full (every entry re-hashed, "
    "approvers changed) cannot be told from the original: the anchors are the "
    "mlgate.ledger.head tags that `mlgate record` writes on MLflow model versions. Set "
    "MLFLOW_TRACKING_URI (and its credentials) to that MLflow and verify again; pass "
    "--require-anchors (MLGATE_REQUIRE_ANCHORS=true) to fail when no anchor can be checked"
)


def describe_result(result: VerifyResult, where: str, *, live: int | None = None) -> str:
    """One line; ``live`` is how many of the checked anchors came from MLflow (default: all)."""
    live = result.anchors_checked if live is None else live
    if result.head is None:
        return f"ledger {where} verified: empty (no entries); {live} anchor(s) checked"
    return (
        f"ledger {where} verified: {result.entries} entries, chain intact, "
        f"head seq {result.head.seq} sha256 {result.head.hash}; "
        f"{live} anchor(s) on model versions {'match' if live else 'checked'}"
    )


def load_anchors(args: argparse.Namespace, name: str | None) -> Anchors:
    """The mlgate.ledger.head anchors of ledger ``name`` from MLflow.

    Empty without MLFLOW_TRACKING_URI, with --no-anchors, or for a ledger copy without a name.
    """
    if getattr(args, "no_anchors", False) or not name:
        return {}
    from mlgate.ledger.anchors import read_anchors

    return read_anchors(name)


def check_anchored(args: argparse.Namespace, live: int) -> None:
    """Warn when no anchor from MLflow was checked; refuse with --require-anchors."""
    if live:
        return
    if getattr(args, "require_anchors", False):
        raise RefusedError(
            "no anchor was checked (--require-anchors): a ledger rewritten in full cannot be excluded",
            hint="set MLFLOW_TRACKING_URI (and its credentials) to the MLflow that `mlgate record` "
            "writes the mlgate.ledger.head tags to, and do not pass --no-anchors",
        )
    err(NO_ANCHORS_WARNING)


def _open_existing(args: argparse.Namespace) -> Ledger:
    ledger = open_ledger(args.ledger)
    if not ledger.exists():
        raise UsageError(
            f"no ledger at {ledger.location}",
            hint="point --ledger (or MLGATE_LEDGER) at the ledger that `mlgate record` writes",
        )
    return ledger


def _count(anchors: Anchors) -> int:
    return sum(len(items) for items in anchors.values())


def run_verify(args: argparse.Namespace) -> int:
    if args.file:
        from mlgate.ledger.export import file_identity, verify_file

        live = load_anchors(args, file_identity(args.file))
        result, header = verify_file(args.file, live=live)
        text = describe_result(result, args.file, live=_count(live))
        if header is not None:
            copied = len(header.get("anchors") or [])
            text += (
                f" (export of {header.get('source')} at {header.get('exported_at')}, "
                f"{copied} anchor(s) checked from its header"
                + (", which travel with the file" if copied else "")
                + ")"
            )
        out(text)
        check_anchored(args, _count(live))
        return 0
    ledger = _open_existing(args)
    anchors = load_anchors(args, anchor_name(ledger))
    result = ledger.verify(anchors=anchors)
    out(describe_result(result, ledger.location))
    check_anchored(args, result.anchors_checked)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mlgate.ledger.export import export_ledger

    ledger = _open_existing(args)
    anchors = load_anchors(args, anchor_name(ledger))
    check_anchored(args, _count(anchors))  # before writing: --require-anchors writes nothing
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
