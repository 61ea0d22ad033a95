"""The access cache: clients, grants and purposes held in memory, and every way they are dropped.

docs/contract.md, Access tokens: a suspension or grant change is seen by the process that made it on its next
request (the in-process tests of test_dependencies.py and tests/admin), and by other processes within 1 s.
Here: the other processes (the CLI, an operator's plain SQL) through the database's access version; what a
cached request costs (no database connection); what stays a per-request check (the grant's validity window);
and failing closed when the version cannot be read. Propagation from another process is polled for up to 10 s
(the project's rule: assert the outcome, not the delay).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import app.auth.access
import app.auth.dependencies
from app.audit.dependencies import AUDIT
from app.audit.writer import AdminLog
from app.auth.access import STALE_AFTER_SECONDS, WATCH_TASK_NAME, AccessCache
from app.auth.dependencies import ACCESS, KEYS
from app.auth.keys import SecretHasher
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.config import Settings
from app.db import async_database_url, create_engine, create_sessionmaker, get_session, utcnow
from app.main import create_app
from tests.harness import (
    HEAD,
    PURPOSE,
    VENV_BIN,
    Gateway,
    Registered,
    eventually,
    free_port,
    gateway_settings,
    running,
    seeded_mock,
    status_is,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def checkouts(engine: AsyncEngine) -> Iterator[list[str]]:
    """The name of the task behind every connection checked out of ``engine``'s pool meanwhile."""
    seen: list[str] = []

    def checkout(*_: Any) -> None:
        task = asyncio.current_task()
        seen.append(task.get_name() if task is not None else "")

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine.pool, "checkout", checkout)


def by_requests(names: list[str]) -> list[str]:
    """Checkouts not made by the background task that watches the access version."""
    return [name for name in names if name != WATCH_TASK_NAME]


async def plain_sql(database_url: str, statement: str, **values: str) -> None:
    """``statement`` on a connection of its own, as another program would send it (no gateway code)."""
    engine = create_async_engine(async_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement), values)
    finally:
        await engine.dispose()


# --- a cached request touches no database connection ----------------------------------------------------


@pytest.fixture(scope="module")
def mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The mock national database with its personas only (the embedded backend reads it)."""
    return seeded_mock(tmp_path_factory, "access-mock", 0)


@pytest.fixture
async def citizen_gateway(sqlite_url: str, mock_db: str) -> AsyncIterator[Gateway]:
    settings = gateway_settings(sqlite_url, mock_db, "embedded", None)
    async with running(settings, "embedded") as gateway:
        yield gateway


async def no_audit(*_: Any) -> None:
    """The audit writer swapped out: its own transaction is not what this test counts."""


def dependency_calls(route: APIRoute) -> set[Any]:
    calls: set[Any] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        pending.extend(dependency.dependencies)
        calls.add(dependency.call)
    return calls


async def test_a_cached_verification_opens_no_database_session_or_connection(
    citizen_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    citizen_routes = {
        ctx.path: ctx.original_route
        for ctx in iter_route_contexts(citizen_gateway.app.routes)
        if isinstance(ctx.original_route, APIRoute) and (ctx.path or "").startswith("/v1/citizens/")
    }
    assert len(citizen_routes) == 5  # verify, batch, lookup, household, prefill
    for path, route in citizen_routes.items():
        assert get_session not in dependency_calls(route), path

    state = citizen_gateway.state
    client = await citizen_gateway.register()
    body = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"}
    monkeypatch.setattr(state[AUDIT], "write", no_audit)
    await state[ACCESS].check_version()  # the version the registration moved: seen now, not by the next tick
    assert (await citizen_gateway.call(client, "/v1/citizens/verify", body)).status_code == 200
    await state[KEYS].refresh()  # the attestation signer re-reads its keys every few seconds: not now

    with checkouts(state.engine) as cached:
        answers = [await citizen_gateway.call(client, "/v1/citizens/verify", body) for _ in range(20)]
    state[ACCESS].invalidate()
    with checkouts(state.engine) as dropped:
        after_drop = await citizen_gateway.call(client, "/v1/citizens/verify", body)

    assert [answer.status_code for answer in answers] == [200] * 20
    assert by_requests(cached) == []
    assert after_drop.status_code == 200
    assert len(by_requests(dropped)) == 2  # the client and the purposes, read again once dropped


# --- what is checked on every request -------------------------------------------------------------------


async def test_a_grant_whose_valid_until_passes_while_cached_is_refused_on_the_next_request(
    sqlite_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    client = await sqlite_gateway.register(valid_until=now + timedelta(hours=1))
    token = await sqlite_gateway.token(client)
    await sqlite_gateway.state[ACCESS].check_version()  # the version the registration moved: seen now
    assert (await sqlite_gateway.http.get("/_t/read", headers=bearer(token))).status_code == 200

    monkeypatch.setattr(app.auth.dependencies, "utcnow", lambda: now + timedelta(hours=1, seconds=1))
    with checkouts(sqlite_gateway.state.engine) as seen:
        refused = await sqlite_gateway.http.get("/_t/read", headers=bearer(token))

    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    assert by_requests(seen) == []  # the cached grant was used: the time is checked, not the row


# --- changes made by other processes ----------------------------------------------------------------------


def cli_environment(database_url: str) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DANCU_", "MOCK_CSDLQG_")) or name.startswith("DANCU_TEST_")
    }
    return {
        **inherited,
        "PATH": f"{VENV_BIN}{os.pathsep}{inherited.get('PATH', '')}",
        "DANCU_DATABASE_URL": database_url,
    }


async def test_a_suspension_by_the_cli_reaches_a_running_gateway(
    gateway: Gateway, database_url: str, tmp_path: Path
) -> None:
    client = await gateway.register()
    token = await gateway.token(client)
    assert (await gateway.http.get("/_t/read", headers=bearer(token))).status_code == 200

    done = await asyncio.to_thread(
        subprocess.run,
        [str(VENV_BIN / "dancu"), "clients", "suspend", client.client_id],
        env=cli_environment(database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,  # generous: a fresh interpreter importing the gateway, on a loaded CI machine
        check=False,
    )
    assert done.returncode == 0, done.stderr
    refused = await eventually(lambda: gateway.http.get("/_t/read", headers=bearer(token)), status_is(401))

    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


async def test_a_grant_changed_by_plain_sql_reaches_a_running_gateway(
    gateway: Gateway, database_url: str
) -> None:
    client = await gateway.register(scopes=["citizen.verify", "citizen.read"])
    token = await gateway.token(client)
    assert (await gateway.http.get("/_t/read", headers=bearer(token))).status_code == 200

    await plain_sql(
        database_url,
        """UPDATE grants SET scopes = '["citizen.verify"]' WHERE client_id = :client_id""",
        client_id=client.client_id,
    )
    refused = await eventually(lambda: gateway.http.get("/_t/read", headers=bearer(token)), status_is(401))

    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    assert (await gateway.http.get("/_t/verify", headers=bearer(token))).status_code == 200


# --- the cache on its own -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(_env_file=None, database_url=sqlite_url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def registered(engine: AsyncEngine, name: str = "Cổng DVC") -> Registered:
    """A client with a citizen.read grant and the purpose it names, made through the service layer."""
    async with create_sessionmaker(engine)() as session:
        service = AuthService(session, SecretHasher(Fernet.generate_key()), AdminLog(session, actor="test"))
        if not await service.purposes.get(PURPOSE):
            await service.add_purpose(PurposeIn(code=PURPOSE, title="Thủ tục", legal_basis="Luật Cư trú"))
        created = await service.create_client(ClientCreate(name=name))
        grant = GrantIn(scopes=["citizen.read"], fields=["*"], provinces=["*"], purposes=[PURPOSE])
        await service.replace_grant(created.client.client_id, grant)
        await session.commit()
    return Registered(created.client.client_id, created.client_secret)


async def test_entries_answer_until_dropped_and_unknown_clients_are_remembered(engine: AsyncEngine) -> None:
    client = await registered(engine)
    cache = AccessCache(engine, refresh_seconds=0.25, clock=Clock())
    await cache.check_version()

    with checkouts(engine) as first:
        found = await cache.client(client.client_id)
        missing = await cache.client("c_unknown")
        purposes = await cache.purposes()
    with checkouts(engine) as again:
        assert await cache.client(client.client_id) is found
        assert await cache.client("c_unknown") is None
        assert await cache.purposes() is purposes
    cache.invalidate()
    with checkouts(engine) as dropped:
        await cache.client("c_unknown")

    assert found is not None
    assert found.active
    assert found.name == "Cổng DVC"
    assert found.grant.scopes == frozenset({"citizen.read"})
    assert found.grant.provinces is None  # expanded as the scope dependency expects it
    assert missing is None
    assert purposes == frozenset({PURPOSE})
    assert len(first) == 3
    assert again == []
    assert len(dropped) == 1


async def test_concurrent_misses_share_one_query(engine: AsyncEngine) -> None:
    client = await registered(engine)
    cache = AccessCache(engine, refresh_seconds=0.25, clock=Clock())
    await cache.check_version()

    with checkouts(engine) as seen:
        found = await asyncio.gather(*(cache.client(client.client_id) for _ in range(60)))
        unknown = await asyncio.gather(*(cache.client("c_unknown") for _ in range(60)))

    assert all(entry is found[0] for entry in found)
    assert unknown == [None] * 60
    assert len(seen) == 2


async def test_the_number_of_clients_kept_is_bounded(engine: AsyncEngine) -> None:
    cache = AccessCache(engine, refresh_seconds=0.25, max_clients=2, clock=Clock())
    await cache.check_version()

    for client_id in ("c_1", "c_2", "c_3"):
        await cache.client(client_id)
    with checkouts(engine) as seen:
        await cache.client("c_3")
        await cache.client("c_2")
        await cache.client("c_1")  # the oldest went first

    assert len(seen) == 1


async def test_a_change_committed_in_this_process_drops_the_entries_a_rolled_back_one_does_not(
    engine: AsyncEngine,
) -> None:
    client = await registered(engine)
    cache = AccessCache(engine, refresh_seconds=0.25, clock=Clock())
    await cache.check_version()
    assert (await cache.client(client.client_id)) is not None
    sessionmaker = create_sessionmaker(engine)
    hasher = SecretHasher(Fernet.generate_key())

    async with sessionmaker() as session:
        await AuthService(session, hasher, AdminLog(session, actor="test")).set_status(
            client.client_id, "suspended"
        )
        await session.rollback()
    with checkouts(engine) as after_rollback:
        still = await cache.client(client.client_id)
    async with sessionmaker() as session:
        await AuthService(session, hasher, AdminLog(session, actor="test")).set_status(
            client.client_id, "suspended"
        )
        await session.commit()
    suspended = await cache.client(client.client_id)

    assert after_rollback == []
    assert still is not None
    assert still.active
    assert suspended is not None
    assert not suspended.active


async def test_a_read_that_began_before_a_change_is_not_kept(engine: AsyncEngine) -> None:
    client = await registered(engine)
    cache = AccessCache(engine, refresh_seconds=0.25, clock=Clock())
    await cache.check_version()
    began = asyncio.Event()
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: began.set(), once=True)
    reading = asyncio.ensure_future(cache.client(client.client_id))
    await began.wait()  # its query has a connection
    cache.invalidate()  # as a change committed meanwhile would

    assert (await reading) is not None  # its caller gets what was read...
    with checkouts(engine) as seen:
        await cache.client(client.client_id)
    assert len(seen) == 1  # ...but it was not kept


async def test_a_version_that_moved_drops_the_entries(engine: AsyncEngine, sqlite_url: str) -> None:
    client = await registered(engine)
    cache = AccessCache(engine, refresh_seconds=0.25, clock=Clock())
    await cache.check_version()
    assert (await cache.client(client.client_id)).active  # type: ignore[union-attr]

    await plain_sql(
        sqlite_url,
        "UPDATE clients SET status = 'suspended' WHERE client_id = :client_id",
        client_id=client.client_id,
    )
    before_check = await cache.client(client.client_id)
    await cache.check_version()
    after_check = await cache.client(client.client_id)

    assert before_check is not None
    assert before_check.active  # until the version is read again (every DANCU_ACCESS_REFRESH_SECONDS)
    assert after_check is not None
    assert not after_check.active


async def test_when_the_version_cannot_be_read_every_request_reads_through(
    engine: AsyncEngine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await registered(engine)
    clock = Clock()
    cache = AccessCache(engine, refresh_seconds=0.25, clock=clock)
    await cache.check_version()
    assert await cache.client(client.client_id) is not None

    readable = app.auth.access._VERSION_QUERY, app.auth.access._VERSION_SQL
    monkeypatch.setattr(app.auth.access, "_VERSION_QUERY", select(text("version")).select_from(text("gone")))
    monkeypatch.setattr(app.auth.access, "_VERSION_SQL", "SELECT version FROM gone")  # the stdlib path's
    await plain_sql(
        sqlite_url,
        "UPDATE clients SET status = 'suspended' WHERE client_id = :client_id",
        client_id=client.client_id,
    )
    with caplog.at_level(logging.WARNING, logger="app.auth.access"):
        await cache.check_version()
        await cache.check_version()
    clock.now += STALE_AFTER_SECONDS / 2
    with checkouts(engine) as within:
        trusted = await cache.client(client.client_id)
    clock.now += STALE_AFTER_SECONDS
    with checkouts(engine) as beyond:
        first = await cache.client(client.client_id)
        second = await cache.client(client.client_id)
    monkeypatch.setattr(app.auth.access, "_VERSION_QUERY", readable[0])
    monkeypatch.setattr(app.auth.access, "_VERSION_SQL", readable[1])
    await cache.check_version()
    with checkouts(engine) as recovered:
        cached = await cache.client(client.client_id)

    assert trusted is not None
    assert trusted.active  # the last successful read is recent enough
    assert within == []
    assert first is not None
    assert not first.active
    assert second is not None
    assert not second.active
    assert len(beyond) == 2  # read through, every time, and not kept
    assert cached is not None
    assert not cached.active
    assert len(recovered) == 1
    warnings = [r for r in caplog.records if r.name == "app.auth.access"]
    assert len(warnings) == 1  # once when it starts failing, not on every attempt
    assert client.client_id not in warnings[0].getMessage()


async def test_a_gateway_whose_database_is_down_starts_and_stops() -> None:
    # The watcher keeps failing (nothing listens on the port) without stopping the app or its shutdown.
    settings = Settings(
        _env_file=None,
        database_url=f"postgresql://dancu@127.0.0.1:{free_port()}/dancu",
        access_refresh_seconds=0.01,
    )
    gateway_app = create_app(settings)
    async with gateway_app.router.lifespan_context(gateway_app):
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(gateway_app), base_url="http://t") as http:
            assert (await http.get("/healthz")).status_code == 200
