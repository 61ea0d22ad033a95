from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from app.auth.models import Purpose
from app.config import Settings
from app.db import DbSession, create_engine, create_sessionmaker
from app.errors import NotFound
from app.main import create_app

extra_routes = APIRouter()


@extra_routes.post("/test/purposes/{code}")
async def add_purpose(
    code: str, session: DbSession, flush: bool = True, fail: bool = False
) -> dict[str, str]:
    session.add(Purpose(code=code, title="Cấp thẻ Căn cước", legal_basis="Luật Căn cước 2023, Điều 23"))
    if flush:
        await session.flush()
    if fail:
        raise NotFound
    return {"code": code}


@extra_routes.get("/test/purposes")
async def list_purposes(session: DbSession) -> list[str]:
    return list(await session.scalars(select(Purpose.code).order_by(Purpose.code)))


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.include_router(extra_routes)
    return app


async def test_the_request_commits_once_when_the_route_returns(client: httpx.AsyncClient) -> None:
    created = await client.post("/test/purposes/1.001234.000.00.00.H12")

    assert created.status_code == 200
    assert (await client.get("/test/purposes")).json() == ["1.001234.000.00.00.H12"]


async def test_the_request_rolls_back_when_the_route_raises(client: httpx.AsyncClient) -> None:
    refused = await client.post("/test/purposes/P1?fail=true")

    assert refused.status_code == 404
    assert (await client.get("/test/purposes")).json() == []


async def test_a_failed_commit_is_a_500_not_a_success(client: httpx.AsyncClient) -> None:
    assert (await client.post("/test/purposes/P1")).status_code == 200

    # Not flushed by the route: the duplicate key surfaces in the commit, after the route returned.
    again = await client.post("/test/purposes/P1?flush=false")

    assert again.status_code == 500
    assert again.json()["code"] == "internal_error"
    assert "UNIQUE" not in again.text
    assert "purposes" not in again.text


async def test_sqlite_connections_get_the_pragmas(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            values = [
                (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()

    assert values == ["wal", 1, 1, 5000]


async def test_timestamps_come_back_aware_and_in_utc(settings: Settings) -> None:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    hanoi = timezone(timedelta(hours=7))
    try:
        async with sessionmaker() as session:
            session.add(
                Purpose(
                    code="P", title="t", legal_basis="l", created_at=datetime(2026, 1, 1, 7, tzinfo=hanoi)
                )
            )
            session.add(Purpose(code="D", title="t", legal_basis="l"))
            await session.commit()
        async with sessionmaker() as session:
            stored = {p.code: p.created_at for p in await session.scalars(select(Purpose))}
            session.add(Purpose(code="N", title="t", legal_basis="l", created_at=datetime(2026, 1, 1)))  # noqa: DTZ001
            with pytest.raises(StatementError, match="naive datetime"):
                await session.flush()
    finally:
        await engine.dispose()

    assert stored["P"] == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert stored["P"].tzinfo == UTC
    assert stored["D"].tzinfo == UTC
