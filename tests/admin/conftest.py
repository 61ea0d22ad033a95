"""Fixtures for the admin tests: a migrated database, the gateway in process (``tests.harness``), and an
administrator's hands on the REST API.

The first admin client is made as an operator makes it (the service layer with actor ``cli``); everything
after that goes through ``/v1/admin``.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.cli import upgrade_database
from tests.harness import (
    ISSUER,
    PURPOSE,
    Client,
    Gateway,
    gateway_settings,
    running,
    seeded_mock,
    with_database,
)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin-template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


async def _postgres(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database migrated once, copied per test (the audit table refuses TRUNCATE)."""
    name = "dancu_t_" + secrets.token_hex(6)
    asyncio.run(_postgres(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade_database(with_database(postgres_url, name))
        yield name
    finally:
        asyncio.run(_postgres(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The mock national database (its fixed personas plus a few residents), for first successful calls."""
    return seeded_mock(tmp_path_factory, "admin-mock", 50)


@pytest.fixture
def sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def postgres_database_url(postgres_url: str, postgres_template: str) -> AsyncIterator[str]:
    """A migrated, empty PostgreSQL database of this test's own."""
    name = "dancu_t_" + secrets.token_hex(6)
    await _postgres(postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield with_database(postgres_url, name)
    finally:
        await _postgres(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Admin:
    """An admin client calling ``/v1/admin`` with its token."""

    def __init__(self, gateway: Gateway, client: Client, token: str) -> None:
        self.gateway = gateway
        self.client = client
        self.token = token

    @property
    def client_id(self) -> str:
        return self.client.client_id

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self.gateway.http.request(
            method,
            "/v1/admin" + path,
            json=body,
            params=params,
            headers=self.headers(headers),
        )

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.request("POST", path, body)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PATCH", path, body)

    async def new_client(self, name: str = "Cổng DVC tỉnh Gia Lai") -> Client:
        response = await self.post("/clients", {"name": name})
        assert response.status_code == 201, response.text
        body = response.json()
        return Client(body["client_id"], body["client_secret"])

    async def add_purpose(self, code: str = PURPOSE) -> None:
        response = await self.post(
            "/purposes",
            {"code": code, "title": "Đăng ký thường trú", "legal_basis": "Luật Cư trú 2020, Điều 20"},
        )
        assert response.status_code == 201, response.text

    async def put_grant(self, client_id: str, **grant: Any) -> httpx.Response:
        return await self.put(f"/clients/{client_id}/grant", grant)


async def admin_for(gateway: Gateway, client: Client) -> Admin:
    return Admin(gateway, client, await gateway.token(client))


@pytest.fixture
async def gateway(sqlite_url: str) -> AsyncIterator[Gateway]:
    async with running(gateway_settings(sqlite_url, issuer=ISSUER)) as gw:
        yield gw


@pytest.fixture
async def admin(gateway: Gateway) -> Admin:
    return await admin_for(gateway, await gateway.bootstrap_admin())


@pytest.fixture
async def four_eyes(sqlite_url: str) -> AsyncIterator[Gateway]:
    """The gateway with DANCU_ADMIN__REQUIRE_APPROVAL=true."""
    async with running(gateway_settings(sqlite_url, issuer=ISSUER, admin={"require_approval": True})) as gw:
        yield gw


async def two_admins(gateway: Gateway) -> tuple[Admin, Admin]:
    """The first admin and a second one, made with the CLI's powers (how a second administrator begins)."""
    first = await gateway.bootstrap_admin("Quản trị 1")
    second = await gateway.operator_client("Quản trị 2", scopes=["admin"])
    return await admin_for(gateway, first), await admin_for(gateway, second)


def all_values(value: Any) -> Sequence[Any]:
    """Every scalar inside a JSON value (for "never a secret" checks)."""
    if isinstance(value, dict):
        return [v for item in value.items() for part in item for v in all_values(part)]
    if isinstance(value, list):
        return [v for item in value for v in all_values(item)]
    return [value]
