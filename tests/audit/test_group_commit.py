"""Group commit: concurrent writes share transactions, and each caller still returns only once its own events
are committed, fails alone when its own events are refused, and fails at once when the store is down.

The writer's appender is wrapped (``Appends``) to count its transactions and to hold the first one at a gate,
so that what queues behind it is known exactly. The tests on the ``log`` fixture run on a SQLite file and on
PostgreSQL; a locked SQLite file, an unreachable PostgreSQL and an in-memory SQLite database have tests of their
own.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from app.audit import sqlite_appender
from app.audit.errors import AuditUnavailable, StoreUnavailable
from app.audit.models import AuditChainHead, AuditEventRow
from app.audit.writer import MAX_BATCH_EVENTS, AuditEvent, AuditWriter, Outcome, load_subject_hasher
from app.db import Base, create_engine, create_sessionmaker
from tests.audit.conftest import HEAD, PURPOSE, Log, audit_settings, open_log
from tests.harness import free_port


def events(write: int | str, count: int = 1, **changes: Any) -> list[AuditEvent]:
    """``count`` events of one write: request id ``w-<write>``, their order in the write as ``dossier_id``."""
    return [
        AuditEvent(
            **{
                "action": "citizen.verify",
                "outcome": "allowed",
                "status_code": 200,
                "actor": "c_portal",
                "client_id": "c_portal",
                "request_id": f"w-{write}",
                "purpose": PURPOSE,
                "dossier_id": str(part),
                "subject": HEAD,
                "fields": ("full_name", "date_of_birth"),
                **changes,
            }
        )
        for part in range(count)
    ]


class Appends:
    """The writer's appender, wrapped: the size of every transaction tried and of every one committed, the
    first one held until ``release`` when ``hold_first``."""

    def __init__(self, writer: AuditWriter, monkeypatch: pytest.MonkeyPatch, *, hold_first: bool) -> None:
        self.tried: list[int] = []
        self.committed: list[int] = []
        self.counted: list[int] = []
        """What ``on_append`` was told (only once what it counts was committed: else it is left out)."""
        self.gate = asyncio.Event()
        if not hold_first:
            self.gate.set()
        appender: Any = writer._appender
        real: Callable[[Sequence[Mapping[str, Any]]], Awaitable[list[dict[str, Any]]]] = appender.append

        async def append(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            self.tried.append(len(records))
            if len(self.tried) == 1:
                await self.gate.wait()
            stored = await real(records)
            self.committed.append(len(records))
            return stored

        def on_append(count: int) -> None:
            assert sum(self.counted) + count <= sum(self.committed)  # a failure leaves `count` out
            self.counted.append(count)

        monkeypatch.setattr(appender, "append", append)
        monkeypatch.setattr(writer, "_on_append", on_append)

    def release(self) -> None:
        self.gate.set()


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def stored_writes(log: Log) -> dict[str, list[tuple[int, str | None]]]:
    """(seq, dossier_id) of the stored events, by request id, in seq order."""
    found: dict[str, list[tuple[int, str | None]]] = {}
    for row in await log.rows():
        found.setdefault(str(row.request_id), []).append((row.seq, row.dossier_id))
    return found


def assert_whole_and_in_order(
    writes: dict[str, list[tuple[int, str | None]]], sizes: Mapping[str, int]
) -> None:
    """Every write of ``sizes`` stored, its events adjacent and in their order, nothing else stored."""
    assert set(writes) == set(sizes)
    for request_id, stored in writes.items():
        first = stored[0][0]
        assert stored == [(first + n, str(n)) for n in range(sizes[request_id])], request_id


async def test_concurrent_writes_commit_together_contiguous_and_in_order(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = Appends(log.writer, monkeypatch, hold_first=False)
    sizes = {f"w-{n}": 1 + n % 3 for n in range(200)}
    await asyncio.gather(*(log.writer.write(events(n, sizes[f"w-{n}"])) for n in range(200)))

    rows = await log.rows()
    assert [r.seq for r in rows] == list(range(1, sum(sizes.values()) + 1))
    assert_whole_and_in_order(await stored_writes(log), sizes)
    assert (await log.verify()).ok
    # All 200 were queued before the writer's task first ran: far fewer transactions than writes
    assert sum(appends.committed) == len(rows)
    assert len(appends.committed) <= 3
    assert appends.counted == appends.committed  # on_append told each transaction's count
    assert log.writer.queue_depth == 0


async def test_writes_queued_during_a_commit_go_in_the_next_transaction(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = Appends(log.writer, monkeypatch, hold_first=True)
    returned: dict[str, int] = {}
    """Per write: how many transactions were committed when it returned."""

    async def write(write: int | str, count: int) -> None:
        await log.writer.write(events(write, count))
        returned[f"w-{write}"] = len(appends.committed)

    first = asyncio.create_task(write("first", 2))
    await until(lambda: appends.tried == [2])  # the writer holds the first transaction at the gate
    sizes = {f"w-{n}": 1 + n % 3 for n in range(50)}
    queued = [asyncio.create_task(write(n, sizes[f"w-{n}"])) for n in range(50)]
    await until(lambda: log.writer.queue_depth == sum(sizes.values()))
    await asyncio.sleep(0.05)
    assert not first.done()
    assert not any(task.done() for task in queued)  # nobody returns before a commit
    assert appends.tried == [2]  # and nothing else started meanwhile
    assert not await log.rows()

    appends.release()
    await asyncio.gather(first, *queued)

    assert appends.tried == [2, sum(sizes.values())]  # the 50 writes, all in the second transaction
    assert appends.committed == appends.tried
    # After its own transaction (the first); the second may have committed too by the time it resumes, since
    # an inline SQLite append commits without yielding to the loop.
    assert returned.pop("w-first") >= 1
    assert set(returned.values()) == {2}  # each returned after the transaction holding its events committed
    assert appends.counted == [2, sum(sizes.values())]
    assert_whole_and_in_order(await stored_writes(log), {"w-first": 2, **sizes})
    assert (await log.verify()).ok


@pytest.mark.parametrize("bad", ["float", "outcome", "long_request_id"])
async def test_a_bad_write_fails_alone_and_the_rest_of_its_batch_commits(
    log: Log, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """A value the canonical form refuses (refused before any insert), an outcome the database's CHECK
    refuses and, on PostgreSQL, a request id too long for its column (both refused after the batch's earlier
    events were inserted: the transaction must roll them back)."""
    if bad == "long_request_id" and log.dialect != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    appends = Appends(log.writer, monkeypatch, hold_first=True)
    first = asyncio.create_task(log.writer.write(events("first")))
    await until(lambda: appends.tried == [1])
    bad_events = {
        "float": events("bad", 2, detail={"score": 0.5}),
        "outcome": events("bad", 2, outcome=cast(Outcome, "maybe")),
        "long_request_id": [*events("bad"), *events("x" * 70)],
    }[bad]
    sizes = {f"w-{n}": 1 + n % 3 for n in range(20)}
    writes = [log.writer.write(events(n, sizes[f"w-{n}"])) for n in range(10)]
    writes.append(log.writer.write(bad_events))
    writes.extend(log.writer.write(events(n, sizes[f"w-{n}"])) for n in range(10, 20))
    tasks = [asyncio.create_task(w) for w in writes]
    await until(lambda: log.writer.queue_depth == sum(sizes.values()) + 2)
    appends.release()
    await first
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert [n for n, result in enumerate(results) if result is not None] == [10]
    assert isinstance(results[10], AuditUnavailable)
    assert_whole_and_in_order(await stored_writes(log), {"w-first": 1, **sizes})
    assert (await log.verify()).ok
    # The batch of 21 writes failed whole (nothing of it stored), then each write was tried alone
    alone = [*list(sizes.values())[:10], 2, *list(sizes.values())[10:]]
    assert appends.tried == [1, sum(alone), *alone]
    assert sum(appends.committed) == sum(appends.counted) == 1 + sum(sizes.values())


async def test_a_store_failure_fails_every_caller_and_writes_nothing(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    await log.writer.write(events("before"))
    appender: Any = log.writer._appender
    tried: list[int] = []

    async def broken(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        tried.append(len(records))
        raise StoreUnavailable("test") from OSError("connection refused")

    monkeypatch.setattr(appender, "append", broken)
    results = await asyncio.gather(
        *(log.writer.write(events(n, 2)) for n in range(30)), return_exceptions=True
    )
    assert all(isinstance(result, AuditUnavailable) for result in results)
    assert tried == [60]  # the store is down: no write is tried again on its own

    monkeypatch.undo()
    assert [r.request_id for r in await log.rows()] == ["w-before"]
    async with log.sessionmaker() as session:
        head = await session.scalar(select(AuditChainHead))
    assert head is not None
    assert head.seq == 1
    await log.writer.write(events("after"))  # the writer carries on once the store is back
    assert [r.request_id for r in await log.rows()] == ["w-before", "w-after"]
    assert (await log.verify()).ok


async def test_a_locked_sqlite_database_fails_every_caller_within_the_busy_timeout(
    audit_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock: the batch waits the busy timeout once, not once per write."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(audit_template, path)
    monkeypatch.setattr(sqlite_appender, "BUSY_TIMEOUT_SECONDS", 0.3)
    log = open_log(audit_settings(f"sqlite:///{path}", tmp_path))
    other = sqlite3.connect(path, isolation_level=None)
    waits: list[int] = []  # one entry each time the appender's thread waits for the write lock
    begin = sqlite_appender.SqliteChainAppender._begin

    def counted_begin(self: sqlite_appender.SqliteChainAppender) -> Any:
        waits.append(1)
        return begin(self)

    try:
        await log.writer.write(events("before"))
        other.execute("BEGIN IMMEDIATE")
        monkeypatch.setattr(sqlite_appender.SqliteChainAppender, "_begin", counted_begin)
        results = await asyncio.gather(
            *(log.writer.write(events(n)) for n in range(20)), return_exceptions=True
        )
        assert all(isinstance(result, AuditUnavailable) for result in results)
        # The callers queued behind the first wait are one batch with one wait of its own: the busy timeout
        # is waited at most twice however many callers there are, never once per write (counted, not timed).
        assert 1 <= len(waits) <= 2
        other.execute("ROLLBACK")
        await log.writer.write(events("after"))
        assert [r.request_id for r in await log.rows()] == ["w-before", "w-after"]
    finally:
        other.close()
        await log.close()


async def test_sqlite_appends_inline_and_waits_on_its_thread_for_a_held_lock(
    audit_template: Path, tmp_path: Path
) -> None:
    """The usual append commits on the event loop; while someone else holds the write lock it goes to the
    thread, which waits for the lock instead of failing (and the loop stays free meanwhile)."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(audit_template, path)
    log = open_log(audit_settings(f"sqlite:///{path}", tmp_path))
    appender = cast(sqlite_appender.SqliteChainAppender, log.writer._appender)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await log.writer.write(events("inline"))
        assert appender.inline_appends == 1
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(log.writer.write(events("waited")))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the append waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10
        assert not waiting.done()
        other.execute("COMMIT")
        await asyncio.wait_for(waiting, 10)
        assert appender.inline_appends == 1  # that one went through the thread
        await log.writer.write(events("inline again"))
        assert appender.inline_appends == 2
        assert [r.request_id for r in await log.rows()] == ["w-inline", "w-waited", "w-inline again"]
        assert (await log.verify()).ok
    finally:
        other.close()
        await log.close()


async def test_sqlite_inline_appends_checkpoint_the_wal_on_the_thread(
    audit_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline commits never checkpoint themselves (that could stall the loop); the thread does it every
    CHECKPOINT_EVERY inline commits, so the WAL does not grow without end.

    Deterministic: each checkpoint the appender hands to its thread is awaited before the next write, so the
    count of checkpoints follows from the count of inline commits alone. (The former version wrote until it saw
    two checkpoints, at most 100 writes: how many checkpoints 100 writes made depended on whether the thread
    got the GIL while the loop appended, and under load it made one.)"""
    monkeypatch.setattr(sqlite_appender, "CHECKPOINT_EVERY", 5)
    path = tmp_path / "dancu.db"
    shutil.copyfile(audit_template, path)
    log = open_log(audit_settings(f"sqlite:///{path}", tmp_path))
    appender = cast(sqlite_appender.SqliteChainAppender, log.writer._appender)
    threads: list[str] = []
    real = appender._checkpoint

    def checkpoint() -> None:
        threads.append(threading.current_thread().name)
        real()

    monkeypatch.setattr(appender, "_checkpoint", checkpoint)
    try:
        written = 0
        while appender.inline_appends < 2 * 5:
            assert written < 200, "appends do not commit inline"
            await log.writer.write(events(written))
            written += 1
            if appender._checkpointing is not None:
                await appender._checkpointing  # the thread is idle again before the next append
        assert len(threads) == 2
        assert all(name.startswith("audit-sqlite") for name in threads)
        assert appender._inline is not None
        assert appender._inline.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert len(await log.rows()) == written
    finally:
        await log.close()


async def test_an_unreachable_postgresql_fails_every_caller(tmp_path: Path) -> None:
    settings = audit_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", tmp_path)
    engine = create_engine(settings)
    writer = AuditWriter(create_sessionmaker(engine), load_subject_hasher(settings))
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(writer.write(events(n)) for n in range(20)), return_exceptions=True), 30
        )
        for result in results:
            assert isinstance(result, AuditUnavailable)
            assert isinstance(result.__cause__, StoreUnavailable)  # no connection: the batch is not retried
    finally:
        await writer.close()
        await engine.dispose()


async def test_a_cancelled_caller_does_not_take_back_its_events_or_break_the_writer(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = Appends(log.writer, monkeypatch, hold_first=True)
    first = asyncio.create_task(log.writer.write(events("first")))
    await until(lambda: appends.tried == [1])
    gone = asyncio.create_task(log.writer.write(events("gone", 2)))
    stays = asyncio.create_task(log.writer.write(events("stays")))
    await until(lambda: log.writer.queue_depth == 3)
    gone.cancel()  # the client disconnected while its events waited
    first.cancel()  # ... or while its transaction was being committed
    appends.release()
    await stays
    for task in (gone, first):
        with pytest.raises(asyncio.CancelledError):
            await task
    await log.writer.write(events("after"))
    assert_whole_and_in_order(
        await stored_writes(log), {"w-first": 1, "w-gone": 2, "w-stays": 1, "w-after": 1}
    )
    assert (await log.verify()).ok


async def test_close_commits_what_is_queued_and_later_writes_are_refused(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = Appends(log.writer, monkeypatch, hold_first=True)
    first = asyncio.create_task(log.writer.write(events("first")))
    await until(lambda: appends.tried == [1])
    queued = [asyncio.create_task(log.writer.write(events(n, 2))) for n in range(10)]
    await until(lambda: log.writer.queue_depth == 20)
    closing = asyncio.create_task(log.writer.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    with pytest.raises(AuditUnavailable):  # closing: nothing new is taken
        await log.writer.write(events("late"))
    appends.release()
    await closing
    assert all(task.done() and task.exception() is None for task in [first, *queued])
    with pytest.raises(AuditUnavailable):
        await log.writer.write(events("after"))
    assert_whole_and_in_order(await stored_writes(log), {"w-first": 1, **{f"w-{n}": 2 for n in range(10)}})
    assert (await log.verify()).ok


async def test_a_transaction_takes_whole_writes_up_to_the_bound(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = Appends(log.writer, monkeypatch, hold_first=False)
    half = MAX_BATCH_EVENTS // 2 + 100
    sizes = {"w-0": half, "w-1": half, "w-2": MAX_BATCH_EVENTS + 200, "w-3": 1, "w-4": 2}
    await asyncio.gather(*(log.writer.write(events(n, size)) for n, size in enumerate(sizes.values())))
    # never split: a write larger than the bound goes alone; smaller ones share a transaction up to it
    assert appends.committed == [half, half, MAX_BATCH_EVENTS + 200, 3]
    assert_whole_and_in_order(await stored_writes(log), sizes)
    assert (await log.verify()).ok


async def test_an_in_memory_database_commits_in_groups_through_the_engine(tmp_path: Path) -> None:
    """No file for the stdlib driver to open: the writer appends on a connection of the engine."""
    settings = audit_settings("sqlite://", tmp_path)
    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    writer = AuditWriter(create_sessionmaker(engine), load_subject_hasher(settings))
    try:
        writes = [writer.write(events(n, 2)) for n in range(30)]
        writes.insert(15, writer.write(events("bad", detail={"score": 0.5})))
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert [n for n, result in enumerate(results) if result is not None] == [15]
        async with engine.connect() as connection:
            rows = (await connection.execute(select(AuditEventRow).order_by(AuditEventRow.seq))).all()
        assert [row.seq for row in rows] == list(range(1, 61))
        assert all(rows[n].prev_hash == rows[n - 1].hash for n in range(1, len(rows)))
        assert [(row.request_id, row.dossier_id) for row in rows] == [
            (f"w-{n}", str(part)) for n in range(30) for part in range(2)
        ]
    finally:
        await writer.close()
        await engine.dispose()
