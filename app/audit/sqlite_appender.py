"""The audit writer's fast path on SQLite: a whole append in one call, on the standard library's driver.

Through SQLAlchemy and aiosqlite every statement is a hop to the connection's thread (about 200 µs of CPU each
here) and an append takes four of them plus the pool's reset. Here the transaction (``BEGIN IMMEDIATE``, read
the head, insert the events, move the head, ``COMMIT``) runs in one call on a thread of its own with a
connection of its own: one hop per append, and the writer appends the events of many requests at once
(group commit, ``app.audit.writer``). STYLE.md, habit 2, allows the stdlib driver for the audit writer.
``BEGIN IMMEDIATE`` takes the write lock before the head is read, so two processes on one file never read the
same head. Values are stored exactly as SQLAlchemy stores them (timestamps as text, JSON as ``json.dumps``), so
the models read them back unchanged; the chain itself is ``app.audit.chain.chain_events``, shared with the
SQLAlchemy path that administrative changes use.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from app.audit.chain import GENESIS_HASH, HEAD_ID, MEMBERS, Head, StoreUnavailable, chain_events

BUSY_TIMEOUT_SECONDS: Final = 5.0
RETRY_SECONDS: Final = 0.002
_COLUMNS: Final = (*MEMBERS, "hash")
_JSON: Final = frozenset({"fields", "sensitive_fields", "detail"})
_INSERT: Final = (
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"  # noqa: S608 - fixed column names
)


def _stored(event: Mapping[str, Any]) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _COLUMNS:
        value = event[name]
        if name in _JSON:
            value = json.dumps(value)
        elif name == "at":
            value = _timestamp(value)
        values.append(value)
    return tuple(values)


def _timestamp(at: datetime) -> str:
    """SQLAlchemy's SQLite storage format for DateTime (the zone dropped: the gateway stores UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteChainAppender:
    """Appends to the chain of the SQLite database at ``path`` from one thread with one connection."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Chain and commit ``records`` in one transaction; StoreUnavailable when no transaction could start,
        else the error of the driver (or of the format) when that fails (then nothing was written)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._append, records)

    async def close(self) -> None:
        """Close the connection in its thread, then stop the thread (again: nothing to do)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    # in the thread

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            try:
                for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                    connection.execute(f"PRAGMA {pragma}")
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        connection, head = self._begin()
        try:
            events = chain_events(head, records)
            connection.executemany(_INSERT, [_stored(event) for event in events])
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
