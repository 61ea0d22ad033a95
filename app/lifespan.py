"""Builds what the gateway needs at run time when it starts, and closes it when it stops.

Nothing connects at import time: ``create_app`` only records the lifespan, and a process that imports the
app (the OpenAPI export, a test collecting) never touches the database.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.checkpoints import Checkpointer, load_checkpoint_key
from app.audit.writer import AuditWriter, load_subject_hasher
from app.auth.access import AccessCache
from app.auth.keys import KeyStore
from app.auth.replay import ReplayStore, build_replay_store
from app.backends.base import Backend
from app.backends.registry import open_backend
from app.citizens.limits import Limiter, build_limiter
from app.citizens.service import CitizenService
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.health.metrics import GatewayMetrics, InstrumentedBackend, InstrumentedLimiter, TimedAuditWriter

AUDIT_READ_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class AppState:
    """What the lifespan built; the app keeps it as ``app.state.dancu``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keys: KeyStore
    """Signing keys and the client-secret hasher; loads the key table on first use, not at start-up."""
    access: AccessCache
    """Clients, grants and purposes in memory, dropped when they change here or in another process."""
    replay: ReplayStore
    """Used ``private_key_jwt`` assertion ids: Redis when configured, else this process's memory."""
    audit: AuditWriter
    """Commits citizen events in their own transaction before the answer leaves."""
    checkpoints: Checkpointer
    """Signs checkpoints of the audit chain: every N events or T seconds, on demand, and at shutdown."""
    backend: Backend
    """The population register: the embedded mock (default) or the national database over HTTP."""
    limiter: Limiter
    """Request rate and distinct-resident quotas: Redis when configured, else this process's memory."""
    citizens: CitizenService
    audit_reads: asyncio.Semaphore
    """Auditor reads (search, one event, stats, the subject report) worked on at once; the others wait. Each
    holds its page of rows, models and answer: 64 at once took the gateway ~14 MiB further (bench/harness.py)."""
    metrics: GatewayMetrics
    """This app's Prometheus registry (``GET /metrics``); the backend, limiter and audit writer feed it."""


def build_lifespan(
    settings: Settings, metrics: GatewayMetrics | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of an app configured with ``settings``, recording into ``metrics`` (default: its own)."""
    app_metrics = metrics if metrics is not None else GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        replay = build_replay_store(settings)
        keys = KeyStore.from_settings(settings, sessionmaker)
        access = AccessCache(engine, refresh_seconds=settings.access_refresh_seconds)
        checkpoints = Checkpointer(sessionmaker, load_checkpoint_key(settings), settings.audit)
        keys.extra_public_jwks.append(checkpoints.key.public_jwk)
        audit = TimedAuditWriter(
            sessionmaker,
            load_subject_hasher(settings),
            on_append=checkpoints.note_appended,
            metrics=app_metrics,
        )
        app_metrics.watch_audit_queue(lambda: audit.queue_depth)
        backend = InstrumentedBackend(await open_backend(settings), app_metrics)
        limiter = InstrumentedLimiter(
            build_limiter(settings.redis_url, settings.redis_key_prefix), app_metrics
        )
        app.state.dancu = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            keys=keys,
            access=access,
            replay=replay,
            audit=audit,
            checkpoints=checkpoints,
            backend=backend,
            limiter=limiter,
            citizens=CitizenService(backend, limiter, audit, keys, settings.batch_max_items),
            metrics=app_metrics,
            audit_reads=asyncio.Semaphore(AUDIT_READ_CONCURRENCY),
        )
        access.start()
        checkpoints.start()
        _freeze_start_up_objects()
        try:
            yield
        finally:
            del app.state.dancu
            await access.stop()
            await keys.close()
            await checkpoints.stop()
            await audit.close()
            await limiter.close()
            await backend.close()
            await replay.close()
            await engine.dispose()

    return lifespan


_frozen = False


def _freeze_start_up_objects() -> None:
    """Once per process: what the first start-up built (modules, the app, vnid's and the wire's tables) lives
    as long as the process; moved out of the collector's reach, full collections stop walking it on the
    request path (a p99 stall). Once only: a process that starts many apps (the tests) would pin each one."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


async def get_app_state(request: Request) -> AppState:
    """The running app's state (an async dependency: a sync one would cost a threadpool hop)."""
    state: AppState = request.app.state.dancu
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]
