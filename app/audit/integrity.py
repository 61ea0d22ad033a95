"""Verifying the audit log: the chain, read in ``seq`` order, and the latest signed checkpoints.

The chain alone shows an event changed, deleted, inserted or moved; the checkpoints (signed with a key the
database does not hold) show a tail cut back or a chain recomputed from scratch. The verifier names the
first bad ``seq`` and the kind of damage in the words of docs/contract.md, Audit; docs/audit-format.md has
the decision table this module implements, so that the answer means the same thing to every reader.

Memory stays flat: events are read in batches (keyset pagination on ``seq``), one short transaction each;
only when something is wrong does the diagnosis look further (a lookup or two, a bounded search).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.chain import GENESIS_HASH, MEMBERS, Head, canonical, link_hash, read_head
from app.audit.checkpoints import (
    ANCHOR_FILE,
    Checkpoint,
    latest_checkpoint,
    latest_checkpoint_file,
    load_checkpoint_key,
    verify_checkpoint,
)
from app.audit.errors import CheckpointFileError, CheckpointKeyError, NotCanonicalisable
from app.audit.models import AuditEventRow
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.jws import SigningKey

Problem = Literal[
    "modified", "deleted", "inserted", "reordered", "truncated", "rewritten", "bad_checkpoint_signature"
]

BATCH_SIZE: Final = 1000
YIELD_EVERY: Final = 100
"""Events hashed between two turns given to the event loop during a walk."""
MOVED_SEARCH: Final = 1024
"""How far ahead the diagnosis looks for the ``seq`` a displaced event was hashed at."""
MAX_CHECKPOINT_FILE_BYTES: Final = 64 * 1024

Progress = Callable[[int], Awaitable[None]]
"""Told after each batch how many events the walk has found intact so far (the console shows it)."""

_COLUMNS = [getattr(AuditEventRow, name) for name in MEMBERS] + [AuditEventRow.hash]


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The answer of ``GET /v1/audit/integrity``, ``{ok, checked, first_bad_seq, problem, checkpoint_seq}``
    (``detail`` is for the CLI)."""

    ok: bool
    checked: int
    """Events found intact: all of them, or those before ``first_bad_seq``."""
    first_bad_seq: int | None
    problem: Problem | None
    checkpoint_seq: int | None
    """The ``seq`` of the latest checkpoint whose signature verifies (or of the one that does not)."""
    detail: str | None = None

    def summary(self) -> str:
        """One line for operators."""
        anchor = (
            f"latest checkpoint at seq {self.checkpoint_seq}"
            if self.checkpoint_seq is not None
            else "no signed checkpoint"
        )
        if self.ok:
            return f"audit log intact: {self.checked} events checked; {anchor}"
        if self.problem == "bad_checkpoint_signature":
            return f"audit log damaged: bad_checkpoint_signature ({self.detail})"
        return (
            f"audit log damaged: {self.problem} at seq {self.first_bad_seq} "
            f"({self.checked} events intact before it; {anchor})"
        )


@dataclass(frozen=True, slots=True)
class CheckpointSource:
    """A checkpoint to check the log against, as found (any JSON: a malformed one fails its signature)."""

    origin: str
    document: object


def read_checkpoint_file(path: Path) -> object:
    """The JSON in ``path``; CheckpointFileError when it cannot be read or parsed."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CHECKPOINT_FILE_BYTES + 1)
        if len(data) > MAX_CHECKPOINT_FILE_BYTES:
            raise CheckpointFileError(f"{path} is too large for a checkpoint")
        document: object = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, CheckpointFileError):
            raise
        raise CheckpointFileError(f"cannot read checkpoint {path}: {type(err).__name__}") from None
    return document


def _consistent(event: Mapping[Any, Any], seq: int) -> bool:
    """Whether ``event`` hashes to its stored ``hash`` when taken to be at ``seq``."""
    try:
        return link_hash(str(event["prev_hash"]), canonical({**event, "seq": seq})) == str(event["hash"])
    except (NotCanonicalisable, KeyError, TypeError):
        return False


async def _seq_where(
    sessionmaker: async_sessionmaker[AsyncSession], condition: ColumnElement[bool]
) -> int | None:
    async with sessionmaker() as session:
        found = await session.scalar(
            select(AuditEventRow.seq).where(condition).order_by(AuditEventRow.seq).limit(1)
        )
    return None if found is None else int(found)


async def _event_at(sessionmaker: async_sessionmaker[AsyncSession], seq: int) -> Mapping[Any, Any] | None:
    async with sessionmaker() as session:
        row = (await session.execute(select(*_COLUMNS).where(AuditEventRow.seq == seq))).one_or_none()
    return None if row is None else row._mapping


async def _diagnose(
    sessionmaker: async_sessionmaker[AsyncSession], event: Mapping[Any, Any], k: int, link: str, start: int
) -> tuple[Problem, int]:
    """Name the damage at the first place the chain breaks: ``event`` is the first event read where the
    event ``k`` was expected, linked to ``link`` (the hash of event ``k - 1``, or of the anchor when ``k`` is
    ``start``). The decision table is in docs/audit-format.md, section 6."""
    seq, prev, own = int(event["seq"]), str(event["prev_hash"]), str(event["hash"])
    if seq != k:  # nothing at seq k: deleted, unless event k's successor-to-be sits further on
        moved = await _seq_where(sessionmaker, AuditEventRow.prev_hash == link)
        return ("reordered", k) if moved is not None else ("deleted", k)
    if prev == link:  # in its place and linked, but its content is not what was hashed
        return "modified", k
    predecessor = await _seq_where(sessionmaker, (AuditEventRow.hash == prev) & (AuditEventRow.seq != k))
    if predecessor is not None:
        # It links to an event elsewhere: behind → the events in between are not part of the chain;
        # ahead → events were moved.
        return ("inserted", predecessor + 1) if predecessor < k - 1 else ("reordered", k)
    if _consistent(event, k):
        # Well formed but linked to no stored event. If the chain carries on from it, the event before it was
        # rewritten together with its hash; otherwise it was put in.
        successor = await _event_at(sessionmaker, k + 1)
        if successor is not None and successor["prev_hash"] == own and k > start:
            return "modified", k - 1
        return "inserted", k
    if any(_consistent(event, s) for s in range(k + 1, k + 1 + MOVED_SEARCH)):
        return "deleted", k  # hashed further on: events before it were removed and the rest renumbered
    return "modified", k


async def verify_chain(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    key: SigningKey | None,
    checkpoints: Sequence[CheckpointSource] = (),
    anchor: CheckpointSource | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> IntegrityReport:
    """Verify the log against ``checkpoints`` (and from ``anchor`` when older events were archived).

    ``key`` verifies the checkpoints' signatures; it is required when any checkpoint is given. The steps:
    check the checkpoints' signatures, find where the chain starts, walk it in ``seq`` order, then hold what
    the walk found against the head and the checkpoints.
    """
    if key is None and (checkpoints or anchor is not None):
        raise CheckpointKeyError("the checkpoint key is needed to verify checkpoints")
    signed = _signed_checkpoints(key, checkpoints, anchor)
    if isinstance(signed, IntegrityReport):
        return signed
    verified, anchor_checkpoint = signed
    head, start, link = await _starting_point(sessionmaker, anchor_checkpoint)
    if anchor_checkpoint is not None:
        verified.append(anchor_checkpoint)
    best = max((c.seq for c in verified), default=None)
    marks = {c.seq for c in verified} | ({head.seq} if head is not None else set())

    walk = await _walk_chain(sessionmaker, start, link, marks, batch_size, progress)
    if walk.broken is not None:
        problem, bad = walk.broken
        return IntegrityReport(False, max(bad - start, 0), bad, problem, best)
    found = await _tail_findings(sessionmaker, walk, start, head, verified)
    if found is not None:
        bad, problem = found
        return IntegrityReport(False, max(bad - start, 0), bad, problem, best)
    return IntegrityReport(True, walk.last - start + 1, None, None, best)


def _signed_checkpoints(
    key: SigningKey | None, checkpoints: Sequence[CheckpointSource], anchor: CheckpointSource | None
) -> tuple[list[Checkpoint], Checkpoint | None] | IntegrityReport:
    """The checkpoints and the anchor, each verified with ``key``; the report of the first that does not."""
    verified: list[Checkpoint] = []
    for source in checkpoints:
        checkpoint = verify_checkpoint(source.document, key) if key is not None else None
        if checkpoint is None:
            return _bad_signature(source)
        verified.append(checkpoint)
    anchor_checkpoint: Checkpoint | None = None
    if anchor is not None and key is not None:
        anchor_checkpoint = verify_checkpoint(anchor.document, key)
        if anchor_checkpoint is None:
            return _bad_signature(anchor)
    return verified, anchor_checkpoint


async def _starting_point(
    sessionmaker: async_sessionmaker[AsyncSession], anchor: Checkpoint | None
) -> tuple[Head | None, int, str]:
    """The head as the walk begins, the first ``seq`` to read and the hash it must link to: the genesis, or
    the anchor when the events before it were archived."""
    async with sessionmaker() as session:
        head = await read_head(session)
        first = await session.scalar(select(func.min(AuditEventRow.seq)))
    if anchor is not None and (first is None or first > 1):
        return head, anchor.seq + 1, anchor.hash
    return head, 1, GENESIS_HASH


@dataclass(frozen=True, slots=True)
class _Walk:
    """What reading the chain in ``seq`` order found."""

    last: int
    """The last ``seq`` read in order and linked (``start - 1`` for none)."""
    hashes: Mapping[int, str]
    """The hash the chain has at each marked ``seq`` (and at ``start - 1``, the link it started from)."""
    broken: tuple[Problem, int] | None
    """Where the chain first breaks and how, if it does."""


async def _walk_chain(
    sessionmaker: async_sessionmaker[AsyncSession],
    start: int,
    link: str,
    marks: Set[int],
    batch_size: int,
    progress: Progress | None = None,
) -> _Walk:
    """Read the events from ``start`` in batches, each checked against its place and its predecessor."""
    hashes = {start - 1: link}
    expected, after = start, start - 1
    while True:
        async with sessionmaker() as session:
            rows = (
                await session.execute(
                    select(*_COLUMNS)
                    .where(AuditEventRow.seq > after)
                    .order_by(AuditEventRow.seq)
                    .limit(batch_size)
                )
            ).all()
        if not rows:
            return _Walk(expected - 1, hashes, None)
        for row in rows:
            event = row._mapping
            if event["seq"] != expected or event["prev_hash"] != link or not _consistent(event, expected):
                broken = await _diagnose(sessionmaker, event, expected, link, start)
                return _Walk(expected - 1, hashes, broken)
            link = event["hash"]
            if expected in marks:
                hashes[expected] = link
            expected += 1
            if expected % YIELD_EVERY == 0:
                # Let the event loop serve other requests: a check run by the gateway itself (the API, the
                # console) shares its worker, and hashing a batch takes tens of milliseconds.
                await asyncio.sleep(0)
        after = int(rows[-1].seq)
        if progress is not None:
            await progress(expected - start)


async def _tail_findings(
    sessionmaker: async_sessionmaker[AsyncSession],
    walk: _Walk,
    start: int,
    head: Head | None,
    verified: Sequence[Checkpoint],
) -> tuple[int, Problem] | None:
    """The first damage an intact walk hides: events past the head, or a chain that ends before, or differs
    from, what the head and the checkpoints recorded."""
    last = walk.last
    findings: list[tuple[int, Problem]] = []
    async with sessionmaker() as session:
        head_now = await read_head(session)
    if head_now is not None and last > head_now.seq:
        # Every event the gateway writes moves the head in the same transaction: these did not.
        findings.append((head_now.seq + 1, "inserted"))
    expectations = [(c.seq, c.hash, c.log_id) for c in verified]
    if head is not None:
        expectations.append((head.seq, head.hash, head.log_id))
    for seq, hash_, log_id in expectations:
        if seq > last:
            findings.append((last + 1, "truncated"))
        elif seq >= start - 1 and (
            walk.hashes.get(seq) != hash_ or (head is not None and log_id != head.log_id)
        ):
            findings.append((seq, "rewritten"))
    return min(findings) if findings else None


def _bad_signature(source: CheckpointSource) -> IntegrityReport:
    claimed = source.document.get("seq") if isinstance(source.document, Mapping) else None
    seq = claimed if isinstance(claimed, int) and not isinstance(claimed, bool) else None
    return IntegrityReport(
        False,
        0,
        None,
        "bad_checkpoint_signature",
        seq,
        detail=f"the checkpoint in {source.origin} does not verify with the checkpoint key",
    )


async def check_integrity(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    key: SigningKey | None,
    directory: Path,
    checkpoint_file: Path | None = None,
    progress: Progress | None = None,
) -> IntegrityReport:
    """The log against ``checkpoint_file``, or else against the latest checkpoint in the database and the
    latest file in ``directory``; from ``directory``/anchor.json when older events were archived.
    ``progress`` is told, batch by batch, how many events were found intact so far."""
    sources: list[CheckpointSource] = []
    if checkpoint_file is not None:
        sources.append(
            CheckpointSource(f"--checkpoint {checkpoint_file}", read_checkpoint_file(checkpoint_file))
        )
    else:
        async with sessionmaker() as session:
            stored = await latest_checkpoint(session)
        if stored is not None:
            sources.append(CheckpointSource("the database", stored.document()))
        path = latest_checkpoint_file(directory)
        if path is not None:
            sources.append(CheckpointSource(str(path), _document_or_none(path)))
    anchor_path = directory / ANCHOR_FILE
    anchor = (
        CheckpointSource(str(anchor_path), _document_or_none(anchor_path)) if anchor_path.exists() else None
    )
    return await verify_chain(sessionmaker, key=key, checkpoints=sources, anchor=anchor, progress=progress)


def _document_or_none(path: Path) -> object:
    """A file in the checkpoint directory: unreadable counts as a bad checkpoint, not a usage error."""
    try:
        return read_checkpoint_file(path)
    except CheckpointFileError:
        return None


async def verify_database(settings: Settings, checkpoint_file: Path | None = None) -> IntegrityReport:
    """``dancu audit verify``: the log in ``DANCU_DATABASE_URL`` with the key and directory of the settings.

    The key file may hold the private key or only its public half; without it, no checkpoint can be checked.
    """
    try:
        key: SigningKey | None = load_checkpoint_key(settings, create=False)
    except CheckpointKeyError:
        if settings.audit.checkpoint_key_file.exists():
            raise
        key = None
    engine = create_engine(settings)
    try:
        return await check_integrity(
            create_sessionmaker(engine),
            key=key,
            directory=settings.audit.checkpoint_dir,
            checkpoint_file=checkpoint_file,
        )
    finally:
        await engine.dispose()
