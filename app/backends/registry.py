"""Which backend serves the gateway: ``DANCU_BACKEND`` names a factory here (explicit, no plugin discovery).

``open_backend(settings)`` builds and opens it; the lifespan calls it once and closes what it returns. The
fake backend is deliberately absent: tests construct ``app.backends.fake.FakeBackend`` themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.backends.base import Backend
from app.backends.embedded import EmbeddedBackend
from app.config import Settings

BackendFactory = Callable[[Settings], Awaitable[Backend]]


async def _http(settings: Settings) -> Backend:
    # Imported here: httpx and what it pulls in (~5 MiB of RSS) only in a gateway that uses the http backend.
    from app.backends.http import HttpBackend

    backend = HttpBackend(settings.backend_url, settings.backend_api_key, sandbox=settings.sandbox)
    await backend.open()
    return backend


async def _embedded(settings: Settings) -> Backend:
    backend = EmbeddedBackend(settings.mock_csdlqg_database_url, sandbox=settings.sandbox)
    await backend.open()  # a missing database is not an error here: /readyz says 503 until it is seeded
    return backend


BACKENDS: dict[str, BackendFactory] = {"embedded": _embedded, "http": _http}
"""``settings.backend`` -> a factory that returns the backend opened."""


async def open_backend(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names, opened (HTTP connects lazily; embedded tolerates no data yet)."""
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ValueError(f"unknown DANCU_BACKEND {settings.backend!r}; known: {sorted(BACKENDS)}") from None
    return await factory(settings)
