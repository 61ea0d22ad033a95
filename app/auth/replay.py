"""Single use of ``private_key_jwt`` assertions: every ``jti`` is remembered until its assertion expires.

In-process by default; shared through Redis (``SET NX EX``, under ``DANCU_REDIS_KEY_PREFIX``) when
``DANCU_REDIS_URL`` is set, so that an assertion used against one worker or replica is refused by all the
others. When that Redis cannot be reached the store fails closed (``ReplayStoreUnavailable``), and the token
endpoint answers 503 ``temporarily_unavailable`` for ``private_key_jwt`` only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Protocol

from app.auth.errors import ReplayStoreUnavailable
from app.config import Settings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 1.0


class ReplayStore(Protocol):
    """Remembers used identifiers until they expire."""

    async def claim(self, key: str, expires_at: int) -> bool:
        """True the first time ``key`` is claimed before ``expires_at`` (a Unix time), False on a replay."""
        ...

    async def close(self) -> None: ...


def _digest(key: str) -> str:
    # Fixed length whatever the client sent, and no client-chosen bytes in a Redis key.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class MemoryReplayStore:
    """One process's memory: right for a single worker (``dancu serve`` refuses more without Redis)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._expiry: dict[str, float] = {}
        self._max_entries = max_entries

    async def claim(self, key: str, expires_at: int) -> bool:
        now = time.time()
        digest = _digest(key)
        known = self._expiry.get(digest)
        if known is not None and known > now:
            return False
        if len(self._expiry) >= self._max_entries:
            self._expiry = {k: exp for k, exp in self._expiry.items() if exp > now}
            if len(self._expiry) >= self._max_entries:
                # Forgetting a live jti would allow a replay: refuse instead.
                raise ReplayStoreUnavailable("too many live assertion identifiers")
        self._expiry[digest] = float(expires_at)
        return True

    async def close(self) -> None:
        self._expiry.clear()


class RedisReplayStore:
    """Shared by every process that uses the same Redis and key prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        from redis.exceptions import RedisError  # redis is imported only where it is configured (~6 MiB)

        self._client = client
        self._prefix = prefix
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisReplayStore:
        """A store on ``url``; nothing connects until the first claim."""
        import redis.asyncio as aioredis  # only where Redis is configured

        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        return cls(client, prefix)

    async def claim(self, key: str, expires_at: int) -> bool:
        ttl = max(1, int(expires_at - time.time()) + 1)
        try:
            stored = await self._client.set(f"{self._prefix}jti:{_digest(key)}", b"1", nx=True, ex=ttl)
        except self._errors as exc:
            logger.warning("jti store unreachable: %s", type(exc).__qualname__)
            raise ReplayStoreUnavailable() from exc
        return bool(stored)

    async def close(self) -> None:
        await self._client.aclose()


def build_replay_store(settings: Settings) -> ReplayStore:
    """Redis when ``DANCU_REDIS_URL`` is set, else this process's memory."""
    if settings.redis_url:
        return RedisReplayStore.from_url(settings.redis_url, settings.redis_key_prefix)
    return MemoryReplayStore()
