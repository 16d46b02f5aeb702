"""The export file: a header line, then the ledger's lines verbatim (JSON Lines).

Header (first line)::

    {"mlgate_ledger_export": 1, "exported_at": ..., "source": ..., "ledger_id": ID | null, "entries": N,
     "head": {"seq": N, "hash": ...} | null, "anchors": [{"where": ..., "seq": S, "hash": H}, ...]}

An auditor checks it offline with ``mlgate audit verify --file FILE``: the chain is
recomputed, the number of entries and the head must match the header (a truncated copy is
caught), and every anchor copied from MLflow at export time must name an entry with that hash.
Those copied anchors travel with the file, so they cannot reveal a rewrite of the file itself;
``audit verify --file`` also checks the anchors MLflow holds for the ledger's ``ledger_id``
(when MLFLOW_TRACKING_URI is set). A plain copy of a ledger file (no header) verifies too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from mlgate.errors import EvaluationError, InvalidInputError, UsageError
from mlgate.integrity.manifest import canonical_json
from mlgate.ledger.base import (
    Entry,
    Ledger,
    TamperedError,
    VerifyResult,
    ledger_id,
    parse_line,
    utc_now,
    verify_lines,
)

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
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("seq"), int)
            or not isinstance(item.get("hash"), str)
            or not isinstance(item.get("where"), str)
        ):
            raise InvalidInputError(
                f"{source}: header anchors[{i}] needs where (string), seq (int), hash (string)"
            )
        result.setdefault(item["seq"], []).append((item["where"], item["hash"]))
    return result


def export_ledger(ledger: Ledger, output: str, *, anchors: Anchors) -> VerifyResult:
    """Verify ``ledger`` while copying it, then write header + lines to ``output`` atomically.

    Nothing is written when the ledger does not verify (a tampered ledger is not exported).
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
        result = verify_lines(_tee(ledger.lines(), body, first), anchors=anchors)
        header = {
            EXPORT_KEY: 1,
            "exported_at": utc_now(),
            "source": ledger.location,
            "ledger_id": ledger_id(first[0]) if first else None,
            "entries": result.entries,
            "head": {"seq": result.head.seq, "hash": result.head.hash} if result.head else None,
            "anchors": anchors_to_list(anchors),
        }
        body.seek(0)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(canonical_json(header) + b"\n")
                while chunk := body.read(1 << 20):
                    stream.write(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp_name, target)
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise EvaluationError(f"cannot write {output}: {exc.strerror}") from exc
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return result


def _tee(lines: Iterable[bytes], sink: BinaryIO, first: list[Entry]) -> Iterator[bytes]:
    for line in lines:
        sink.write(line)
        if not first:
            first.append(parse_line(line, line=1))
        yield line


def file_identity(path: str) -> str | None:
    """The ``ledger_id`` of an exported file or a plain ledger copy (None when it carries none)."""
    try:
        with open(path, "rb") as stream:
            first = stream.readline()
            try:
                parsed = json.loads(first) if first.strip() else None
            except ValueError:
                return None
            if isinstance(parsed, dict) and EXPORT_KEY in parsed:
                parsed = json.loads(stream.readline() or b"null")
    except (OSError, ValueError):
        return None  # verify_file reports an unreadable or broken file
    details = parsed.get("details") if isinstance(parsed, dict) else None
    value = details.get("ledger_id") if isinstance(details, dict) else None
    return value if isinstance(value, str) and value else None


def verify_file(path: str, *, live: Anchors | None = None) -> tuple[VerifyResult, dict[str, Any] | None]:
    """Verify an exported file (or a plain ledger copy); return the result and header.

    ``live`` are anchors read from MLflow now (checked in addition to the header's copies).
    """
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror}", hint="pass the file written by `mlgate audit export -o`"
        ) from exc
    with stream:
        first = stream.readline()
        header: dict[str, Any] | None = None
        try:
            parsed = json.loads(first) if first.strip() else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and EXPORT_KEY in parsed:
            header = parsed
            if header.get(EXPORT_KEY) != 1:
                raise InvalidInputError(f"{path}: unsupported export format {header.get(EXPORT_KEY)!r}")
            anchors = anchors_from_list(header.get("anchors", []), source=path)
            offset = 1
            lines: Iterable[bytes] = stream
        else:
            anchors = {}
            offset = 0
            lines = _chain_first(first, stream)
        try:
            for seq, items in (live or {}).items():
                anchors.setdefault(seq, []).extend(items)
            result = verify_lines(lines, anchors=anchors)
        except TamperedError as exc:
            if offset:  # report lines of the file, not of the ledger inside it
                exc.args = (exc.message.replace(f"line {exc.line}", f"line {exc.line + 1}", 1),)
                exc.message = exc.args[0]
            raise
    if header is not None:
        head = header.get("head")
        expected_hash = head.get("hash") if isinstance(head, dict) else None
        actual_hash = result.head.hash if result.head else None
        if header.get("entries") != result.entries or expected_hash != actual_hash:
            raise TamperedError(
                f"{path}: the header says {header.get('entries')} entries ending with {expected_hash}, "
                f"the file holds {result.entries} ending with {result.head.hash if result.head else None} "
                "(entries were removed or added)",
                line=result.entries + 2,
                seq=None,
            )
    return result, header


def _chain_first(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
