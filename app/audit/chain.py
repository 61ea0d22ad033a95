"""The hash chain: the canonical form of an event, its hash, and appending events under the head lock.

docs/audit-format.md specifies all of this byte for byte, so that a third party can write its own verifier
from that page alone; a test reproduces the page's worked example with this module.

An event's ``hash`` is SHA-256 over its predecessor's hash (64 lowercase hex digits, ASCII) followed by the
canonical JSON of every other member (``seq`` and ``prev_hash`` included). The first event's ``prev_hash``
is 64 zeros. ``append`` gives events their ``seq``, ``prev_hash`` and ``hash`` in the caller's transaction
while holding the head row's lock, so that writers never fork the chain:

* PostgreSQL: ``SELECT ... FOR UPDATE`` on the head row (every process waits for the one before it);
* SQLite: a no-op ``UPDATE`` of the head row first, which takes the database's write lock before the head
  is read (a plain ``SELECT`` would read a snapshot another process may move on before we write).

The lock is held until the caller commits: keep what follows an ``append`` short.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import orjson
from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.errors import NotCanonicalisable
from app.audit.models import AuditChainHead, AuditEventRow

GENESIS_HASH: Final = "0" * 64
HEAD_ID: Final = 1

MEMBERS_V1: Final = (
    "event_id",
    "seq",
    "at",
    "request_id",
    "client_id",
    "actor",
    "action",
    "purpose",
    "dossier_id",
    "subject_ref",
    "fields",
    "sensitive_fields",
    "outcome",
    "status_code",
    "reason",
    "detail",
    "prev_hash",
)
"""What the hash of an event of format 1 covers (every event written before issue 15)."""
ADDED_IN_V2: Final = ("end_user", "client_ip", "job_id")
"""Members format 2 adds (null where they do not apply); an event of format 1 has them null."""
MEMBERS_V2: Final = (*MEMBERS_V1, *ADDED_IN_V2, "format")
"""What the hash of an event of format 2 covers: format 1's members, the three added ones, and ``format``."""
FORMATS: Final = {1: MEMBERS_V1, 2: MEMBERS_V2}
CURRENT_FORMAT: Final = 2
"""The format of every event written now (docs/audit-format.md, section 2)."""
MEMBERS: Final = MEMBERS_V2
"""Every stored member of an event but ``hash`` (the columns the appenders write)."""

RECORD_MEMBERS: Final = tuple(m for m in MEMBERS if m not in {"seq", "prev_hash", "format"})

EVENTS: Final = cast(Table, AuditEventRow.__table__)
"""What a caller of ``append`` provides: the chain adds ``seq``, ``prev_hash`` and ``hash``."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Integers beyond this are refused: other JSON implementations would round them (RFC 8785 §3.2.2.3)."""


# --- canonical form ----------------------------------------------------------------------------------------


def format_timestamp(at: datetime) -> str:
    """RFC 3339 in UTC with exactly six fraction digits and ``Z``: ``2026-11-26T09:30:00.000000Z``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise NotCanonicalisable("naive timestamp")
    utc = at if at.tzinfo is UTC else at.astimezone(UTC)
    # isoformat pads the year to four digits and, for UTC, always ends in "+00:00" (six characters).
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def _check(value: Any) -> None:
    """Refuse what JSON implementations disagree on; everything else serialises one way only."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise NotCanonicalisable("integer out of the safe range")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonicalisable("object key is not a string")
            _check(item)
        return
    raise NotCanonicalisable(f"{type(value).__name__} has no canonical form")


def canonical(event: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``event`` (every member of its format, ``FORMATS[event["format"]]``, format 1
    when it has none; ``hash`` and anything else ignored). An event of format 1 has no member of format 2:
    one that does was not written by the gateway (NotCanonicalisable, so verification reports it).

    JSON, members sorted by code point at every level, no whitespace, UTF-8 without escaping non-ASCII,
    ``at`` as ``format_timestamp``; strings exactly as stored (the writer stores NFC).

    Every event is hashed on write and on every verification, so an ordinary event (strings, integers,
    booleans, ``None``, lists of strings: every citizen event) is encoded in one call to orjson, whose
    output for exactly these values is the canonical text (sorted keys, no whitespace, UTF-8, the same
    escapes; ~14 → ~5 µs an event). Any other event (a ``detail`` object, mostly) goes member by member
    through ``_canonical_members``. The bytes are those of ``json.dumps`` over the whole document
    (tests/audit/test_format.py compares the two on random events).
    """
    version = event.get("format", 1)
    layout = _LAYOUTS.get(version) if type(version) is int else None
    if layout is None:
        raise NotCanonicalisable("unknown format")
    members_but_at, prefixes = layout
    if version == 1 and any(event.get(name) is not None for name in ADDED_IN_V2):
        raise NotCanonicalisable("a format 1 event has a member of format 2")
    at = event["at"]
    if not isinstance(at, datetime):
        raise NotCanonicalisable("`at` is not a timestamp")
    plain: dict[str, Any] = {"at": format_timestamp(at)}
    for name in members_but_at:
        value = event[name]
        kind = type(value)
        if kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise NotCanonicalisable("integer out of the safe range")
        elif not (
            kind is str
            or value is None
            or kind is bool
            or (kind is list and all(type(item) is str for item in value))
        ):
            return _canonical_members(event, prefixes)
        plain[name] = value
    try:
        return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate cannot be UTF-8
        raise NotCanonicalisable("UnicodeEncodeError") from None


def _canonical_members(event: Mapping[str, Any], prefixes: tuple[tuple[str, str], ...]) -> bytes:
    """``canonical``, member by member in sorted order: any value, through ``_encode_value`` where needed."""
    parts: list[str] = []
    for name, prefix in prefixes:
        value = event[name]
        kind = type(value)
        if name == "at":
            if not isinstance(value, datetime):
                raise NotCanonicalisable("`at` is not a timestamp")
            parts.append(prefix + '"' + format_timestamp(value) + '"')
        elif kind is str:
            parts.append(prefix + _encode_string(value))
        elif value is None:
            parts.append(prefix + "null")
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise NotCanonicalisable("integer out of the safe range")
            parts.append(prefix + int.__repr__(value))
        elif kind is list and all(type(item) is str for item in value):
            parts.append(prefix + "[" + ",".join(map(_encode_string, value)) + "]")
        else:
            parts.append(prefix + _encode_value(value))
    try:
        return ("{" + ",".join(parts) + "}").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8
        raise NotCanonicalisable("UnicodeEncodeError") from None


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
"""The canonical JSON encoder, made once (``json.dumps`` with these options builds one per call)."""
_LAYOUTS: Final = {
    version: (
        tuple(name for name in members if name != "at"),
        tuple((name, f'"{name}":') for name in sorted(members)),
    )
    for version, members in FORMATS.items()
}
"""Per format: its members but ``at``, and its members in canonical order with their encoded keys (plain
ASCII names: nothing to escape)."""
_encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
"""The JSON string encoder ``_ENCODER`` itself uses with ``ensure_ascii=False``: quotes, escapes ``"``, ``\\``
and the characters below U+0020 (lowercase ``\\u00xx``), leaves every other character as it is."""


def _encode_value(value: Any) -> str:
    """The canonical JSON of one member's value (JSON encoding is compositional: the same text as inside the
    whole document)."""
    _check(value)
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise NotCanonicalisable(type(exc).__name__) from None


def link_hash(prev_hash: str, canonical_bytes: bytes) -> str:
    """SHA-256 over ``prev_hash`` (ASCII hex) followed by ``canonical_bytes``, as 64 lowercase hex digits."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes).hexdigest()


def event_hash(event: Mapping[str, Any]) -> str:
    """The hash ``event`` must carry (computed from its other members, ``prev_hash`` included)."""
    return link_hash(str(event["prev_hash"]), canonical(event))


def _nfc(value: Any) -> Any:
    """``value`` with every string in it (keys too) in NFC; the common cases first, as on every event."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else unicodedata.normalize("NFC", value)  # ASCII is NFC already
    if value is None or kind is int or kind is datetime:
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [_nfc(item) for item in value]
    if isinstance(value, Mapping):
        return {_nfc(key): _nfc(item) for key, item in value.items()}
    return value


# --- the head and appending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    log_id: str
    seq: int
    hash: str


async def read_head(session: AsyncSession) -> Head | None:
    """The head as last committed (no lock): a consistent (seq, hash) pair for checkpoints and checks."""
    row = (
        await session.execute(
            select(AuditChainHead.log_id, AuditChainHead.seq, AuditChainHead.hash).where(
                AuditChainHead.id == HEAD_ID
            )
        )
    ).one_or_none()
    return None if row is None else Head(row.log_id, row.seq, row.hash)


async def blocked_at(session: AsyncSession) -> int | None:
    """The ``seq`` of the first stored event that stands where the next append must go, or None.

    Every event the gateway writes moves the head in the same transaction, so an event after the head (or
    one already linked to the head's hash) was put there by someone else: the next append collides with it
    (``seq`` and ``prev_hash`` are unique) and the log takes no new event until an operator has looked. Two
    index lookups; the integrity check says what happened (``inserted``), this only says that the chain is
    blocked (``/readyz``)."""
    head = await read_head(session)
    if head is None:  # the next append makes the head after the last event
        return None
    # Two lookups, not one ``min(seq) ... WHERE seq > :seq OR prev_hash = :hash``: PostgreSQL plans a statement
    # asyncpg has prepared generically after five runs, and the generic plan of that one walked the whole
    # primary key (a third of a second with 1,000,000 events, on every dashboard view and /readyz).
    after = await session.scalar(
        select(AuditEventRow.seq).where(AuditEventRow.seq > head.seq).order_by(AuditEventRow.seq).limit(1)
    )
    linked = await session.scalar(
        select(AuditEventRow.seq).where(AuditEventRow.prev_hash == head.hash).limit(1)
    )
    found = [int(seq) for seq in (after, linked) if seq is not None]
    return min(found) if found else None


async def ensure_head(session: AsyncSession) -> Head:
    """The head, made first if it is missing (flushed in ``session``'s transaction: commit it)."""
    head = await read_head(session)
    if head is None:
        await _create_head(session, session.get_bind().dialect.name)
        head = await read_head(session)
        if head is None:  # inserted just above, or by a concurrent writer
            raise RuntimeError("the audit chain head could not be created")
    return head


Database = AsyncSession | AsyncConnection
"""What ``append`` writes through: the caller's session (administrative changes) or a connection."""


def _dialect(db: Database) -> str:
    return db.get_bind().dialect.name if isinstance(db, AsyncSession) else db.dialect.name


async def _locked_head(db: Database) -> Head:
    """The head, locked until ``db``'s transaction ends: one statement on either database."""
    dialect = _dialect(db)
    columns = (AuditChainHead.log_id, AuditChainHead.seq, AuditChainHead.hash)
    if dialect == "sqlite":
        # A write first: it takes the database's write lock (waiting busy_timeout for it) before the head is
        # read, so no two writers read the same head. A plain SELECT would read a snapshot instead.
        query: Any = (
            update(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .values(seq=AuditChainHead.seq)
            .returning(*columns)
        )
    else:
        query = select(*columns).where(AuditChainHead.id == HEAD_ID).with_for_update()
    row = (await db.execute(query)).one_or_none()
    if row is None:
        await _create_head(db, dialect)
        row = (await db.execute(query)).one()
    return Head(row.log_id, row.seq, row.hash)


async def lock_chain(db: Database) -> None:
    """Take the chain head's lock now, in ``db``'s transaction, until it ends: an administrative change that
    must judge the others' committed state (the last administrator) takes it before it reads, as every
    administrative change takes it before it commits (``append``)."""
    await _locked_head(db)


async def _create_head(db: Database, dialect: str) -> None:
    """The head row, when it is missing: at genesis, or after the last event if events exist (the
    migration makes it; this covers a database whose tables were emptied)."""
    last = (
        await db.execute(
            select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq.desc()).limit(1)
        )
    ).one_or_none()
    values = {
        "id": HEAD_ID,
        "log_id": str(uuid.uuid4()),
        "seq": last.seq if last is not None else 0,
        "hash": last.hash if last is not None else GENESIS_HASH,
    }
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    # Two processes may both find it missing: the second one's insert does nothing.
    await db.execute(upsert(AuditChainHead).values(values).on_conflict_do_nothing())


def chain_events(head: Head, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``records`` (the members of RECORD_MEMBERS) as the events that follow ``head``: strings in NFC, then
    ``seq``, ``prev_hash`` and ``hash``. NotCanonicalisable for a value the format does not define."""
    seq, prev = head.seq, head.hash
    events: list[dict[str, Any]] = []
    for record in records:
        seq += 1
        event: dict[str, Any] = {}
        for name in RECORD_MEMBERS:  # _nfc, with its two commonest cases first
            value = record.get(name)
            if type(value) is str:
                event[name] = value if value.isascii() else unicodedata.normalize("NFC", value)
            else:
                event[name] = value if value is None else _nfc(value)
        event["seq"], event["prev_hash"], event["format"] = seq, prev, CURRENT_FORMAT
        prev = event["hash"] = event_hash(event)
        events.append(event)
    return events


async def append(db: Database, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chain ``records`` (the members of RECORD_MEMBERS) onto the log in ``db``'s transaction.

    Returns the stored events. The head stays locked until the caller commits or rolls back;
    NotCanonicalisable for a value the format does not define (then nothing is written).
    """
    if not records:
        return []
    head = await _locked_head(db)
    events = chain_events(head, records)
    await db.execute(insert(EVENTS), events)
    await db.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(seq=events[-1]["seq"], hash=events[-1]["hash"])
    )
    return events
