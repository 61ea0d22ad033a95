"""Fixtures for the auth tests: a migrated database (SQLite, and PostgreSQL where the database matters), the
gateway in process, and helpers that register clients through the service layer, as an operator would."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.audit.writer import AdminLog
from app.auth.context import AuthContext
from app.auth.dependencies import KEYS, AdminClient, ReadClient, SubjectReportReader, VerifyClient
from app.auth.keys import KeyStore
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from app.state import AppState
from tests.conftest import fresh_postgres

with warnings.catch_warnings():
    # Authlib warns once, on import, that it found httpx rather than its httpx2 fork (and installs an
    # "always" filter for its warnings first, hence the explicit category).
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    import authlib.integrations.httpx_client  # type: ignore[import-untyped]  # noqa: F401

AUDIENCE = "dancu-gateway"
BASE_URL = "http://testserver"
TOKEN_URL = BASE_URL + "/oauth2/token"
GATEWAY_TABLES = (
    "audit_events",
    "audit_chain_head",
    "audit_checkpoints",
    "grants",
    "clients",
    "purposes",
    "signing_keys",
)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> Iterator[str]:
    """A database of its own for the auth tests, migrated once (other modules migrate theirs up and down)."""
    with fresh_postgres(postgres_url) as url:
        yield url


@pytest.fixture
def sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "dancu.db"
        shutil.copyfile(migrated_sqlite, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("migrated_postgres")
    return url


@pytest.fixture
async def database_url(migrated_url: str) -> str:
    """A migrated, empty database: a SQLite copy, or the auth PostgreSQL database emptied for this test."""
    if migrated_url.startswith("postgresql"):
        connection = await asyncpg.connect(migrated_url, timeout=5)
        try:
            # The audit tables refuse TRUNCATE through a trigger; the test superuser switches triggers off.
            await connection.execute("SET session_replication_role = replica")
            await connection.execute(f"TRUNCATE {', '.join(GATEWAY_TABLES)} CASCADE")
        finally:
            await connection.close()
    return migrated_url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url)


def protected_app(settings: Settings) -> FastAPI:
    """The gateway plus routes that echo the AuthContext each scope alias gives (the citizen, audit and
    admin routes consume the same aliases)."""
    app = create_app(settings)

    def context(auth: AuthContext) -> dict[str, Any]:
        grant = auth.grant
        return {
            "client_id": auth.client_id,
            "client_name": auth.client_name,
            "token_scopes": sorted(auth.token_scopes),
            "token_id": auth.token_id,
            "scopes": sorted(grant.scopes),
            "fields": sorted(grant.fields),
            "provinces": None if grant.provinces is None else sorted(grant.provinces),
            "purposes": sorted(grant.purposes),
            "verify_details": grant.verify_details,
        }

    @app.get("/_t/read")
    async def read(auth: ReadClient) -> dict[str, Any]:
        return context(auth)

    @app.get("/_t/verify")
    async def verify(auth: VerifyClient) -> dict[str, Any]:
        return context(auth)

    @app.get("/_t/subject-report")
    async def subject_report(auth: SubjectReportReader) -> dict[str, Any]:
        return context(auth)

    @app.get("/_t/admin")
    async def admin(auth: AdminClient) -> dict[str, Any]:
        return context(auth)

    return app


@dataclass(frozen=True)
class Registered:
    client_id: str
    client_secret: str


@dataclass
class Gateway:
    """The running gateway and an operator's hands on its service layer."""

    app: FastAPI
    http: httpx.AsyncClient
    purposes: set[str] = field(default_factory=set)

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.dancu
        return state

    @property
    def keys(self) -> KeyStore:
        return self.state[KEYS]

    def service(self, session: Any) -> AuthService:
        return AuthService(session, self.keys.secrets, AdminLog(session, actor="test"))

    async def register(
        self,
        *,
        scopes: Sequence[str] = ("citizen.read",),
        fields: Sequence[str] = ("*",),
        provinces: Sequence[str] = ("*",),
        purposes: Sequence[str] = (),
        jwks: dict[str, Any] | None = None,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        name: str = "Cổng dịch vụ công tỉnh Gia Lai",
    ) -> Registered:
        async with self.state.sessionmaker() as session:
            service = self.service(session)
            for code in purposes:
                if code not in self.purposes:
                    await service.add_purpose(
                        PurposeIn(code=code, title="Thủ tục", legal_basis="Luật 26/2023/QH15")
                    )
                    self.purposes.add(code)
            created = await service.create_client(ClientCreate(name=name))
            client_id = created.client.client_id
            grant = GrantIn(
                scopes=list(scopes),
                fields=list(fields),
                provinces=list(provinces),
                purposes=list(purposes),
                valid_from=valid_from,
                valid_until=valid_until,
            )
            await service.replace_grant(client_id, grant)
            if jwks is not None:
                await service.set_jwks(client_id, jwks)
            await session.commit()
        return Registered(client_id, created.client_secret)

    async def set_status(self, client_id: str, status: str) -> None:
        async with self.state.sessionmaker() as session:
            await self.service(session).set_status(client_id, status)
            await session.commit()

    async def replace_grant(self, client_id: str, **grant: Any) -> None:
        async with self.state.sessionmaker() as session:
            await self.service(session).replace_grant(client_id, GrantIn(**grant))
            await session.commit()

    async def token_response(self, client: Registered, scope: str | None = None) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return await self.http.post("/oauth2/token", data=data, auth=(client.client_id, client.client_secret))

    async def token(self, client: Registered, scope: str | None = None) -> str:
        response = await self.token_response(client, scope)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    app = protected_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        yield Gateway(app, http)


@pytest.fixture
async def sqlite_gateway(sqlite_url: str) -> AsyncIterator[Gateway]:
    """The gateway on SQLite only, for tests where the database does not matter."""
    app = protected_app(Settings(_env_file=None, database_url=sqlite_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        yield Gateway(app, http)
