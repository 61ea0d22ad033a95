"""The embedded backend on SQLite and PostgreSQL: reads, mapping of every stored record, a missing database."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.backends.base import RESIDENT_FIELDS
from app.backends.embedded import EmbeddedBackend
from app.backends.errors import UpstreamUnavailable
from app.backends.wire import record_from_wire
from mock_csdlqg.personas import personas
from tests.backends.conftest import seed, wire
from tests.harness import POSTGRES_URL, plain_postgres, postgres_admin, with_database
from tests.harness import UNKNOWN as UNKNOWN_ID

HEAD = "052068000108"
CANCELLED = "052081000125"  # persona 052080000124's previous ID


@pytest.fixture
async def embedded(mock_database_url: str) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(mock_database_url)
    await backend.open()
    yield backend
    await backend.close()


async def test_reads_personas_households_and_batches(embedded: EmbeddedBackend) -> None:
    await embedded.check()
    assert embedded.ready
    record = await embedded.get(HEAD)
    assert record is not None
    assert record.source == "mock_csdlqg"
    assert tuple(record.fields) == RESIDENT_FIELDS
    assert record.fields["relation_to_head"] == "head"
    assert await embedded.get(UNKNOWN_ID) is None
    assert await embedded.get(CANCELLED) is None
    assert await embedded.get("not-an-id") is None
    household = await embedded.household(record.fields["household_id"])
    assert household is not None
    assert household.head.personal_id == HEAD
    assert len(household.members) == 8
    assert await embedded.household("000000000000") is None
    assert await embedded.household("../../etc") is None
    ids = [p.personal_id for p in personas()]
    found = await embedded.get_many([*ids, UNKNOWN_ID, ids[0]])
    assert set(found) == set(ids)
    assert all(found[pid].personal_id == pid for pid in ids)
    assert await embedded.get_many([]) == {}


def test_every_stored_record_maps(mock_sqlite_url: str) -> None:
    """The generator's whole output (not only hypothesis' records) is on the contract we check."""
    path = mock_sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT so_dinh_danh, ban_ghi FROM csdlqg_cong_dan").fetchall()
    conn.close()
    assert len(rows) > 400
    for pid, blob in rows:
        record = record_from_wire(wire(blob), source="mock_csdlqg")
        assert record.personal_id == pid
        assert tuple(record.fields) == RESIDENT_FIELDS


async def test_a_missing_sqlite_database_is_not_ready_then_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    backend = EmbeddedBackend(f"sqlite:///{path}", reopen_interval=0)
    await backend.open()  # does not raise: the gateway still starts
    try:
        assert not backend.ready
        with pytest.raises(UpstreamUnavailable):
            await backend.check()
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.get(HEAD)
        assert not path.exists()  # read-only: never created, never seeded
        assert caught.value.status == 503
        assert caught.value.code == "upstream_unavailable"
        sqlite3.connect(path).close()  # an empty file: still not seeded
        with pytest.raises(UpstreamUnavailable):
            await backend.check()
        await asyncio.to_thread(seed, f"sqlite:///{path}", count=0, seed=1)
        await backend.check()
        assert (await backend.get(HEAD)) is not None
    finally:
        await backend.close()


async def test_reopening_is_throttled(tmp_path: Path) -> None:
    now = [0.0]
    backend = EmbeddedBackend(f"sqlite:///{tmp_path / 'none.db'}", reopen_interval=5, clock=lambda: now[0])
    await backend.open()
    for _ in range(20):
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.get(HEAD)
    assert backend.open_attempts == 1
    assert caught.value.retry_after == 5
    now[0] = 5.0
    with pytest.raises(UpstreamUnavailable):
        await backend.check()
    assert backend.open_attempts == 2


async def test_a_missing_postgres_database_is_not_ready_then_picked_up(postgres_url: str) -> None:
    name = "dancu_t_mock_" + secrets.token_hex(4)
    url = with_database(postgres_url, name)
    backend = EmbeddedBackend(url, reopen_interval=0)
    try:
        await backend.open()
        with pytest.raises(UpstreamUnavailable):
            await backend.check()  # no such database
        await postgres_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"')
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)  # a database without the mock's tables
        await asyncio.to_thread(seed, url, count=0, seed=1)
        await backend.check()
        assert (await backend.get(HEAD)) is not None
    finally:
        await backend.close()
        await postgres_admin(plain_postgres(POSTGRES_URL), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://x/y", "nonsense"])
def test_a_bad_url_stops_the_start(url: str) -> None:
    with pytest.raises(ValueError, match="MOCK_CSDLQG_DATABASE_URL"):
        EmbeddedBackend(url)
