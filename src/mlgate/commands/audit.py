"""`mlgate audit`: answer the audit question, verify or export the ledger."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlgate.commands._common import add_ledger_option, add_ref, command_parser

if TYPE_CHECKING:
    from mlgate.ledger import Ledger
    from mlgate.ledger.anchors import Anchor
    from mlgate.ledger.base import VerifyResult
    from mlgate.ledger.signed import Trust
    from mlgate.lineage.mlflow import MlflowClient

HELP = "answer the audit question, verify or export the ledger"
DESCRIPTION = """\
show REF: who approved the model version at an alias (or a version), when, why, with what
  evidence; its lineage and deployment record (text, or --json).
verify: stream the ledger, recompute its hash chain and check its anchors (the
  mlgate.ledger.head tags on MLflow model versions, when MLFLOW_TRACKING_URI is set, found by
  the ledger's ledger_id, by its location and on the versions it records); exit 1 naming the
  first bad entry on any tampering, and when MLflow holds anchors the ledger does not contain
  or contradicts (an emptied, deleted or re-created ledger). --file checks an exported file
  or a copy. It prints how many anchors were checked; with none, a ledger rewritten in full
  cannot be detected: it warns, and --require-anchors makes that exit 1.
export -o FILE: write a self-contained file an auditor can check with `audit verify --file`.
"""
REQUIRE_HELP = (
    "exit 1 when no anchor from MLflow could be checked (a ledger rewritten in full cannot be "
    "excluded without them); default: a warning"
)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = command_parser(sub, common, "audit", help=HELP, description=DESCRIPTION)
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="who approved the model at REF, when, why, with what evidence",
                              parents=[common])
    add_ref(show)
    add_ledger_option(show)
    show.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_trust_options(show)

    verify = actions.add_parser("verify", help="recompute the ledger's hash chain and anchors",
                                parents=[common])
    add_ledger_option(verify)
    verify.add_argument("--file", metavar="FILE", help="verify this exported (or copied) ledger file offline")
    verify.add_argument("--no-anchors", action="store_true",
                        help="do not read the mlgate.ledger.head anchors from MLflow")
    verify.add_argument("--require-anchors", action="store_true", help=REQUIRE_HELP)
    add_trust_options(verify)

    export = actions.add_parser("export", help="write a self-contained, verifiable copy of the ledger",
                                parents=[common])
    add_ledger_option(export)
    export.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write")
    export.add_argument("--no-anchors", action="store_true",
                        help="do not include the mlgate.ledger.head anchors read from MLflow")
    export.add_argument("--require-anchors", action="store_true", help=REQUIRE_HELP)
    add_trust_options(export)
    return parser


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    from mlgate.commands._common import sequence_number
    from mlgate.commands._signing import KEY_FORMS, add_identity_options

    parser.add_argument(
        "--public-key", metavar="KEY",
        help=f"the recording identity's public key ({KEY_FORMS}): every entry after --unsigned-until must be "
        "signed by it and the signatures must verify, offline; exit 1 naming the first entry that does not",
    )
    parser.add_argument(
        "--unsigned-until", metavar="SEQ", type=sequence_number, default=0,
        help="with --public-key: the last entry written before signing began (default 0: every entry must be "
        "signed); the first signed entry's signature covers the entries before it",
    )
    add_identity_options(parser)


def _trust(args: argparse.Namespace) -> Trust | None:
    """The key the ledger's signatures must verify with (None: signatures are not checked)."""
    if not getattr(args, "public_key", None):
        return None
    from mlgate.commands._signing import load_public_key
    from mlgate.ledger.signed import Trust

    return Trust(load_public_key(args.public_key, args), args.unsigned_until)


def describe_signatures(result: VerifyResult, trust: Trust | None) -> str:
    """What the signature check covered ('' without a key)."""
    if trust is None or not result.entries:
        return ""
    if not result.signed:
        return f"; no entry is signed (all {result.entries} are up to --unsigned-until {trust.unsigned_until})"
    before = (f", the {result.signed_from - 1} before it covered by its signature"
              if result.signed_from and result.signed_from > 1 else "")
    return (f"; {result.signed} signed entries from seq {result.signed_from}{before}, signed by "
            f"{trust.key.description} (hint {trust.key.hint}), verified")


def run(args: argparse.Namespace) -> int:
    if args.audit_action == "verify":
        return run_verify(args)
    if args.audit_action == "export":
        return run_export(args)
    return run_show(args)


# The run functions import the ledger package themselves: `mlgate --help` imports none of it.
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


def check_anchored(args: argparse.Namespace, live: int) -> None:
    """Warn when no anchor from MLflow was checked; refuse with --require-anchors."""
    from mlgate.console import err
    from mlgate.errors import RefusedError

    if live:
        return
    if getattr(args, "require_anchors", False):
        raise RefusedError(
            "no anchor was checked (--require-anchors): a ledger rewritten in full cannot be excluded",
            hint="set MLFLOW_TRACKING_URI (and its credentials) to the MLflow that `mlgate record` "
            "writes the mlgate.ledger.head tags to, and do not pass --no-anchors",
        )
    err(NO_ANCHORS_WARNING)


def _client(args: argparse.Namespace) -> MlflowClient | None:
    from mlgate.ledger.anchors import client_from_env

    return None if getattr(args, "no_anchors", False) else client_from_env()


def _open_existing(args: argparse.Namespace, client: MlflowClient | None) -> Ledger:
    """The ledger ``--ledger`` names; a missing one is tampering when MLflow holds anchors at its location."""
    from mlgate.errors import UsageError
    from mlgate.ledger import TamperedError, open_ledger
    from mlgate.ledger.anchors import find

    ledger = open_ledger(args.ledger)
    if ledger.exists():
        return ledger
    anchors = find(client, identity=None, locations=ledger.locations()) if client is not None else []
    at_location = [a for a in anchors if a.location in ledger.locations()]
    if at_location:
        first = at_location[0]
        raise TamperedError(
            f"no ledger at {ledger.location}, but MLflow holds {len(at_location)} anchor(s) of a ledger at this "
            f"location (e.g. {first.value[:80]} on {first.model}, {first.describe()}): the ledger was deleted",
            line=0,
            seq=None,
        )
    raise UsageError(
        f"no ledger at {ledger.location}",
        hint="point --ledger (or MLGATE_LEDGER) at the ledger that `mlgate record` writes",
    )


def _live_anchors(client: MlflowClient | None, result: VerifyResult, *, identity: str | None,
                  locations: tuple[str, ...], what: str) -> list[Anchor]:
    """Check the anchors MLflow holds for this ledger (by identity, location and recorded models); its own ones."""
    from mlgate.ledger.anchors import check, find, recorded_model_names

    if client is None:
        return []
    anchors = find(client, identity=identity, locations=locations, models=recorded_model_names(result))
    check(anchors, result, identity=identity, locations=locations, what=what)
    return [a for a in anchors if identity is not None and a.ledger == identity]


def _verify_file(args: argparse.Namespace) -> int:
    from mlgate.console import out
    from mlgate.ledger.export import verify_file

    client = _client(args)
    trust = _trust(args)
    result, header = verify_file(args.file, trust=trust)
    identity = result.ledger_id or (header.ledger_id if header else None)
    locations = (header.source,) if header and header.source else ()
    own = _live_anchors(client, result, identity=identity, locations=locations, what=f"the file {args.file}")
    text = describe_result(result, args.file, live=len(own)) + describe_signatures(result, trust)
    if header is not None:
        copied = header.anchor_count
        text += (
            f" (export of {header.source} at {header.exported_at}, "
            f"{copied} anchor(s) checked from its header"
            + (", which travel with the file" if copied else "")
            + ")"
        )
    out(text)
    check_anchored(args, len(own))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mlgate.console import out
    from mlgate.ledger.anchors import anchor_name

    if args.file:
        return _verify_file(args)
    client = _client(args)
    trust = _trust(args)
    ledger = _open_existing(args, client)
    result = ledger.verify(trust=trust)
    identity = result.ledger_id or (anchor_name(ledger) if result.entries else None)
    own = _live_anchors(client, result, identity=identity, locations=ledger.locations(),
                        what=f"the ledger {ledger.location}")
    result = replace(result, anchors_checked=len(own))
    out(describe_result(result, ledger.location) + describe_signatures(result, trust))
    check_anchored(args, result.anchors_checked)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mlgate.console import out
    from mlgate.ledger.anchors import anchor_name, by_seq
    from mlgate.ledger.export import export_ledger

    client = _client(args)
    trust = _trust(args)
    ledger = _open_existing(args, client)
    first_pass = ledger.verify(trust=trust)
    identity = first_pass.ledger_id or (anchor_name(ledger) if first_pass.entries else None)
    own = _live_anchors(client, first_pass, identity=identity, locations=ledger.locations(),
                        what=f"the ledger {ledger.location}")
    check_anchored(args, len(own))  # before writing: --require-anchors writes nothing
    result = export_ledger(ledger, args.output, anchors=by_seq(own), trust=trust)
    out(describe_result(result, ledger.location) + describe_signatures(result, trust))
    out(f"exported to {args.output}; check it offline with `mlgate audit verify --file {args.output}`")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import json

    from mlgate.console import out
    from mlgate.ledger.anchors import client_from_env
    from mlgate.ledger.show import audit_answer, render_text
    from mlgate.platforms import detect_platform

    platform = detect_platform(args.platform)
    ledger = _open_existing(args, client_from_env())
    trust = _trust(args)
    if trust is not None:  # the answer comes only from a ledger whose signatures verify
        ledger.verify(trust=trust)
    answer = audit_answer(args.ref, ledger)
    if args.json:
        out(json.dumps(answer.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        out(render_text(answer))
    if platform.is_ci:
        platform.summary(show_markdown(answer.to_json()))
    return 0 if answer.recorded else 1


def show_markdown(answer: dict[str, Any]) -> str:
    """The step summary of `audit show`: who approved the version, why, with what evidence, where it runs."""
    from mlgate.evidence.markdown import cell, folded_table, mermaid_chain
    from mlgate.jsonvalue import Fields

    model, approval, ledger = answer["model"], answer["approval"], answer["ledger"]
    title = f"`{cell(model['ref'])}` (version {cell(model['version'])})"
    if not approval:
        return (f"## mlgate audit show: ❌ no governed record — {title}\n\n"
                f"No approval of this version is in the ledger `{cell(ledger['location'])}` "
                f"({ledger['entries_checked']} entries chain-checked).\n")
    verb = "rolled back to" if approval["event"] == "rolled_back" else "approved for"
    rows = [[a.get("name"), a.get("source"), a.get("time") or "-", a.get("comment") or ""]
            for a in approval["approvers"]]
    evidence, deployment = answer["evidence"], answer["deployment"]
    lines = [f"## mlgate audit show: ✅ {title} {verb} **{cell(approval['stage'])}**", "",
             f"Ledger seq {approval['seq']}, {cell(approval['recorded_at'])}, run by {cell(approval['actor'] or '-')}.",
             "", *folded_table(["approver", "source", "time", "comment"], rows, what="approvers"),
             f"Evidence `sha256:{cell(evidence['sha256'] or '-')}`"
             + (" (matches the version's tag)" if evidence["tag_matches"] else " (**the version's tag differs**)")
             + (f": {cell(evidence['summary'])}" if evidence["summary"] else ""), "",
             f"Deployment: {cell(deployment['run_url'] or deployment['tag'] or '-')}, alias "
             f"`{cell(deployment['alias'])}`", "",
             f"Ledger `{cell(ledger['location'])}`: {ledger['entries_checked']} entries chain-checked, "
             + ("anchor on the version verified" if ledger["anchor_verified"] else "**no anchor on the version**"),
             "", "### Lineage", "", *mermaid_chain(Fields({"lineage": answer["lineage"]}, "audit")), ""]
    history = [[h["seq"], h["time"], h["event"], h["stage"], ", ".join(h["approvers"])] for h in answer["history"]]
    if len(history) > 1:
        lines += ["### History of this version", "",
                  *folded_table(["seq", "time", "event", "stage", "approvers"], history, what="ledger entries")]
    return "\n".join(lines) + "\n"
