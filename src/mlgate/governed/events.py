"""`sealed` and `gated` entries: who sealed or gated which version, in which run, with what result.

Written by `mlgate seal --model` and `mlgate gate` when a ledger is configured (``--ledger`` or
``MLGATE_LEDGER``), so the audit trail shows every step of a release, not only its approval.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mlgate.console import out
from mlgate.errors import Error
from mlgate.governed.record import run_key
from mlgate.ledger import Draft, open_ledger
from mlgate.platforms.base import CIContext

if TYPE_CHECKING:
    from mlgate.ledger.base import Ledger
    from mlgate.secrets.credentials import IdentityOptions

LEDGER_KEY_VARIABLE = "MLGATE_LEDGER_KEY"  # the environment default of --ledger-key


def open_event_ledger(spec: str, ledger_key: str | None = None,
                      identity: IdentityOptions | None = None) -> Ledger:
    """The ledger ``spec`` with its signing key (``ledger_key``, else ``MLGATE_LEDGER_KEY``) loaded: a key
    that cannot be read or used fails here, before the caller changes anything."""
    key = ledger_key if ledger_key is not None else os.environ.get(LEDGER_KEY_VARIABLE) or None
    return open_ledger(spec, sign=key, identity=identity)


def append_event(
    spec: str,
    event: str,
    *,
    name: str,
    version: str,
    ci: CIContext,
    evidence_sha256: str | None = None,
    details: dict[str, Any],
    fingerprint: str,
    ledger_key: str | None = None,
    identity: IdentityOptions | None = None,
    ledger: Ledger | None = None,
    recorded: str | None = None,
) -> None:
    """Append one ``event`` entry to the ledger ``spec`` (once per CI run, event and version) and say
    where it went. (Not a log line: those are :func:`mlgate.service.logs.log_event`.)

    ``ledger_key`` signs it; a caller without a ``--ledger-key`` option passes None and the entry is
    signed with ``MLGATE_LEDGER_KEY`` when that is set, so every step of a pipeline signs the ledger.
    ``ledger``: the one :func:`open_event_ledger` opened earlier (``spec`` and the key are then not read).
    ``recorded``: what the caller has already changed (e.g. "models:/m/3 is sealed"); a failed append
    then says so and how to finish (the same error class, so the same exit code).
    """
    try:
        if ledger is None:
            ledger = open_event_ledger(spec, ledger_key, identity)
        entry, created = ledger.append(_draft(event, name, version, ci, evidence_sha256, details, fingerprint))
    except Error as exc:
        if recorded is None:
            raise
        raise _not_appended(exc, event, recorded) from None
    state = "entry" if created else "already recorded as entry"
    out(f"ledger {ledger.location}: {event} {state} seq {entry.seq} sha256 {entry.hash}")


def _draft(event: str, name: str, version: str, ci: CIContext, evidence_sha256: str | None,
           details: dict[str, Any], fingerprint: str) -> Draft:
    return Draft(
        event=event,
        model=f"models:/{name}/{version}",
        actor=ci.requester,
        run_url=ci.run_url,
        evidence_sha256=evidence_sha256,
        key=run_key(ci, event, name, version, "", fingerprint),
        details={**details, "platform": ci.platform, "commit": ci.commit},
    )


def _not_appended(exc: Error, event: str, recorded: str) -> Error:
    """``exc`` (its class and exit code kept) saying what stands recorded and how a re-run completes it."""
    exc.message = f"{recorded}, but its `{event}` ledger entry was not appended: {exc.message}"
    finish = ("re-running this step completes it: what is recorded is kept and the entry is appended once "
              "(a re-run in the same CI run adds no second one)")
    exc.hint = f"{exc.hint}. {finish[0].upper()}{finish[1:]}" if exc.hint else finish
    return exc
