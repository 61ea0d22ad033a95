"""The auditor API end to end: the gateway's tables on SQLite and on PostgreSQL, events made by real citizen
calls (embedded backend) or written through the audit writer.

The citizen suite's fixtures (mock database, migrated gateway databases, settings isolation) are reused;
``site`` is a migrated gateway database of the test's own that a test may start the gateway on more than
once (a restart with other subject keys, say).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditEventRow
from tests.harness import Client, Gateway, gateway_settings, running

K1 = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="
K2 = "k2:" + "WllYV1ZVVFNSUVBPTk1MS0pJSEdGRURDQkFaWVhXVlU="
OTHER_PURPOSE = "2.000111.000.00.00.H12"


@dataclass(frozen=True)
class Site:
    """A migrated gateway database and the mock's, to start the gateway on."""

    database_url: str
    mock_db: str

    def start(self, subject_keys: str = K1) -> AbstractAsyncContextManager[Gateway]:
        settings = gateway_settings(
            self.database_url, self.mock_db, "embedded", None, audit={"subject_keys": subject_keys}
        )
        return running(settings, "embedded")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path, mock_db: str) -> Site:
    """A fresh gateway database: a copy of the migrated SQLite file, or a new migrated PostgreSQL one.

    Synchronous: the session fixtures it asks for run migrations with ``asyncio.run``.
    """
    if request.param == "sqlite":
        path = tmp_path / "dancu.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return Site(f"sqlite:///{path}", mock_db)
    url: str = request.getfixturevalue("migrated_postgres")  # the audit table refuses TRUNCATE
    return Site(url, mock_db)


@pytest.fixture
async def gw(site: Site) -> AsyncIterator[Gateway]:
    """The gateway on SQLite, then on PostgreSQL."""
    async with site.start() as gateway:
        yield gateway


@pytest.fixture
async def sqlite_gw(tmp_path: Path, migrated_sqlite: Path, mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway on SQLite only, for what does not depend on the database."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    async with Site(f"sqlite:///{path}", mock_db).start() as gateway:
        yield gateway


@dataclass
class Auditor:
    """An audit client's calls."""

    gw: Gateway
    client: Client

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.client.token}", **extra}

    async def post(self, path: str, body: Any, **params: str) -> httpx.Response:
        return await self.gw.http.post(path, json=body, params=params, headers=self.headers())

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.gw.http.get(path, params=params, headers=self.headers())

    async def search(self, **body: Any) -> dict[str, Any]:
        response = await self.post("/v1/audit/events/search", body)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    async def walk(self, limit: int, **body: Any) -> tuple[list[dict[str, Any]], list[int]]:
        """Every page of a search: the items and the size of each page."""
        items: list[dict[str, Any]] = []
        sizes: list[int] = []
        cursor = None
        while True:
            page = await self.search(**body, limit=limit, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            sizes.append(len(page["items"]))
            cursor = page["next_cursor"]
            if cursor is None:
                return items, sizes
            assert len(sizes) < 1000, "the walk does not end"

    async def report(self, personal_id: str, **body: Any) -> dict[str, Any]:
        response = await self.post("/v1/audit/subject-report", {"personal_id": personal_id, **body})
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report


async def auditor(gw: Gateway, scopes: Sequence[str] = ("audit.read",)) -> Auditor:
    client = await gw.register(scopes=scopes, fields=(), provinces=(), purposes=(), verify_details=False)
    return Auditor(gw, client)


async def all_rows(gw: Gateway) -> list[AuditEventRow]:
    """Every stored event, by seq."""
    async with gw.state.sessionmaker() as session:
        return list((await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq))).all())
