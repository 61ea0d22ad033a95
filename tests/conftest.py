"""Session-wide fixtures: real PostgreSQL and Redis, isolated per test session (the helpers behind them, and
the harness for a running gateway every folder uses, are in ``tests.harness``).

CI runs on the same machine as developers' work, so every session creates its own PostgreSQL
database (``dancu_t_<random>``) and drops it afterwards, uses its own Redis key prefix and never
flushes Redis. ``DANCU_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing service into
a failure instead of a skip.

Here too: the gateway as a portal calls it (``gateway``, ``sqlite_gateway``, ``gateway_pg`` and the mock
databases behind them), which any folder uses by name and a folder with other needs overrides.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import (
    MOCK_KEY,
    POSTGRES_URL,
    REDIS_URL,
    Gateway,
    fresh_postgres,
    gateway_settings,
    plain_postgres,
    postgres_admin,
    running,
    seeded_mock,
    serve_in_thread,
    unavailable,
    with_database,
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, as a plain ``postgresql://`` URL."""
    name = "dancu_t_" + secrets.token_hex(6)
    try:
        asyncio.run(postgres_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError, Exception) as err:
        unavailable("PostgreSQL", err)
    try:
        yield with_database(plain_postgres(POSTGRES_URL), name)
    finally:
        asyncio.run(postgres_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL for tests; skipped (or failed under CI) when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as err:
        unavailable("Redis", err)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """A key prefix owned by this test session alone (Redis is shared with other work: never flush it)."""
    return f"dancu_t_{secrets.token_hex(6)}:"


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


# --- the gateway as a portal calls it (a folder with other needs overrides these: tests/admin, tests/auth) -----
# On SQLite, once on the embedded mock and once on the real mock service over HTTP; on PostgreSQL for
# ``gateway_pg``. Clients are registered through the service layer, as an operator's CLI does.


@pytest.fixture(scope="session")
def mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "citizens-mock", 400)


@pytest.fixture(scope="session")
def live_mock(mock_db: str) -> Iterator[str]:
    """The real mock service (faults on) on a free loopback port, for the ``http`` backend."""
    from pydantic import SecretStr

    from mock_csdlqg.app import create_app as create_mock_app
    from mock_csdlqg.config import MockSettings

    settings = MockSettings.model_construct(
        database_url=mock_db, api_key=SecretStr(MOCK_KEY), faults=True, max_batch=1000
    )
    with serve_in_thread(create_mock_app(settings), "citizens-live-mock") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.cli import upgrade_database

    path = tmp_path_factory.mktemp("citizens-gw") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as url:
        yield url


@pytest.fixture(params=["embedded", "http"])
async def gateway(
    request: pytest.FixtureRequest, migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> AsyncIterator[Gateway]:
    """The gateway on SQLite, once on the embedded mock and once on the mock service over HTTP."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    live = request.getfixturevalue("live_mock") if request.param == "http" else None
    async with running(
        gateway_settings(f"sqlite:///{path}", mock_db, request.param, live), request.param
    ) as gw:
        yield gw


@pytest.fixture
async def sqlite_gateway(migrated_sqlite: Path, tmp_path: Path, mock_db: str) -> AsyncIterator[Gateway]:
    """The embedded backend on SQLite only, for tests where the backend does not matter."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    async with running(gateway_settings(f"sqlite:///{path}", mock_db, "embedded", None), "embedded") as gw:
        yield gw


@pytest.fixture
async def gateway_pg(migrated_postgres: str, mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway's own tables on PostgreSQL (a fresh database), embedded backend."""
    async with running(gateway_settings(migrated_postgres, mock_db, "embedded", None), "embedded") as gw:
        yield gw
