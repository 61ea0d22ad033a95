"""The gateway killed with `kill -9` under load loses no event of an answered request, and the chain verifies;
two gateway processes on one PostgreSQL database make one linear chain.

Both run `dancu serve` as subprocesses over the embedded mock (personas only), the client registered through
the service layer beforehand, and drive concurrent verifications with an `X-Request-Id` each.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.audit.checkpoints import load_checkpoint_key
from app.audit.models import AuditEventRow
from tests.audit.conftest import (
    Log,
    audit_settings,
    drive,
    open_log,
    register_client,
    server_env,
    serving,
    token_for,
)
from tests.harness import fresh_postgres

pytestmark = pytest.mark.slow

TASKS = 6
LOAD_SECONDS = 2.0


async def recorded(log: Log) -> set[str | None]:
    async with log.sessionmaker() as session:
        return set((await session.scalars(select(AuditEventRow.request_id))).all())


async def test_kill_9_under_load_loses_no_answered_event(
    audit_template: Path, audit_mock_db: str, tmp_path: Path
) -> None:
    path = tmp_path / "dancu.db"
    shutil.copyfile(audit_template, path)
    settings = audit_settings(f"sqlite:///{path}", tmp_path, checkpoint_every_events=100)
    load_checkpoint_key(settings)  # made once, before the server starts
    client = await register_client(settings)
    env = server_env(settings, audit_mock_db)
    answered: list[str] = []

    async with httpx.AsyncClient(timeout=10) as http:
        async with serving(env, tmp_path) as server:
            token = await token_for(http, server.url, client)
            until = time.monotonic() + LOAD_SECONDS * 2  # the kill comes first
            load = [
                asyncio.create_task(drive(http, server.url, token, f"crash-{n}", until, answered))
                for n in range(TASKS)
            ]
            await asyncio.sleep(LOAD_SECONDS)
            in_flight = len(answered)
            server.kill()
            await asyncio.gather(*load)
        assert in_flight > 50, "the load did not get going"

        # Restarted on the same files: it carries on the same chain
        async with serving(env, tmp_path) as server:
            token = await token_for(http, server.url, client)
            await drive(http, server.url, token, "after", time.monotonic() + 0.3, answered)

    log = open_log(settings)
    try:
        missing = set(answered) - await recorded(log)
        assert not missing, f"{len(missing)} answered requests have no event"
        report = await log.verify()
        assert report.ok, report
        assert report.checkpoint_seq is not None  # checkpoints were made under load, and at the clean stop
        async with log.sessionmaker() as session:
            count = await session.scalar(select(func.count()).select_from(AuditEventRow))
        assert report.checked == count
    finally:
        await log.close()


@pytest.fixture
def shared_postgres(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own (sync: its set-up runs an event loop of its own)."""
    with fresh_postgres(postgres_url) as url:
        yield url


@pytest.mark.postgres
async def test_two_gateway_processes_on_one_postgresql_database_make_one_chain(
    shared_postgres: str, audit_mock_db: str, tmp_path: Path
) -> None:
    settings = audit_settings(shared_postgres, tmp_path, checkpoint_every_events=100)
    load_checkpoint_key(settings)
    client = await register_client(settings)
    env = server_env(settings, audit_mock_db)
    answered: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as http,
        serving(env, tmp_path) as first,
        serving(env, tmp_path) as second,
    ):
        tokens = [await token_for(http, s.url, client) for s in (first, second)]
        until = time.monotonic() + LOAD_SECONDS
        await asyncio.gather(
            *(
                drive(http, server.url, token, f"{name}-{n}", until, answered)
                for name, server, token in (("a", first, tokens[0]), ("b", second, tokens[1]))
                for n in range(TASKS // 2)
            )
        )

    log = open_log(settings)
    try:
        rows = await log.rows()
        report = await log.verify()
    finally:
        await log.close()
    assert report.ok, report
    seqs = [r.seq for r in rows]
    assert seqs == list(range(1, len(rows) + 1))  # contiguous
    assert len({r.prev_hash for r in rows}) == len(rows)  # no fork: no two events share a predecessor
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))
    assert set(answered) <= {r.request_id for r in rows}
    # Both processes wrote, interleaved in one chain
    writers = [r.request_id[0] for r in rows if r.request_id and r.request_id[:2] in {"a-", "b-"}]
    assert writers.count("a") > 20
    assert writers.count("b") > 20
    assert sum(1 for x, y in itertools.pairwise(writers) if x != y) > 10
