"""Builds what the gateway needs at run time when it starts, and closes it when it stops.

Nothing connects at import time: ``create_app`` only records the lifespan, and a process that imports the
app (the OpenAPI export, a test collecting) never touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker


@dataclass(frozen=True, slots=True)
class AppState:
    """What the lifespan built; the app keeps it as ``app.state.dancu``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


def build_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of an app configured with ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.dancu = AppState(settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine))
        try:
            yield
        finally:
            del app.state.dancu
            await engine.dispose()

    return lifespan


async def get_app_state(request: Request) -> AppState:
    """The running app's state (an async dependency: a sync one would cost a threadpool hop)."""
    state: AppState = request.app.state.dancu
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]
