"""What the lifespan built, as a request reaches it: ``AppState``, kept as ``app.state.dancu``.

Every layer reaches the running app's objects through here, so this module imports no context: the plumbing
every layer uses (settings, engine, sessionmaker) is typed here, and each context's own objects are kept
under a typed key that the context declares beside the dependency that reads it (``StateKey``, after
aiohttp's ``AppKey``): ``state[KEYS]`` is a ``KeyStore`` to mypy, yet ``app.state`` never imports
``app.auth``. The lifespan (``app.lifespan``) builds the objects and files each under its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings

T = TypeVar("T")


class StateKey(Generic[T]):
    """The typed name of one object the lifespan built (``StateKey[KeyStore]("keys")``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


@dataclass(slots=True, eq=False)
class AppState:
    """What the lifespan built: the plumbing, and each context's objects under their ``StateKey``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    _parts: dict[StateKey[Any], Any] = field(default_factory=dict)

    def __getitem__(self, key: StateKey[T]) -> T:
        # No typing.cast: it is a call at run time, and this is on every request's path several times.
        return self._parts[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: StateKey[T], value: T) -> None:
        """File ``value`` under ``key`` (the lifespan, at start-up)."""
        self._parts[key] = value


async def get_app_state(request: Request) -> AppState:
    """The running app's state (an async dependency: a sync one would cost a threadpool hop)."""
    state: AppState = request.app.state.dancu
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]
