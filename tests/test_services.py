"""The services the suite runs against: PostgreSQL and Redis, isolated per test session."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis


@pytest.mark.postgres
def test_postgres_database_is_this_sessions_own(postgres_url: str) -> None:
    async def name() -> str:
        conn = await asyncpg.connect(postgres_url)
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    assert asyncio.run(name()).startswith("dancu_t_")


def test_redis_keys_stay_under_the_sessions_prefix(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        key = redis_prefix + "probe"
        client.set(key, "1", ex=30)
        assert client.get(key) == b"1"
        assert client.delete(key) == 1
    finally:
        client.close()
