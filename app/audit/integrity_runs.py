"""Full integrity checks as recorded runs: the last result is read from a table, not by walking the chain again.

Walking 1,000,000 events takes tens of seconds; the console's integrity page shows the last run's result (one
index lookup) and lets an auditor start a new run, which works in the background of the gateway process and
reports its progress in its row (``checked`` of ``total``, every second) so any replica can show it.
``GET /v1/audit/integrity`` records its (synchronous) run the same way, so the last result is the last check
whoever made it. docs/contract.md, section 15 (the console) and Audit (the check itself).

A run's audit event is ``audit.integrity``, written when the check ends, as the API writes it: when the log
cannot take it (a forged event after the head blocks every append) the result is kept and shown all the
same, and the failure to record it is logged, for that is when the auditor needs the answer most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.chain import read_head
from app.audit.checkpoints import Checkpointer
from app.audit.errors import AuditUnavailable
from app.audit.integrity import IntegrityReport, check_integrity
from app.audit.models import AuditIntegrityRun
from app.audit.writer import AuditContext, AuditWriter
from app.db import new_time_uuid, utcnow

logger = logging.getLogger(__name__)

ACTION: Final = "audit.integrity"
PROGRESS_EVERY: Final = 1.0
"""Seconds between two progress writes of a running check."""
STALE_AFTER: Final = timedelta(seconds=60)
"""A running check whose progress has not moved for this long was interrupted (its process ended)."""


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as the console shows it. ``status``: ``running``, ``done``, ``failed`` or ``interrupted``."""

    run_id: str
    actor: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    total: int
    checked: int
    ok: bool | None
    first_bad_seq: int | None
    problem: str | None
    checkpoint_seq: int | None

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return min(99, int(100 * self.checked / self.total)) if self.total else 0

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


def _view(row: AuditIntegrityRun, now: datetime) -> RunView:
    status = row.status
    if status == "running" and row.heartbeat_at + STALE_AFTER < now:
        status = "interrupted"
    return RunView(
        run_id=row.run_id,
        actor=row.actor,
        status=status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        total=int(row.total),
        checked=int(row.checked),
        ok=row.ok,
        first_bad_seq=None if row.first_bad_seq is None else int(row.first_bad_seq),
        problem=row.problem,
        checkpoint_seq=None if row.checkpoint_seq is None else int(row.checkpoint_seq),
    )


async def latest_run(session: AsyncSession) -> RunView | None:
    """The most recently started run (one index lookup)."""
    row = await session.scalar(
        select(AuditIntegrityRun).order_by(AuditIntegrityRun.started_at.desc()).limit(1)
    )
    return None if row is None else _view(row, utcnow())


class IntegrityRuns:
    """Starts, records and finishes full checks; one per app (``app.audit.dependencies.INTEGRITY_RUNS``)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        writer: AuditWriter,
        checkpoints: Checkpointer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._writer = writer
        self._checkpoints = checkpoints
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def _begin(self, actor: str) -> str:
        now = utcnow()
        async with self._sessionmaker() as session:
            head = await read_head(session)
            run_id = new_time_uuid()
            session.add(
                AuditIntegrityRun(
                    run_id=run_id,
                    actor=actor,
                    status="running",
                    started_at=now,
                    heartbeat_at=now,
                    total=head.seq if head is not None else 0,
                    checked=0,
                )
            )
            await session.commit()
        return run_id

    async def _set(self, run_id: str, **values: object) -> None:
        async with self._sessionmaker() as session:
            await session.execute(
                update(AuditIntegrityRun).where(AuditIntegrityRun.run_id == run_id).values(**values)
            )
            await session.commit()

    async def check(self, actor: str, run_id: str | None = None) -> IntegrityReport:
        """Run the full check now, recorded as a run (begun here unless ``run_id`` was begun already)."""
        if run_id is None:
            run_id = await self._begin(actor)
        last = self._clock()

        async def progress(checked: int) -> None:
            nonlocal last
            if self._clock() - last >= PROGRESS_EVERY:
                last = self._clock()
                await self._set(run_id, checked=checked, heartbeat_at=utcnow())

        try:
            report = await check_integrity(
                self._sessionmaker,
                key=self._checkpoints.key,
                directory=self._checkpoints.directory,
                progress=progress,
            )
        except BaseException:
            try:
                await asyncio.shield(self._set(run_id, status="failed", finished_at=utcnow()))
            except Exception:  # the database is gone too: the run reads as interrupted
                logger.warning("integrity run %s ended without a result", run_id)
            raise
        now = utcnow()
        await self._set(
            run_id,
            status="done",
            finished_at=now,
            heartbeat_at=now,
            checked=report.checked,
            ok=report.ok,
            first_bad_seq=report.first_bad_seq,
            problem=report.problem,
            checkpoint_seq=report.checkpoint_seq,
        )
        return report

    async def start(self, call: AuditContext, *, wait: float = 0.0) -> str:
        """Start a full check in the background for ``call``'s actor (or join the one running) and wait up to
        ``wait`` seconds for it; the run's id. Its audit event is written when it ends."""
        async with self._sessionmaker() as session:
            current = await latest_run(session)
        if current is not None and current.status == "running":
            run_id = current.run_id
        else:
            run_id = await self._begin(call.actor)
            task = asyncio.create_task(self._background(call, run_id), name=f"integrity-{run_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if wait > 0:
            await self._wait(run_id, wait)
        return run_id

    async def _wait(self, run_id: str, seconds: float) -> None:
        tasks = [t for t in self._tasks if t.get_name() == f"integrity-{run_id}"]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def _background(self, call: AuditContext, run_id: str) -> None:
        try:
            await self.check(call.actor, run_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded as the run's failure and as its event's outcome
            logger.error("integrity run %s failed: %s", run_id, type(exc).__qualname__)
            event = call.event(ACTION, "error", 500, reason="internal_error")
        else:
            event = call.event(ACTION, "allowed", 200)
        try:
            await self._writer.write([event])
        except AuditUnavailable:
            logger.error(
                "%s by %s could not be recorded: the audit log takes no new event; its result is kept "
                "(run `dancu audit verify`)",
                ACTION,
                call.actor,
            )

    async def close(self) -> None:
        """Stop the checks still running (shutdown): their rows are left to read as interrupted."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
