"""The one harness for a running gateway, shared by every test folder (no folder imports another's conftest).

- services: ``free_port``, ``serve_in_thread`` (an ASGI app under uvicorn), ``fresh_postgres`` (a migrated
  database of its own), ``seeded_mock`` (a mock national database), ``served`` (a real ``dancu serve``);
- the gateway in process: ``gateway_settings`` and ``running``, which yields a ``Gateway``: the app, an
  ``httpx.AsyncClient`` on it, and an operator's hands on its service layer (``register`` a portal client,
  ``bootstrap_admin``, ``replace_grant``, ``token``, ``call``, ``events``);
- the personas the tests call (docs/personas.md) and the keys every process of a test deployment shares.

A folder's ``conftest.py`` holds only its fixtures, built from these.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.keys import KeyStore
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from app.config import Settings
from app.main import create_app
from app.state import AppState
from mock_csdlqg.config import MockSettings

POSTGRES_URL = os.environ.get("DANCU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DANCU_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("DANCU_TEST_REQUIRE_SERVICES", "") == "1"

BASE_URL = "http://testserver"
TOKEN_URL = BASE_URL + "/oauth2/token"
AUDIENCE = "dancu-gateway"
ISSUER = "http://gateway.test"
"""One issuer for every process of a test deployment (docs/contract.md, Access tokens: replicas share one)."""
ENCRYPTION_KEY = Fernet.generate_key().decode()
SUBJECT_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="  # 32 bytes, base64
MOCK_KEY = "citizens-test-mock-key-0123"
PURPOSE = "1.001234.000.00.00.H12"
VENV_BIN = Path(sys.executable).parent
POLL_FOR = 10.0
"""How long a test waits for a change made in one process to reach another (the contract's bound is 1 s,
docs/contract.md, Access tokens; the project's rule: poll, and assert the outcome rather than the delay)."""
START_FOR = 120.0
"""How long a server the tests start (a `dancu serve`, a uvicorn thread) may take to answer: generous, since
CI may run on a loaded machine (a fresh interpreter importing the gateway took tens of seconds at load 15)."""

# Personas (docs/personas.md)
HEAD = "052068000108"  # Nguyễn Văn Thành, 1968-04-15, male, Gia Lai, household of eight
DECEASED = "052041000101"
YEAR_ONLY = "064138000102"  # Nguyễn Thị Lựu, 1938
NAME_D = "052085000103"  # Đặng Đình Đức, 1985-07-20
TONE_OLD = "052190000104"  # Võ Thị Thanh Hòa
HCM = "052088000115"  # born 052, lives in 79
JRAI = "064196000106"  # Rơ Châm H'Linh (ethnicity, religion, blood type on record)
REISSUED_OLD = "052081000125"  # cancelled ID of 052080000124
UNKNOWN = "052099000999"  # well formed, never on record


# --- services ------------------------------------------------------------------------------------------------


class Backoff:
    """A backend's back-off waits (its ``sleep=``), recorded instead of spent: one delay per retry. Tests compare
    the retries and their waits, never how long a call took."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def unavailable(what: str, err: BaseException) -> None:
    """Skip the test, or fail it under CI (``DANCU_TEST_REQUIRE_SERVICES=1``), when a service is down."""
    message = f"{what} is not reachable ({type(err).__name__})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and DANCU_TEST_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def plain_postgres(url: str) -> str:
    """asyncpg wants ``postgresql://``; accept a SQLAlchemy-style driver suffix in the setting."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


async def postgres_admin(url: str, *statements: str) -> None:
    """Run ``statements`` on the PostgreSQL server at ``url`` (create and drop databases)."""
    import asyncpg

    conn = await asyncpg.connect(plain_postgres(url), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def free_port() -> int:
    """A TCP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Any, name: str) -> Iterator[str]:
    """``app`` under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            ws="none",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_FOR
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"{name} did not start", pytrace=False)
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own, migrated to head, dropped afterwards (the audit tables refuse TRUNCATE)."""
    from app.cli import upgrade_database

    name = "dancu_t_" + secrets.token_hex(6)
    asyncio.run(postgres_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    url = with_database(postgres_url, name)
    try:
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def seeded_mock(tmp_path_factory: pytest.TempPathFactory, name: str, count: int = 0) -> str:
    """A mock national database in a new temporary folder: the personas plus ``count`` generated residents
    (seed 5, as of 2026-01-01: the same residents in every suite that asks for the same count)."""
    from mock_csdlqg.generator.pipeline import seed_database

    url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'mock.db'}"
    asyncio.run(seed_database(url, count=count, seed=5, as_of=date(2026, 1, 1), workers=1))
    return url


# --- the mock national database as a service ------------------------------------------------------------------

MOCK_API_KEY = "mock-test-key-0123456789"
MOCK_SEED = 7
MOCK_SEED_COUNT = 1500
MOCK_AS_OF = date(2026, 1, 1)


def mock_settings(database_url: str, **overrides: Any) -> MockSettings:
    """The mock service's settings for a test: its database, ``MOCK_API_KEY``, faults on."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_key": SecretStr(MOCK_API_KEY),
        "faults": True,
    }
    return MockSettings(**{**values, **overrides})


# --- a real `dancu serve` ------------------------------------------------------------------------------------


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


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = START_FOR) -> None:
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


# --- the gateway in process ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A registered client; ``token`` is the access token got at registration (empty when none was)."""

    client_id: str
    client_secret: str
    token: str = ""


Registered = Client


PORTAL_GRANT: Mapping[str, Any] = {
    "scopes": ["citizen.verify", "citizen.read", "household.read"],
    "fields": ["*"],
    "provinces": ["52"],
    "purposes": [PURPOSE],
    "verify_details": True,
}
"""What ``Gateway.register`` grants unless told otherwise: a provincial portal (Gia Lai, 52)."""


@dataclass
class Gateway:
    """The gateway in process, an ``httpx.AsyncClient`` on it, and an operator's hands on its service layer.

    ``register`` makes a client with ``grant`` (the keyword arguments over ``PORTAL_GRANT``) and, when
    ``token`` is true, gets its first access token.
    """

    app: FastAPI
    http: httpx.AsyncClient
    backend: str = "embedded"
    grant: Mapping[str, Any] = field(default_factory=lambda: dict(PORTAL_GRANT))
    """The grant ``register`` gives unless told otherwise."""
    token_on_register: bool = True

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.dancu
        return state

    @property
    def keys(self) -> KeyStore:
        return self.state[KEYS]

    def service(self, session: Any, actor: str = "test") -> AuthService:
        return AuthService(session, self.keys.secrets, AdminLog(session, actor=actor))

    async def register(
        self,
        *,
        name: str = "Cổng DVC tỉnh Gia Lai",
        jwks: dict[str, Any] | None = None,
        token: bool | None = None,
        **grant: Any,
    ) -> Client:
        spec = {**self.grant, **grant}
        async with self.state.sessionmaker() as session:
            service = self.service(session)
            known = {p.code for p in await service.list_purposes()}
            for code in spec.get("purposes", ()):
                if code not in known:
                    await service.add_purpose(
                        PurposeIn(
                            code=code, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 21"
                        )
                    )
            created = await service.create_client(ClientCreate(name=name))
            client_id = created.client.client_id
            await service.replace_grant(client_id, GrantIn(**spec))
            if jwks is not None:
                await service.set_jwks(client_id, jwks)
            await session.commit()
        client = Client(client_id, created.client_secret)
        if token if token is not None else self.token_on_register:
            client = Client(client_id, created.client_secret, await self.token(client))
        return client

    async def operator_client(self, name: str, **grant: Any) -> Client:
        """A client with exactly ``grant``, made with the CLI's powers (actor ``cli``, no approval step)."""
        async with self.state.sessionmaker() as session:
            service = self.service(session, CLI_ACTOR)
            created = await service.create_client(ClientCreate(name=name))
            await service.replace_grant(created.client.client_id, GrantIn(**grant))
            await session.commit()
        return Client(created.client.client_id, created.client_secret)

    async def bootstrap_admin(self, name: str = "Quản trị viên") -> Client:
        """An admin client as the CLI makes one (actor ``cli``); REST cannot make the first one."""
        async with self.state.sessionmaker() as session:
            created = await self.service(session, CLI_ACTOR).bootstrap_admin(name)
            await session.commit()
        return Client(created.client.client_id, created.client_secret)

    async def replace_grant(self, client_id: str, **changes: Any) -> None:
        """Replace the client's grant, keeping what ``changes`` does not name (as an administrator would)."""
        async with self.state.sessionmaker() as session:
            service = self.service(session)
            current = (await service.get_grant(client_id)).model_dump()
            spec = {k: v for k, v in current.items() if k in GrantIn.model_fields}
            await service.replace_grant(client_id, GrantIn(**{**spec, **changes}))
            await session.commit()

    async def set_status(self, client_id: str, status: str) -> None:
        async with self.state.sessionmaker() as session:
            await self.service(session).set_status(client_id, status)
            await session.commit()

    async def token_response(self, client: Client, scope: str | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return await self.http.post("/oauth2/token", data=data, auth=(client.client_id, client.client_secret))

    async def token(self, client: Client, scope: str | None = None) -> str:
        response = await self.token_response(client, scope)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def call(
        self,
        client: Client,
        path: str,
        body: Any,
        *,
        purpose: str | None = PURPOSE,
        dossier: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A citizen call with ``client``'s token, purpose and dossier."""
        sent = {"Authorization": f"Bearer {client.token}", **(headers or {})}
        if purpose is not None:
            sent["X-Purpose"] = purpose
        if dossier is not None:
            sent["X-Dossier-Id"] = dossier
        return await self.http.post(path, json=body, headers=sent)

    async def events(self, prefix: str | None = None) -> list[AuditEventRow]:
        """Audit events, oldest first: those whose action starts with ``prefix``; without one, every event
        but the administrative ones (the set-up's)."""
        async with self.state.sessionmaker() as session:
            condition = (
                ~AuditEventRow.action.startswith("admin.")
                if prefix is None
                else AuditEventRow.action.startswith(prefix)
            )
            rows = await session.scalars(select(AuditEventRow).where(condition).order_by(AuditEventRow.seq))
            return list(rows.all())


def gateway_settings(
    database_url: str,
    mock_db: str | None = None,
    backend: str = "embedded",
    live: str | None = None,
    **extra: Any,
) -> Settings:
    """The gateway's settings for a test: its database, the mock (embedded, or the service at ``live`` for
    the ``http`` backend) and the shared test keys; ``extra`` as ``Settings`` takes them."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "backend": backend,
        "keys": {"encryption_key": ENCRYPTION_KEY},
        "audit": {"subject_keys": SUBJECT_KEYS},
        **extra,
    }
    if mock_db is not None:
        values["MOCK_CSDLQG_DATABASE_URL"] = mock_db
    if backend == "http":
        values["backend_url"] = live
        values["backend_api_key"] = MOCK_KEY
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running(
    settings: Settings | FastAPI, backend: str = "embedded", **gateway: Any
) -> AsyncIterator[Gateway]:
    """The gateway of ``settings`` (or an app already made from them) through its lifespan, as a Gateway."""
    app = settings if isinstance(settings, FastAPI) else create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        yield Gateway(app, http, backend, **gateway)
