"""The export file: a header line, then the ledger's lines verbatim (JSON Lines).

Header (first line)::

    {"mlgate_ledger_export": 1, "exported_at": ..., "source": ..., "ledger_id": ID | null, "entries": N,
     "head": {"seq": N, "hash": ...} | null, "anchors": [{"where": ..., "seq": S, "hash": H}, ...]}

An auditor checks it offline with ``mlgate audit verify --file FILE``: the chain is
recomputed, the number of entries and the head must match the header (a truncated copy is
caught), and every anchor copied from MLflow at export time must name an entry with that hash.
Those copied anchors travel with the file, so they cannot reveal a rewrite of the file itself;
``audit verify --file`` also checks the anchors MLflow holds (when MLFLOW_TRACKING_URI is set)
for the file's ``ledger_id``, for the header's source location and on the versions the file
records (see :mod:`.anchors`). A plain copy of a ledger file (no header) verifies too.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlgate.errors import InvalidInputError, UsageError
from mlgate.files import atomic_output
from mlgate.integrity.manifest import canonical_json
from mlgate.jsonvalue import Fields, parse_json
from mlgate.ledger.base import (
    MAX_LINE,
    Entry,
    Ledger,
    TamperedError,
    VerifyResult,
    parse_line,
    utc_now,
    verify_lines,
)

if TYPE_CHECKING:
    from mlgate.ledger.signed import Trust

EXPORT_KEY = "mlgate_ledger_export"
Anchors = Mapping[int, list[tuple[str, str]]]


def anchors_to_list(anchors: Anchors) -> list[dict[str, Any]]:
    return [
        {"where": where, "seq": seq, "hash": digest}
        for seq in sorted(anchors)
        for where, digest in anchors[seq]
    ]


def anchors_from_list(items: object, *, source: str) -> dict[int, list[tuple[str, str]]]:
    if not isinstance(items, list):
        raise InvalidInputError(f"{source}: header anchors must be a list")
    result: dict[int, list[tuple[str, str]]] = {}
    for i, item in enumerate(items):
        fields = Fields(item, f"{source}: export header", path=f"anchors[{i}]", error=InvalidInputError)
        seq = fields.raw("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            fields.fail("seq", "expected an integer")
        result.setdefault(seq, []).append((fields.text("where"), fields.text("hash")))
    return result


def export_ledger(ledger: Ledger, output: str, *, anchors: Anchors, trust: Trust | None = None) -> VerifyResult:
    """Verify ``ledger`` while copying it, then write header + lines to ``output`` atomically.

    Nothing is written when the ledger does not verify (a tampered ledger is not exported);
    ``trust``: its signatures are checked too (see :mod:`.signed`).
    """
    target = Path(output)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        body = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}", hint="choose a writable -o FILE") from exc
    with body:
        first: list[Entry] = []
        try:
            result = verify_lines(_tee(ledger.lines(), body, first), anchors=anchors, trust=trust)
        except TamperedError as exc:
            if trust is None:
                raise
            from mlgate.ledger.signed import LastSignatureBad, first_bad_signature

            if not isinstance(exc, LastSignatureBad):
                raise
            raise (first_bad_signature(ledger.lines(), trust) or exc) from None
        header = {
            EXPORT_KEY: 1,
            "exported_at": utc_now(),
            "source": ledger.location,
            "ledger_id": first[0].ledger_id if first else None,
            "entries": result.entries,
            "head": {"seq": result.head.seq, "hash": result.head.hash} if result.head else None,
            "anchors": anchors_to_list(anchors),
        }
        body.seek(0)
        with atomic_output(target) as stream:
            stream.write(canonical_json(header) + b"\n")
            while chunk := body.read(1 << 20):
                stream.write(chunk)
    return result


def _tee(lines: Iterable[bytes], sink: BinaryIO, first: list[Entry]) -> Iterator[bytes]:
    for line in lines:
        sink.write(line)
        if not first:
            first.append(parse_line(line, line=1))
        yield line


@dataclass(frozen=True)
class ExportHeader:
    """The first line of an export file, type-checked."""

    exported_at: str | None
    source: str | None
    ledger_id: str | None
    entries: int
    head_hash: str | None
    anchors: dict[int, list[tuple[str, str]]]

    @property
    def anchor_count(self) -> int:
        return sum(len(items) for items in self.anchors.values())


def parse_header(data: object, *, source: str) -> ExportHeader:
    fields = Fields(data, f"{source}: export header", error=InvalidInputError)
    if fields.raw(EXPORT_KEY) != 1:
        raise InvalidInputError(f"{source}: unsupported export format {fields.raw(EXPORT_KEY)!r}")
    head = fields.opt_obj("head")
    return ExportHeader(
        exported_at=fields.opt_text("exported_at"),
        source=fields.opt_text("source"),
        ledger_id=fields.opt_text("ledger_id") or None,
        entries=fields.integer("entries"),
        head_hash=head.opt_text("hash"),
        anchors=anchors_from_list(fields.raw("anchors") or [], source=source),
    )


def _open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading without blocking on a FIFO; only a regular file is accepted."""
    hint = "pass the file written by `mlgate audit export -o` (or a copy of a ledger file)"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint=hint) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInputError(f"{path}: not a regular file", hint=hint)
    return os.fdopen(fd, "rb")


def verify_file(
    path: str, *, live: Anchors | None = None, trust: Trust | None = None
) -> tuple[VerifyResult, ExportHeader | None]:
    """Verify an exported file (or a plain ledger copy); return the result and header.

    ``live`` are anchors read from MLflow now (checked in addition to the header's copies);
    ``trust``: the entries' signatures are checked too (see :mod:`.signed`).
    """
    with _open_regular(path) as stream:
        first = stream.readline(MAX_LINE + 1)
        header: ExportHeader | None = None
        try:
            parsed = json.loads(first) if first.strip() else None
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict) and EXPORT_KEY in parsed:
            header = parse_header(parse_json(first, what=f"{path}: export header", error=InvalidInputError),
                                  source=path)
            anchors = {seq: list(items) for seq, items in header.anchors.items()}
            offset = 1
            lines: Iterable[bytes] = stream
        else:
            anchors = {}
            offset = 0
            lines = _chain_first(first, stream)
        try:
            for seq, items in (live or {}).items():
                anchors.setdefault(seq, []).extend(items)
            result = _verify_lines(path, lines, anchors, trust, skip=offset)
        except TamperedError as exc:
            if offset:  # report lines of the file, not of the ledger inside it
                exc.args = (exc.message.replace(f"line {exc.line}", f"line {exc.line + 1}", 1),)
                exc.message = exc.args[0]
            raise
    if header is not None:
        _check_header(path, header, result)
    return result, header


def _check_header(path: str, header: ExportHeader, result: VerifyResult) -> None:
    actual_hash = result.head.hash if result.head else None
    if header.entries != result.entries or header.head_hash != actual_hash:
        raise TamperedError(
            f"{path}: the header says {header.entries} entries ending with {header.head_hash}, "
            f"the file holds {result.entries} ending with {actual_hash} "
            "(entries were removed or added)",
            line=result.entries + 2,
            seq=None,
        )
    if header.ledger_id and result.ledger_id and header.ledger_id != result.ledger_id:
        raise TamperedError(
            f"{path}: the header names the ledger {header.ledger_id}, its first entry {result.ledger_id}",
            line=1,
            seq=None,
        )


def _verify_lines(path: str, lines: Iterable[bytes], anchors: Anchors, trust: Trust | None, *,
                  skip: int) -> VerifyResult:
    """verify_lines; when the last signature fails, the file is read again to name the first bad entry."""
    if trust is None:
        return verify_lines(lines, anchors=anchors)
    from mlgate.ledger.signed import LastSignatureBad, first_bad_signature

    try:
        return verify_lines(lines, anchors=anchors, trust=trust)
    except LastSignatureBad as exc:
        with _open_regular(path) as again:
            for _ in range(skip):
                again.readline(MAX_LINE + 1)
            raise (first_bad_signature(again, trust) or exc) from None


def _chain_first(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
