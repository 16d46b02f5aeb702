"""The audit ledger interface: append-only, hash-chained entries behind one abstract class.

Every entry is one line of canonical JSON (sorted keys, no spaces, UTF-8) carrying ``v``,
``seq``, ``prev`` (the previous entry's hash; 64 zeros for the first), ``time``, ``event``,
the model ref, stage, actor, approvers, evidence digest, CI run URL, idempotency key,
``details``, an optional ``sig`` (the recording identity's signature, :mod:`.signed`) and
``hash``: the SHA-256 of the canonical JSON of the entry *without* its ``hash`` key.
Verification hashes the stored bytes themselves (the line minus its hash member), so a change
of any single byte anywhere breaks the line's JSON, its own hash, or the next entry's ``prev``;
rewriting the whole chain from some entry on is caught by the anchors (``mlgate.ledger.head``
tags written on model versions, see :mod:`.anchors`) and, in a signed ledger, by the signatures.

:func:`parse_line` parses and type-checks a line once into an :class:`Entry` (a wrong-typed
field is tampering, named by line and field). :meth:`Ledger.append` holds the one append
algorithm (read a snapshot, find the idempotency key or the last entry, chain, write only if
the store is unchanged, retry on a conflict); a back-end (``file``, ``azure-blob``) implements
only :meth:`Ledger.snapshot` and :meth:`Ledger.append_if_unchanged` (plus reading), so two
writers neither lose nor fork entries.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import random
import re
import time as _time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from mlgate.errors import EvaluationError, RefusedError, UsageError
from mlgate.integrity.manifest import canonical_json
from mlgate.jsonvalue import kind_of

if TYPE_CHECKING:
    from mlgate.ledger.signed import HeadCheck, Trust
    from mlgate.signing.keys import Signer

GENESIS = "0" * 64
FORMAT_VERSION = 1
LEDGER_ID = "ledger_id"  # key in seq 1's details: the ledger's identity wherever it is stored
EVENTS = ("sealed", "gated", "approved", "rolled_back", "refused")  # `approved` is written after the deployment
ANCHORING_EVENTS = ("approved", "rolled_back")  # the entries `record`/`rollback` anchor on a version
MAX_LINE = 4 << 20  # no entry mlgate writes comes near this
MAX_ATTEMPTS = 40
SIG_KEY = "sig"  # a signed entry's {"keyid": HINT, "sig": BASE64}: see mlgate.ledger.signed

# details mlgate writes and reads back, with their types (None is always allowed)
_DETAIL_TYPES: dict[str, tuple[type, str]] = {
    **dict.fromkeys(
        (LEDGER_ID, "platform", "commit", "alias", "previous_version", "from_version", "to_version",
         "approved_entry", "replaced_entry", "action", "approval_source", "approval_for", "duty_rules_source",
         "manifest_sha256", "evidence_signed_by"),
        (str, "a string"),
    ),
    **dict.fromkeys(("passed", "evidence_in_ledger"), (bool, "a boolean")),
    **dict.fromkeys(("evidence", "duty_rules"), (dict, "an object")),
}
_ENTRY_TEXT = ("model", "stage", "actor", "evidence_sha256", "run_url", "key")
_APPROVER_TEXT = ("id", "comment", "time", "source")


def utc_now() -> str:
    """Current time as ISO 8601 UTC with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_HASH_MATCH = re.compile(r"[0-9a-f]{64}").fullmatch
_DECODE = json.JSONDecoder().decode


class TamperedError(RefusedError):
    """The ledger's chain does not verify (exit 1)."""

    def __init__(self, message: str, *, line: int, seq: int | None) -> None:
        super().__init__(
            message,
            hint="the ledger was changed after it was written; restore it from a trusted copy "
            "(an export, or the store's versioning/soft delete) and investigate who changed it",
        )
        self.line = line
        self.seq = seq


class _Shape(ValueError):
    """A field of the wrong type (turned into a TamperedError naming the line)."""


_TEXT_OR_NULL = frozenset((str, type(None)))


def _check_texts(data: Mapping[str, object], names: tuple[str, ...], path: object = None) -> None:
    """Every one of ``names`` in ``data`` is a string or absent/null (checked in C first: this runs per line)."""
    if set(map(type, map(data.get, names))) <= _TEXT_OR_NULL:
        return
    for name in names:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise _Shape(f"field {f'{path}.' if path else ''}{name}: expected a string, got {kind_of(value)}")


_T = TypeVar("_T")


def _built(cls: type[_T], **values: Any) -> _T:
    """An instance of the frozen dataclass ``cls`` from already type-checked ``values`` (every field).

    The frozen ``__init__`` sets each field through ``object.__setattr__``, which made parsing
    several times slower; ``parse_line`` runs once per stored line, so it fills the fields directly.
    """
    made = object.__new__(cls)
    made.__dict__.update(values)
    return made


class _ApproverPath:
    """``approvers[i]``, formatted only when a message needs it (parsing runs once per line)."""

    __slots__ = ("index",)

    def __init__(self, index: int | None) -> None:
        self.index = index

    def __str__(self) -> str:
        return "approvers" if self.index is None else f"approvers[{self.index}]"


@dataclass(frozen=True)
class Approver:
    """One named approver as the ledger records it."""

    name: str
    id: str | None = None
    comment: str | None = None
    time: str | None = None
    source: str | None = None
    identities: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: object, index: int | None = None) -> Approver:
        """An approver from its JSON object (``index``: its place in ``approvers``, for messages)."""
        path = _ApproverPath(index)
        if value.__class__ is not dict:
            if isinstance(value, Approver):
                return value
            if not isinstance(value, Mapping):
                raise _Shape(f"field {path}: expected an object, got {kind_of(value)}")
        get = value.get
        name = get("name")
        if name.__class__ is not str:
            raise _Shape(f"field {path}.name: expected a string, got {kind_of(name)}")
        identities = get("identities") or ()
        if identities and (not isinstance(identities, (list, tuple)) or not set(map(type, identities)) <= {str}):
            raise _Shape(f"field {path}.identities: expected a list of strings")
        _check_texts(value, _APPROVER_TEXT, path)
        return _built(cls, name=name, id=get("id"), comment=get("comment"), time=get("time"), source=get("source"),
                      identities=tuple(identities))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "id": self.id, "comment": self.comment, "time": self.time,
                "source": self.source, "identities": list(self.identities)}


def _approvers(value: object) -> tuple[Approver, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _Shape(f"field approvers: expected a list, got {kind_of(value)}")
    return tuple([Approver.parse(item, i) for i, item in enumerate(value)])


@dataclass(frozen=True)
class Details:
    """An entry's free-form ``details`` object; the keys mlgate reads back are type-checked on parse."""

    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: object) -> Details:
        if value is None:
            return cls({})
        if not isinstance(value, dict):
            raise _Shape(f"field details: expected an object, got {kind_of(value)}")
        for name, item in value.items():
            expected = _DETAIL_TYPES.get(name)
            if expected is not None and item is not None and not isinstance(item, expected[0]):
                raise _Shape(f"field details.{name}: expected {expected[1]}, got {kind_of(item)}")
        return _built(cls, values=value)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def flag(self, name: str) -> bool | None:
        value = self.values.get(name)
        return value if isinstance(value, bool) else None

    def obj(self, name: str) -> Mapping[str, Any] | None:
        value = self.values.get(name)
        return value if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Draft:
    """What a caller wants recorded; the ledger adds ``seq``, ``prev``, ``time`` and ``hash``.

    ``approvers`` may be :class:`Approver` records or their JSON objects (checked here).
    """

    event: str
    model: str | None = None
    stage: str | None = None
    actor: str | None = None
    approvers: Sequence[Approver | Mapping[str, Any]] = ()
    evidence_sha256: str | None = None
    run_url: str | None = None
    key: str | None = None  # idempotency key: an entry with the same key is never added twice
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown ledger event {self.event!r}")
        try:
            object.__setattr__(self, "approvers", _approvers(self.approvers))
        except _Shape as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Entry:
    """One stored, chained ledger entry, every field typed; ``raw`` is the stored line."""

    v: int
    seq: int
    prev: str
    time: str
    event: str
    model: str | None
    stage: str | None
    actor: str | None
    approvers: tuple[Approver, ...]
    evidence_sha256: str | None
    run_url: str | None
    key: str | None
    details: Details
    hash: str
    raw: bytes = field(repr=False, compare=False)
    #: ``(keyid, base64 signature)`` of a signed entry (see :mod:`.signed`), None for an unsigned one
    signature: tuple[str, str] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The stored JSON object (a fresh copy)."""
        value: dict[str, Any] = json.loads(self.raw)
        return value

    def line(self) -> bytes:
        return self.raw

    @property
    def anchor(self) -> str:
        """The value written to the ``mlgate.ledger.head`` model version tag: ``SEQ:HASH``."""
        return f"{self.seq}:{self.hash}"

    @property
    def ledger_id(self) -> str | None:
        """The ``ledger_id`` this entry carries (the first entry of a ledger does)."""
        return self.details.text(LEDGER_ID) or None

    @property
    def approver_names(self) -> list[str]:
        return [a.name for a in self.approvers]


def entry_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an entry without its ``hash`` key."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def _typed(data: Mapping[str, Any], raw: bytes, claimed: str) -> Entry:
    """The typed entry of an already self-checked line (raises _Shape naming a wrong-typed field)."""
    version = data.get("v", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Shape(f"field v: expected an integer, got {kind_of(version)}")
    _check_texts(data, _ENTRY_TEXT)
    get = data.get
    return _built(Entry, v=version, seq=data["seq"], prev=data["prev"], time=data["time"], event=data["event"],
                  model=get("model"), stage=get("stage"), actor=get("actor"), approvers=_approvers(get("approvers")),
                  evidence_sha256=get("evidence_sha256"), run_url=get("run_url"), key=get("key"),
                  details=Details.parse(get("details")), hash=claimed, raw=raw, signature=_signature(get(SIG_KEY)))


def _signature(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if value.__class__ is not dict:
        raise _Shape(f"field {SIG_KEY}: expected an object, got {kind_of(value)}")
    assert isinstance(value, dict)
    keyid, sig = value.get("keyid"), value.get("sig")
    if keyid.__class__ is not str or sig.__class__ is not str or set(value) != {"keyid", "sig"}:
        raise _Shape(f"field {SIG_KEY}: expected exactly the strings keyid and sig")
    return keyid, sig


def chain(draft: Draft, previous: Entry | None, *, time: str | None = None, signer: Signer | None = None) -> Entry:
    """Build the entry that follows ``previous`` (None: the first entry); ``signer`` signs it.

    The first entry's details carry a random ``ledger_id``: the ledger's identity, which the
    anchors on model versions name, so a copy, an export or a moved file finds its anchors.
    A signed entry's ``sig`` is made over the entry without ``hash`` and ``sig``; the ``hash``
    then covers the ``sig`` too (so the next entry's signature covers this one's).
    """
    details = dict(draft.details)
    if previous is None:
        details.setdefault(LEDGER_ID, uuid.uuid4().hex)
    body: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "seq": previous.seq + 1 if previous else 1,
        "prev": previous.hash if previous else GENESIS,
        "time": time or utc_now(),
        "event": draft.event,
        "model": draft.model,
        "stage": draft.stage,
        "actor": draft.actor,
        "approvers": [Approver.parse(a, i).to_json() for i, a in enumerate(draft.approvers)],
        "evidence_sha256": draft.evidence_sha256,
        "run_url": draft.run_url,
        "key": draft.key,
        "details": details,
    }
    if signer is not None:
        from mlgate.ledger.signed import sign_body

        body[SIG_KEY] = sign_body(body, signer)
    body["hash"] = digest = entry_hash(body)
    raw = canonical_json(body) + b"\n"
    try:
        return _typed(body, raw, digest)
    except _Shape as exc:
        raise ValueError(f"cannot record this entry: {exc}") from None


def ledger_id(first: Entry) -> str | None:
    """The ``ledger_id`` recorded in a ledger's first entry, if any."""
    return first.ledger_id


def _body_bytes(raw: bytes, claimed: str) -> bytes | None:
    """The stored line without its top-level ``hash`` member: the bytes the hash covers.

    Canonical JSON has no insignificant bytes, so hashing the stored bytes (rather than a
    re-serialisation) makes any change of any byte outside the hash member change the hash.
    Returns None when the member does not occur exactly once (then the slow path re-serialises).
    """
    member = b'"hash":"' + claimed.encode("ascii") + b'"'
    if raw.count(member) != 1:
        return None
    at = raw.index(member)
    end = at + len(member)
    if raw[at - 1 : at] == b",":
        return raw[: at - 1] + raw[end:-1]
    if raw[end : end + 1] == b"," and raw[at - 1 : at] == b"{":
        return raw[:at] + raw[end + 1 : -1]
    if raw[at - 1 : at] == b"{" and raw[end : end + 1] == b"}":
        return raw[:at] + raw[end:-1]
    return None


def _decode(raw: bytes, where: str | None, line: int) -> dict[str, Any]:
    if len(raw) > MAX_LINE:
        raise TamperedError(f"{where or f'line {line}'}: longer than {MAX_LINE >> 20} MiB (limit)", line=line, seq=None)
    if not raw.endswith(b"\n"):
        raise TamperedError(f"{where or f'line {line}'}: incomplete last line (no newline)", line=line, seq=None)
    try:
        data = _DECODE(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise TamperedError(f"{where or f'line {line}'}: not valid JSON ({str(exc)[:200]})", line=line,
                            seq=None) from None
    if data.__class__ is not dict:
        raise TamperedError(f"{where or f'line {line}'}: not a JSON object", line=line, seq=None)
    return data


def _bad(what: str, where: str | None, line: int, seq: int | None) -> TamperedError:
    """The error for line ``line`` (``where`` names it when it is not counted, e.g. "the last line")."""
    place = where or f"line {line}"
    return TamperedError(f"{place} (seq {seq}): {what}" if seq is not None else f"{place}: {what}", line=line,
                         seq=seq)


def parse_line(raw: bytes, *, line: int, where: str | None = None) -> Entry:
    """Parse, self-check and type-check one stored line (not its link to the previous one).

    Raises :class:`TamperedError` naming the line (``where``, default ``line N``) when it is not
    a JSON entry whose ``hash`` is the SHA-256 of its own bytes without the hash member, or when
    a field has the wrong type. (This runs once per line: messages are only formatted on failure.)
    """
    data = _decode(raw, where, line)
    seq = data.get("seq")
    seq_i = seq if seq.__class__ is int else None  # a boolean is not an int here
    claimed = data.pop("hash", None)
    if claimed.__class__ is not str or _HASH_MATCH(claimed) is None:
        raise _bad("missing or malformed hash", where, line, seq_i)
    prev = data.get("prev")
    if prev.__class__ is not str or _HASH_MATCH(prev) is None:
        raise _bad("missing or malformed prev", where, line, seq_i)
    if seq_i is None or seq_i < 1:
        raise _bad("seq must be a positive integer", where, line, None)
    if data.get("event").__class__ is not str or data.get("time").__class__ is not str:
        raise _bad("event and time must be strings", where, line, seq_i)
    body = _body_bytes(raw, claimed)
    if body is None:  # the hash member is not where the canonical form puts it
        body = canonical_json(data)
        if canonical_json({**data, "hash": claimed}) + b"\n" != raw:
            raise _bad("bytes differ from the entry's canonical form", where, line, seq_i)
    actual = hashlib.sha256(body).hexdigest()
    if actual != claimed:
        raise _bad(f"content does not match its hash (expected {claimed}, got {actual})", where, line, seq_i)
    try:
        return _typed(data, raw, claimed)
    except _Shape as exc:
        raise _bad(str(exc), where, line, seq_i) from None


def model_name(ref: str | None) -> str | None:
    """The registered model name of a ``models:/NAME/VERSION`` ref (None for anything else)."""
    if not ref or not ref.startswith("models:/") or "/" not in ref[len("models:/") :]:
        return None
    name = ref[len("models:/") :].rsplit("/", 1)[0]
    return name or None


class Recorded(NamedTuple):
    """An anchoring entry (``approved``/``rolled_back``): what an anchor on a version must name.

    A named tuple, not a dataclass: ``verify`` keeps one per anchoring entry while it streams,
    and a tuple is a quarter of the memory.
    """

    seq: int
    hash: str
    model: str | None
    event: str


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    head: Entry | None
    anchors_checked: int = 0
    ledger_id: str | None = None
    #: anchoring entries by seq (an anchor can only name one of these)
    recorded: Mapping[int, Recorded] = field(default_factory=dict, repr=False)
    #: with a trusted key: how many entries are signed, and the seq of the first one (see :mod:`.signed`)
    signed: int = 0
    signed_from: int | None = None

    @property
    def recorded_models(self) -> dict[str, Recorded]:
        """The last anchoring entry of each model version the ledger records."""
        last: dict[str, Recorded] = {}
        for seq in sorted(self.recorded):
            item = self.recorded[seq]
            if item.model:
                last[item.model] = item
        return last


def verify_lines(
    lines: Iterable[bytes],
    *,
    anchors: Mapping[int, Iterable[tuple[str, str]]] | None = None,
    trust: Trust | None = None,
) -> VerifyResult:
    """Stream ``lines`` and check every entry and link; raise :class:`TamperedError` at the first bad one.

    ``anchors`` maps a ``seq`` to ``(where, hash)`` pairs recorded outside the ledger (an export's
    header); each must name an entry that exists with exactly that hash. The result indexes the
    anchoring entries so the anchors MLflow holds can be checked afterwards (:mod:`.anchors`).
    ``trust`` (a public key): every entry after its ``unsigned_until`` must be signed by it, and the
    last signature must verify (:mod:`.signed` says why that covers every entry before it; use
    :func:`mlgate.ledger.signed.verify_signed` to also name the first entry whose signature fails).
    """
    check = trust.checker() if trust is not None else None
    pending = {seq: list(items) for seq, items in (anchors or {}).items()}
    checked = 0
    previous: Entry | None = None
    first_id: str | None = None
    recorded: dict[int, Recorded] = {}
    count = 0
    expected_seq, expected_prev = 1, GENESIS
    for number, raw in enumerate(lines, start=1):
        entry = parse_line(raw, line=number)
        if entry.seq != expected_seq:
            raise TamperedError(
                f"line {number} (seq {entry.seq}): expected seq {expected_seq} "
                "(an entry was removed, inserted or reordered)",
                line=number,
                seq=entry.seq,
            )
        if entry.prev != expected_prev:
            raise TamperedError(
                f"line {number} (seq {entry.seq}): prev does not match the previous entry's hash "
                f"(expected {expected_prev}, got {entry.prev})",
                line=number,
                seq=entry.seq,
            )
        if number == 1:
            first_id = entry.ledger_id
        if entry.event in ANCHORING_EVENTS:
            recorded[entry.seq] = Recorded(entry.seq, entry.hash, entry.model, entry.event)
        for where, digest in pending.pop(expected_seq, ()):
            checked += 1
            if digest != entry.hash:
                raise TamperedError(
                    f"line {number} (seq {entry.seq}): anchor on {where} says hash {digest}, "
                    f"the ledger has {entry.hash} (the ledger was rewritten)",
                    line=number,
                    seq=entry.seq,
                )
        if check is not None:
            check.see(entry, number)
        previous = entry
        count = number
        expected_seq, expected_prev = expected_seq + 1, entry.hash
    signed, signed_from = check.finish() if check is not None else (0, None)
    if pending:
        seq = min(pending)
        where = pending[seq][0][0]
        raise TamperedError(
            f"anchor on {where} names entry seq {seq}, but the ledger ends at seq {count} "
            "(entries were removed)",
            line=count + 1,
            seq=seq,
        )
    return VerifyResult(entries=count, head=previous, anchors_checked=checked, ledger_id=first_id,
                        recorded=recorded, signed=signed, signed_from=signed_from)


class LedgerUnavailable(EvaluationError):
    """The ledger store could not be read or written (exit 3)."""


class Conflict(Exception):  # a signal between a back-end and Ledger.append, never shown
    """The store changed since the snapshot was read: read it again and retry."""


@dataclass(frozen=True)
class Snapshot:
    """What a back-end read for one append attempt.

    ``lines`` are the stored lines (all of them when asked for the whole ledger, else only the
    last one, or none for an empty store); ``size`` and ``etag`` say which state they are of,
    for :meth:`Ledger.append_if_unchanged`.
    """

    lines: Iterable[bytes]
    size: int
    etag: str | None = None
    whole: bool = True


def find_key(lines: Iterable[bytes], key: str | None, *, whole: bool = True) -> tuple[Entry | None, Entry | None]:
    """Scan ``lines`` for an entry with ``key``; return ``(match, last entry)``.

    Candidate lines and the last line are fully self-checked, so a tampered tail is never
    appended to silently. ``whole=False``: ``lines`` is only the store's last line.
    """
    needle = json.dumps(key, ensure_ascii=False).encode("utf-8") if key is not None else None
    match: Entry | None = None
    last_raw: bytes | None = None
    last_number = 0
    for number, raw in enumerate(lines, start=1):
        if match is None and needle is not None and needle in raw:
            entry = parse_line(raw, line=number)
            if entry.key == key:
                match = entry
        last_raw, last_number = raw, number
    if last_raw is None:
        return match, None
    last = parse_line(last_raw, line=last_number, where=None if whole else "the last line")
    return match, last


class Ledger(abc.ABC):
    """An append-only, hash-chained store of audit entries."""

    #: a short, secret-free description of where the ledger lives (for messages)
    location: str = "ledger"
    #: the recording identity's key: when set, every appended entry is signed (see :mod:`.signed`)
    signer: Signer | None = None

    # -- what a back-end implements -------------------------------------------------------
    @abc.abstractmethod
    def lines(self) -> Iterator[bytes]:
        """Stream the stored lines, oldest first, each ending with ``\\n`` (except a torn tail)."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store holds a ledger at all."""

    @abc.abstractmethod
    def snapshot(self, *, whole: bool) -> Snapshot:
        """The store's current state: every line (``whole``) or only the last; raise :class:`Conflict` to retry."""

    @abc.abstractmethod
    def append_if_unchanged(self, line: bytes, snapshot: Snapshot) -> None:
        """Append ``line`` only if the store is still as ``snapshot`` saw it, else raise :class:`Conflict`."""

    def locations(self) -> tuple[str, ...]:
        """Every name of where this ledger is that an anchor may carry (``location`` first)."""
        return (self.location,)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held around a whole append (a lock, the translation of the store's errors)."""
        return contextlib.nullcontext()

    # -- the one append algorithm ---------------------------------------------------------
    def append(self, draft: Draft) -> tuple[Entry, bool]:
        """Chain and store ``draft``; return ``(entry, created)``.

        When ``draft.key`` is set and an entry with that key exists, nothing is written and
        that existing entry is returned with ``created=False`` (re-runs add no duplicate).
        """
        with self.writing():
            for attempt in range(MAX_ATTEMPTS):
                try:
                    snapshot = self.snapshot(whole=draft.key is not None or self.signer is not None)
                    lines, head = _watched(snapshot.lines, self.signer)
                    match, last = find_key(lines, draft.key, whole=snapshot.whole)
                    if match is not None:
                        return match, False
                    if head is not None:
                        head.check(last, location=self.location)
                    elif last is not None and last.signature is not None:
                        raise _unsigned_onto_signed(self.location, last)
                    entry = chain(draft, last, signer=self.signer)
                    self.append_if_unchanged(entry.line(), snapshot)
                    if entry.seq == 1:
                        self._known_identity = entry.ledger_id
                    return entry, True
                except Conflict:
                    _time.sleep(random.uniform(0, min(0.05 * (2 ** min(attempt, 5)), 1.0)))  # noqa: S311
        raise LedgerUnavailable(
            f"gave up appending to {self.location} after {MAX_ATTEMPTS} conflicting writers",
            hint="too many pipelines are recording at the same instant; re-run this step",
        )

    # -- reading --------------------------------------------------------------------------
    #: the ledger_id once this process has read (or written) the first entry: it never changes, so
    #: `record` reads the ledger for the evidence binding and for the conditional append, not a third time
    _known_identity: str | None = None

    def identity(self) -> str | None:
        """The ``ledger_id`` in the first entry (None: an empty ledger or a first entry without one)."""
        if self._known_identity is not None:
            return self._known_identity
        lines = self.lines()
        try:
            first = next(lines, None)
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()
        self._known_identity = parse_line(first, line=1).ledger_id if first is not None else None
        return self._known_identity

    def entries(self) -> Iterator[Entry]:
        """Stream the entries, checking each line and link as it goes (tampering raises)."""
        previous: Entry | None = None
        for number, raw in enumerate(self.lines(), start=1):
            entry = parse_line(raw, line=number)
            if entry.seq != (previous.seq + 1 if previous else 1) or entry.prev != (
                previous.hash if previous else GENESIS
            ):
                raise TamperedError(
                    f"line {number} (seq {entry.seq}): broken chain; run `mlgate audit verify`",
                    line=number,
                    seq=entry.seq,
                )
            if number == 1:
                self._known_identity = entry.ledger_id
            previous = entry
            yield entry

    def verify(
        self, *, anchors: Mapping[int, Iterable[tuple[str, str]]] | None = None, trust: Trust | None = None
    ) -> VerifyResult:
        if trust is None:
            return verify_lines(self.lines(), anchors=anchors)
        from mlgate.ledger.signed import verify_signed

        return verify_signed(self.lines, anchors=anchors, trust=trust)


def _unsigned_onto_signed(location: str, last: Entry) -> UsageError:
    """An unsigned append onto a signed ledger would make it fail verification: exit 2, nothing written."""
    keyid = last.signature[0] if last.signature else ""
    return UsageError(
        f"the ledger {location} is signed (its last entry, seq {last.seq}, by the key with hint {keyid[:80]}), "
        "and this command has no ledger key: an unsigned entry would make the ledger fail verification",
        hint="pass --ledger-key KEY (or set MLGATE_LEDGER_KEY) with the key that signs this ledger",
    )


def _watched(lines: Iterable[bytes], signer: Signer | None) -> tuple[Iterable[bytes], HeadCheck | None]:
    """``lines`` as they are, or (with a signer) watched for signed entries before the one appended onto."""
    if signer is None:
        return lines, None
    from mlgate.ledger.signed import HeadCheck

    head = HeadCheck(lines, signer)
    return head, head
