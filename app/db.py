"""Persistence plumbing: the declarative base and its conventions, the engine, and the unit of work.

Conventions are declared once here: constraint names follow ``NAMING_CONVENTION`` (so migrations can name
what they drop), and every ``Mapped[datetime]`` is a timezone-aware UTC timestamp. A request gets one
session (``DbSession``) that commits once, after the route returns and before the answer leaves; services and
repositories flush, never commit.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, make_url, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from app.config import Settings
from app.files import private_file
from app.state import AppState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_database_url(url: str) -> str:
    """The URL with its async driver named: ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``.

    Accepts ``sqlite:///p``, ``sqlite+aiosqlite:///p``, ``postgresql://``, ``postgresql+asyncpg://`` and
    ``postgres://``; anything else is a ValueError that names the scheme only (URLs carry passwords).
    """
    scheme, sep, rest = url.partition("://")
    driver = _ASYNC_DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {scheme.lower()[:32]!r}: use sqlite:/// or postgresql://"
            if sep
            else "the database URL has no scheme: use sqlite:/// or postgresql://"
        )
    return f"{driver}://{rest}"


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite database file (SQLite creates the file, not the directory) and the
    file itself, both readable by their owner only (``app.files``): SQLite would create the file with the
    umask's mode, 0644 as a rule, and its ``-wal`` and ``-shm`` files take the database file's mode."""
    parsed = make_url(async_database_url(url))
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if not database.startswith("file:"):  # a URI filename: left to the operator
        private_file(Path(database))


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE``, always UTC and always aware, also on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the gateway stores aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The path of the engine's SQLite database file, or None (another database, or one only the engine's own
    connections can see: in memory, or a ``file:`` URI). Where the gateway reaches its SQLite file with the
    standard library's driver besides the engine (the audit appender, the access version, checkpoints)."""
    url = engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else database


def new_uuid() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` writes it.

    Built from ``os.urandom`` directly: ``uuid.UUID`` checks and converts its argument through an int, which
    made ``str(uuid4())`` ~3 µs against ~1.3 here, and every verification makes one (its id).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    return _uuid_text(raw)


def new_time_uuid() -> str:
    """A time-ordered UUID (version 7, RFC 9562): the Unix time in milliseconds, then 74 random bits.

    For keys of an append-mostly table with an index on them (audit event ids): a new key goes at the end of
    the index, whose last pages are in the cache, instead of at a random place in it (a random UUID made
    every audit insert touch a random leaf of a growing index: page reads, and a dirty page per event for
    the commit to write).
    """
    raw = bytearray(os.urandom(16))
    raw[0:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    return _uuid_text(raw)


def _uuid_text(raw: bytearray) -> str:
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant: RFC 4122
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Base(DeclarativeBase):
    """Base of the gateway's models (its tables only: the mock owns its own)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 - read by SQLAlchemy, never mutated


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while one writer commits; NORMAL survives a killed process but may lose the last
    # commits on power loss (FULL would not). Foreign keys are off in SQLite unless asked for, per connection.
    cursor = dbapi_connection.cursor()
    try:
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            cursor.execute(pragma)
    finally:
        cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    """The engine for ``DANCU_DATABASE_URL``; nothing connects until first use."""
    url = async_database_url(settings.database_url)
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        # synchronous_commit on (PostgreSQL's default, pinned here): a commit is acknowledged only once it is
        # flushed, so an audit event the caller was answered for survives a crash of the server too.
        connect_args={"server_settings": {"application_name": "dancu-gateway", "synchronous_commit": "on"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """``SELECT 1``; raises when the database cannot be reached."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: commits once when the route returns, rolls back when it raises."""
    state: AppState = request.app.state.dancu
    async with state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit happens before the response is sent, so a failed commit is a 500, not a 200
# for a change that was lost.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
