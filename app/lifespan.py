"""Builds what the gateway needs at run time when it starts, and closes it when it stops.

What it builds is kept as ``app.state.dancu`` (``app.state.AppState``): the plumbing, and each context's
objects under the key that context declares in its ``dependencies.py``.

Nothing connects at import time: ``create_app`` only records the lifespan, and a process that imports the
app (the OpenAPI export, a test collecting) never touches the database.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from app.audit.checkpoints import Checkpointer, load_checkpoint_key
from app.audit.dependencies import AUDIT, AUDIT_READS, CHECKPOINTS, INTEGRITY_RUNS
from app.audit.integrity_runs import IntegrityRuns
from app.audit.writer import load_subject_hasher
from app.auth.access import AccessCache
from app.auth.dependencies import ACCESS, KEYS, REPLAY
from app.auth.keys import KeyStore
from app.auth.replay import build_replay_store
from app.backends.registry import open_backend
from app.citizens.dependencies import BACKEND, CITIZENS, LIMITER
from app.citizens.limits import build_limiter
from app.citizens.service import CitizenService
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.health.dependencies import METRICS
from app.health.metrics import GatewayMetrics, InstrumentedBackend, InstrumentedLimiter, TimedAuditWriter
from app.state import AppState
from app.stats.dependencies import STATS
from app.stats.perturbation import PerturbationTable
from app.stats.service import StatsService

AUDIT_READ_CONCURRENCY = 4


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
        state = AppState(settings=settings, engine=engine, sessionmaker=sessionmaker)
        state[KEYS] = keys
        state[ACCESS] = access
        state[REPLAY] = replay
        state[AUDIT] = audit
        state[CHECKPOINTS] = checkpoints
        integrity_runs = state[INTEGRITY_RUNS] = IntegrityRuns(sessionmaker, audit, checkpoints)
        state[AUDIT_READS] = asyncio.Semaphore(AUDIT_READ_CONCURRENCY)
        state[BACKEND] = backend
        state[LIMITER] = limiter
        state[CITIZENS] = CitizenService(
            backend,
            limiter,
            audit,
            keys,
            settings.batch_max_items,
            settings.attestation_ttl_seconds,
            settings.verify_mismatches_per_subject_per_day,
        )
        state[STATS] = StatsService(
            backend, limiter, audit, PerturbationTable(settings.stats.threshold, settings.stats.max_noise)
        )
        state[METRICS] = app_metrics
        app.state.dancu = state
        access.start()
        checkpoints.start()
        _freeze_start_up_objects()
        try:
            yield
        finally:
            del app.state.dancu
            await access.stop()
            await keys.close()
            await integrity_runs.close()
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
