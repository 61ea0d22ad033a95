"""Session-wide fixtures: real PostgreSQL and Redis, isolated per test session.

CI runs on the same machine as developers' work, so every session creates its own PostgreSQL
database (``dancu_t_<random>``) and drops it afterwards, uses its own Redis key prefix and never
flushes Redis. ``DANCU_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing service into
a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get("DANCU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DANCU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("DANCU_TEST_REQUIRE_SERVICES", "") == "1"


def _unavailable(what: str, err: BaseException) -> None:
    message = f"{what} is not reachable ({type(err).__name__})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and DANCU_TEST_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _plain_postgres(url: str) -> str:
    """asyncpg wants ``postgresql://``; accept a SQLAlchemy-style driver suffix in the setting."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain_postgres(url), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, as a plain ``postgresql://`` URL."""
    name = "dancu_t_" + secrets.token_hex(6)
    try:
        asyncio.run(_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, Exception) as err:
        _unavailable("PostgreSQL", err)
    try:
        yield _with_database(_plain_postgres(POSTGRES_URL), name)
    finally:
        asyncio.run(_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL for tests; skipped (or failed under CI) when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as err:
        _unavailable("Redis", err)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """A key prefix owned by this test session alone (Redis is shared with other work: never flush it)."""
    return f"dancu_t_{secrets.token_hex(6)}:"


def free_port() -> int:
    """A TCP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No DANCU_* or MOCK_CSDLQG_* variable or .env of the developer's leaks into a test, and relative paths
    (./var/keys, ./var/checkpoints, ./var/*.db) land in the test's own tmp_path."""
    from app.config import get_settings

    for name in list(os.environ):
        if (name.startswith("DANCU_") and not name.startswith("DANCU_TEST_")) or name.startswith(
            "MOCK_CSDLQG_"
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@contextmanager
def serve_in_thread(app: Any, name: str) -> Iterator[str]:
    """``app`` under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            ws="none",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"{name} did not start", pytrace=False)
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own, migrated to head, dropped afterwards (the audit tables refuse TRUNCATE)."""
    from app.cli import upgrade_database

    name = "dancu_t_" + secrets.token_hex(6)
    asyncio.run(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(postgres_url, name)
    try:
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def seeded_mock(tmp_path_factory: pytest.TempPathFactory, name: str, count: int = 0) -> str:
    """A mock national database in a new temporary folder: the personas plus ``count`` generated residents
    (seed 5, as of 2026-01-01: the same residents in every suite that asks for the same count)."""
    from datetime import date

    from mock_csdlqg.generator.pipeline import seed_database

    url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'mock.db'}"
    asyncio.run(seed_database(url, count=count, seed=5, as_of=date(2026, 1, 1), workers=1))
    return url
