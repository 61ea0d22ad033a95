"""Fixtures for the admin tests: a migrated database, the gateway in process (and as a real `dancu serve`
subprocess), and an administrator's hands on the REST API.

The first admin client is made as an operator makes it (the service layer with actor ``cli``); everything
after that goes through ``/v1/admin``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.service import CLI_ACTOR, AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from app.state import AppState
from tests.conftest import _with_database, free_port, seeded_mock

BASE_URL = "http://testserver"
ISSUER = "http://gateway.test"
"""One issuer for every process of a test deployment (docs/contract.md, Access tokens: replicas share one)."""
ENCRYPTION_KEY = Fernet.generate_key().decode()
SUBJECT_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="  # 32 bytes, base64
PURPOSE = "1.001234.000.00.00.H12"
HEAD = "052068000108"  # persona: Nguyễn Văn Thành, 1968-04-15, male, lives in Gia Lai (52)
VENV_BIN = Path(sys.executable).parent
POLL_FOR = 10.0
"""How long a test waits for a change made in one process to reach another (the contract's bound is 1 s,
docs/contract.md, Access tokens; the project's rule: poll, and assert the outcome rather than the delay)."""


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
        upgrade_database(_with_database(postgres_url, name))
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
        yield _with_database(postgres_url, name)
    finally:
        await _postgres(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gateway_settings(database_url: str, mock_db: str | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "issuer": ISSUER,
        "keys": {"encryption_key": ENCRYPTION_KEY},
        "audit": {"subject_keys": SUBJECT_KEYS},
        **extra,
    }
    if mock_db is not None:
        values["MOCK_CSDLQG_DATABASE_URL"] = mock_db
    return Settings(_env_file=None, **values)


def gateway_environment(database_url: str, mock_db: str, **extra: str) -> dict[str, str]:
    """The environment of a `dancu serve` subprocess sharing the in-process gateway's database and keys."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DANCU_", "MOCK_CSDLQG_")) or name.startswith("DANCU_TEST_")
    }
    environment.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}",
            "DANCU_DATABASE_URL": database_url,
            "DANCU_ISSUER": ISSUER,
            "DANCU_KEYS__ENCRYPTION_KEY": ENCRYPTION_KEY,
            "DANCU_AUDIT__SUBJECT_KEYS": SUBJECT_KEYS,
            "MOCK_CSDLQG_DATABASE_URL": mock_db,
            **extra,
        }
    )
    return environment


@contextmanager
def served(environment: Mapping[str, str], cwd: Path, port: int | None = None) -> Iterator[str]:
    """A real `dancu serve` process on a free loopback port; yields its base URL and stops it after."""
    port = port or free_port()
    log = (cwd / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "dancu"), "serve", "--port", str(port)],
        cwd=cwd,
        env=dict(environment),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dancu serve exited with {process.returncode}", pytrace=False)
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("dancu serve did not become healthy", pytrace=False)


@dataclass(frozen=True)
class Registered:
    client_id: str
    client_secret: str


@dataclass
class Gateway:
    """The gateway in process and an administrator's hands on it."""

    app: FastAPI
    http: httpx.AsyncClient

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.dancu
        return state

    async def bootstrap_admin(self, name: str = "Quản trị viên") -> Registered:
        """An admin client as the CLI makes one (actor ``cli``); REST cannot make the first one."""
        async with self.state.sessionmaker() as session:
            created = await AuthService(
                session, self.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR)
            ).bootstrap_admin(name)
            await session.commit()
        return Registered(created.client.client_id, created.client_secret)

    async def operator_client(self, name: str, **grant: Any) -> Registered:
        """A client with ``grant``, made through the service layer with actor ``cli`` (no approval step)."""
        from app.auth.schemas import ClientCreate, GrantIn

        async with self.state.sessionmaker() as session:
            service = AuthService(session, self.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
            created = await service.create_client(ClientCreate(name=name))
            await service.replace_grant(created.client.client_id, GrantIn(**grant))
            await session.commit()
        return Registered(created.client.client_id, created.client_secret)

    async def token_response(self, client: Registered, scope: str | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return await self.http.post("/oauth2/token", data=data, auth=(client.client_id, client.client_secret))

    async def token(self, client: Registered) -> str:
        response = await self.token_response(client)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def events(self, prefix: str = "admin.") -> list[AuditEventRow]:
        async with self.state.sessionmaker() as session:
            rows = await session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.action.startswith(prefix))
                .order_by(AuditEventRow.seq)
            )
            return list(rows.all())


class Admin:
    """An admin client calling ``/v1/admin`` with its token."""

    def __init__(self, gateway: Gateway, client: Registered, token: str) -> None:
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

    async def new_client(self, name: str = "Cổng DVC tỉnh Gia Lai") -> Registered:
        response = await self.post("/clients", {"name": name})
        assert response.status_code == 201, response.text
        body = response.json()
        return Registered(body["client_id"], body["client_secret"])

    async def add_purpose(self, code: str = PURPOSE) -> None:
        response = await self.post(
            "/purposes",
            {"code": code, "title": "Đăng ký thường trú", "legal_basis": "Luật Cư trú 2020, Điều 20"},
        )
        assert response.status_code == 201, response.text

    async def put_grant(self, client_id: str, **grant: Any) -> httpx.Response:
        return await self.put(f"/clients/{client_id}/grant", grant)


async def admin_for(gateway: Gateway, client: Registered) -> Admin:
    return Admin(gateway, client, await gateway.token(client))


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        yield Gateway(app, http)


@pytest.fixture
async def gateway(sqlite_url: str) -> AsyncIterator[Gateway]:
    async with running(gateway_settings(sqlite_url)) as gw:
        yield gw


@pytest.fixture
async def admin(gateway: Gateway) -> Admin:
    return await admin_for(gateway, await gateway.bootstrap_admin())


@pytest.fixture
async def four_eyes(sqlite_url: str) -> AsyncIterator[Gateway]:
    """The gateway with DANCU_ADMIN__REQUIRE_APPROVAL=true."""
    async with running(gateway_settings(sqlite_url, admin={"require_approval": True})) as gw:
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


async def eventually(
    request: Callable[[], Awaitable[httpx.Response]], outcome: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """``request()`` again and again until its answer meets ``outcome``, for at most POLL_FOR seconds; the
    last answer (the caller asserts on it)."""
    deadline = time.monotonic() + POLL_FOR
    while True:
        response = await request()
        if outcome(response) or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)


def status_is(code: int) -> Callable[[httpx.Response], bool]:
    return lambda response: response.status_code == code
