"""The audit writer's fast path on SQLite: a whole append in one call, on the standard library's driver.

Through SQLAlchemy and aiosqlite every statement is a hop to the connection's thread (about 200 µs of CPU each
here) and an append takes four of them plus the pool's reset. Here the transaction (``BEGIN IMMEDIATE``, read
the head, insert the events, move the head, ``COMMIT``) is one call with a connection of its own, and the
writer appends the events of many requests at once (group commit, ``app.audit.writer``). The audit writer
may go below the ORM where the ORM is too slow.

Where it runs: on the event loop itself when the write lock is free at once (the usual case: this process is
the file's only writer), else on a thread of its own that waits for the lock. A thread for every append made
the writer and the event loop pass the GIL back and forth at every SQLite call (the driver releases it around
each step): bench/harness.py measured ~1,000 µs of CPU per verification on SQLite against ~600 on PostgreSQL,
whose inserts run in the server. Inline, a transaction never waits: its connection has no busy timeout, and a
lock held by anyone else (another process, an administrative change in progress on the engine's connection)
sends the append to the thread. In WAL mode a commit does not sync (``synchronous=NORMAL``); the WAL is
checkpointed from the thread every ``CHECKPOINT_EVERY`` inline commits, never on the loop.
``BEGIN IMMEDIATE`` takes the write lock before the head is read, so two processes on one file never read the
same head. Values are stored as SQLAlchemy reads them back (timestamps as text in its format, JSON as text), so
the models read them back unchanged; the chain itself is ``app.audit.chain.chain_events``, shared with the
SQLAlchemy path that administrative changes use.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from app.audit.chain import GENESIS_HASH, HEAD_ID, MEMBERS, Head, chain_events
from app.audit.errors import StoreUnavailable

BUSY_TIMEOUT_SECONDS: Final = 5.0
RETRY_SECONDS: Final = 0.002
CHECKPOINT_EVERY: Final = 200
"""Inline commits between two WAL checkpoints (run on the thread; SQLite's own would run in the commit)."""
_PRAGMAS: Final = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")
_JSON: Final = ("fields", "sensitive_fields", "detail")
_PLAIN: Final = tuple(name for name in (*MEMBERS, "hash") if name not in {*_JSON, "at"})
_COLUMNS: Final = (*_PLAIN, "at", *_JSON)
"""The plain columns first, then the ones ``_stored`` converts: one ``itemgetter`` call takes the former."""
_INSERT: Final = (
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"  # noqa: S608 - fixed column names
)
_plain_values: Final = operator.itemgetter(*_PLAIN)


def _stored(event: Mapping[str, Any], stamps: dict[datetime, str]) -> tuple[Any, ...]:
    """The row's values in ``_COLUMNS`` order: JSON members as JSON text (orjson: the same values
    SQLAlchemy's ``json.dumps`` text reads back as, at a tenth of the cost), ``at`` in SQLAlchemy's DateTime
    format (``stamps``: the formatted ``at`` of the append so far, which a request's events share)."""
    at = event["at"]
    stamp = stamps.get(at)
    if stamp is None:
        stamp = stamps[at] = _timestamp(at)
    dumps = orjson.dumps
    return (
        *_plain_values(event),
        stamp,
        dumps(event["fields"]).decode(),
        dumps(event["sensitive_fields"]).decode(),
        dumps(event["detail"]).decode(),
    )


def _timestamp(at: datetime) -> str:
    """SQLAlchemy's SQLite storage format for DateTime, ``%Y-%m-%d %H:%M:%S.%f`` (the zone dropped: the
    gateway stores UTC), written by ``isoformat`` (a fifth of ``strftime``'s cost; the same text for every
    year from 1000 on)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _open(path: str, timeout: float, *pragmas: str) -> sqlite3.Connection:
    """A connection to ``path`` in autocommit mode (transactions begun explicitly) with ``pragmas`` set."""
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        for pragma in pragmas:
            connection.execute(f"PRAGMA {pragma}")
    except BaseException:
        connection.close()
        raise
    return connection


class SqliteChainAppender:
    """Appends to the chain of the SQLite database at ``path`` from one thread with one connection."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._closed = False
        self.inline_appends = 0
        """Appends committed on the event loop (the others went to the thread); for tests and curiosity."""

    async def append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Chain and commit ``records`` in one transaction; StoreUnavailable when no transaction could start,
        else the error of the driver (or of the format) when that fails (then nothing was written)."""
        loop = asyncio.get_running_loop()
        begun = self._begin_inline()
        if begun is None:
            return await loop.run_in_executor(self._executor, self._append, records)
        events = _finish(begun[0], begun[1], records)
        self.inline_appends += 1
        self._inline_commits += 1
        if self._inline_commits >= CHECKPOINT_EVERY and (
            self._checkpointing is None or self._checkpointing.done()
        ):
            self._inline_commits = 0
            self._checkpointing = loop.run_in_executor(self._executor, self._checkpoint)
        return events

    async def close(self) -> None:
        """Close the connections (the thread's in its thread), then stop the thread (again: nothing to do)."""
        if self._closed:
            return
        self._closed = True
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    # on the event loop

    def _begin_inline(self) -> tuple[sqlite3.Connection, Head] | None:
        """A transaction with the write lock and the head, if both come at once; else None (use the thread)."""
        try:
            if self._inline is None:
                self._inline = _open(self._path, 0, *_PRAGMAS, "wal_autocheckpoint=0")
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return None  # locked, or not openable: the thread waits, or reports StoreUnavailable
        try:
            return self._inline, self._head(self._inline)
        except sqlite3.Error:
            self._inline.execute("ROLLBACK")
            return None

    # in the thread

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _open(self._path, BUSY_TIMEOUT_SECONDS, *_PRAGMAS)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        connection, head = self._begin()
        return _finish(connection, head, records)

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database as far as no reader needs it (never waits for anyone)."""
        with contextlib.suppress(sqlite3.Error):  # the next one will do
            self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _begin(self) -> tuple[sqlite3.Connection, Head]:
        """A transaction holding the write lock, and the head read under it; StoreUnavailable when there is
        none within the busy timeout (nothing of the records is involved yet)."""
        # SQLite answers "database is locked" at once, without waiting busy_timeout, in a few cases (a
        # connection opening the WAL while another one recovers or checkpoints it): nothing was written then,
        # so try again until the timeout. Once the lock is held, nothing later in the transaction waits.
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                connection = self._connect()
                connection.execute("BEGIN IMMEDIATE")
                try:
                    return connection, self._head(connection)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                if "locked" in str(error) and time.monotonic() < deadline:
                    time.sleep(RETRY_SECONDS)
                    continue
                raise StoreUnavailable("no write lock on the audit chain") from error

    @staticmethod
    def _head(connection: sqlite3.Connection) -> Head:
        query = "SELECT log_id, seq, hash FROM audit_chain_head WHERE id = ?"
        row = connection.execute(query, (HEAD_ID,)).fetchone()
        if row is None:  # emptied tables: carry on after the last event (as app.audit.chain does)
            last = connection.execute(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            connection.execute(
                "INSERT INTO audit_chain_head (id, log_id, seq, hash) VALUES (?, ?, ?, ?)",
                (HEAD_ID, str(uuid.uuid4()), *(last if last is not None else (0, GENESIS_HASH))),
            )
            row = connection.execute(query, (HEAD_ID,)).fetchone()
        return Head(str(row[0]), int(row[1]), str(row[2]))


def insert_checkpoint(path: str, row: Mapping[str, Any]) -> None:
    """Store one checkpoint row (``log_id, seq, hash, at, kid, jws``) in a transaction of its own, from a thread.

    The insert and the commit are one call here, so SQLite's write lock is held for microseconds. Through the
    engine they were two aiosqlite round trips, and the lock stayed held while the second waited for a busy
    event loop (10-40 ms under load, two or three times a second at 1,000 events a checkpoint): every audit
    append, so every answer, waited behind it.
    """
    connection = _open(path, BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "INSERT INTO audit_checkpoints (log_id, seq, hash, at, kid, jws) VALUES (?, ?, ?, ?, ?, ?)",
                (row["log_id"], row["seq"], row["hash"], _timestamp(row["at"]), row["kid"], row["jws"]),
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()


def _finish(
    connection: sqlite3.Connection, head: Head, records: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Chain ``records`` after ``head``, insert them, move the head and commit (rolled back on any error)."""
    try:
        events = chain_events(head, records)
        stamps: dict[datetime, str] = {}
        connection.executemany(_INSERT, [_stored(event, stamps) for event in events])
        connection.execute(
            "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = ?",
            (events[-1]["seq"], events[-1]["hash"], HEAD_ID),
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return events
