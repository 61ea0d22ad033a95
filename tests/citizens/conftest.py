"""The gateway end to end for citizen endpoints: on the embedded mock and on the real mock service over HTTP.

One conformance suite runs against both backends (``gateway`` is parametrised); the gateway's own tables
are on SQLite, and on PostgreSQL for the ``gateway_pg`` variant. Clients are registered through the service
layer, as an operator's CLI does.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from app.state import AppState
from mock_csdlqg.app import create_app as create_mock_app
from mock_csdlqg.config import MockSettings
from tests.conftest import fresh_postgres, seeded_mock, serve_in_thread

MOCK_KEY = "citizens-test-mock-key-0123"
PURPOSE = "1.001234.000.00.00.H12"
SUBJECT_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="  # 32 bytes, base64
ENCRYPTION_KEY = Fernet.generate_key().decode()

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


@pytest.fixture(scope="session")
def mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "citizens-mock", 400)


@pytest.fixture(scope="session")
def live_mock(mock_db: str) -> Iterator[str]:
    """The real mock service (faults on) on a free loopback port, for the ``http`` backend."""
    settings = MockSettings.model_construct(
        database_url=mock_db, api_key=SecretStr(MOCK_KEY), faults=True, max_batch=1000
    )
    with serve_in_thread(create_mock_app(settings), "citizens-live-mock") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("citizens-gw") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as url:
        yield url


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    token: str


@dataclass
class Gateway:
    app: Any
    http: httpx.AsyncClient
    backend: str

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.dancu
        return state

    async def register(
        self,
        *,
        scopes: Sequence[str] = ("citizen.verify", "citizen.read", "household.read"),
        fields: Sequence[str] = ("*",),
        provinces: Sequence[str] = ("52",),
        purposes: Sequence[str] = (PURPOSE,),
        verify_details: bool = True,
        rate_limit_per_minute: int = 600,
        distinct_subjects_per_day: int = 5000,
    ) -> Client:
        async with self.state.sessionmaker() as session:
            service = AuthService(session, self.state[KEYS].secrets, AdminLog(session, actor="test"))
            for code in purposes:
                if code not in {p.code for p in await service.list_purposes()}:
                    await service.add_purpose(
                        PurposeIn(
                            code=code, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 21"
                        )
                    )
            created = await service.create_client(ClientCreate(name="Cổng DVC tỉnh Gia Lai"))
            client_id = created.client.client_id
            await service.replace_grant(
                client_id,
                GrantIn(
                    scopes=list(scopes),
                    fields=list(fields),
                    provinces=list(provinces),
                    purposes=list(purposes),
                    verify_details=verify_details,
                    rate_limit_per_minute=rate_limit_per_minute,
                    distinct_subjects_per_day=distinct_subjects_per_day,
                ),
            )
            await session.commit()
        response = await self.http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, created.client_secret),
        )
        assert response.status_code == 200, response.text
        return Client(client_id, created.client_secret, response.json()["access_token"])

    async def replace_grant(self, client_id: str, **changes: Any) -> None:
        """Replace the client's grant, keeping what ``changes`` does not name (as an administrator would)."""
        async with self.state.sessionmaker() as session:
            service = AuthService(session, self.state[KEYS].secrets, AdminLog(session, actor="test"))
            current = (await service.get_grant(client_id)).model_dump()
            spec = {k: v for k, v in current.items() if k in GrantIn.model_fields}
            await service.replace_grant(client_id, GrantIn(**{**spec, **changes}))
            await session.commit()

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
        sent = {"Authorization": f"Bearer {client.token}", **(headers or {})}
        if purpose is not None:
            sent["X-Purpose"] = purpose
        if dossier is not None:
            sent["X-Dossier-Id"] = dossier
        return await self.http.post(path, json=body, headers=sent)

    async def events(self) -> list[AuditEventRow]:
        """Citizen-data events, oldest first (administrative events of the set-up left out)."""
        async with self.state.sessionmaker() as session:
            rows = await session.scalars(
                select(AuditEventRow)
                .where(~AuditEventRow.action.startswith("admin."))
                .order_by(AuditEventRow.seq)
            )
            return list(rows.all())


def gateway_settings(
    database_url: str, mock_db: str, backend: str, live: str | None, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "backend": backend,
        "MOCK_CSDLQG_DATABASE_URL": mock_db,
        "keys": {"encryption_key": ENCRYPTION_KEY},
        "audit": {"subject_keys": SUBJECT_KEYS},
        **extra,
    }
    if backend == "http":
        values["backend_url"] = live
        values["backend_api_key"] = MOCK_KEY
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running(settings: Settings, backend: str) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        yield Gateway(app, http, backend)


@pytest.fixture(params=["embedded", "http"])
async def gateway(
    request: pytest.FixtureRequest, migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> AsyncIterator[Gateway]:
    """The gateway on SQLite, once on the embedded mock and once on the mock service over HTTP."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    live = request.getfixturevalue("live_mock") if request.param == "http" else None
    async with running(
        gateway_settings(f"sqlite:///{path}", mock_db, request.param, live), request.param
    ) as gw:
        yield gw


@pytest.fixture
async def sqlite_gateway(migrated_sqlite: Path, tmp_path: Path, mock_db: str) -> AsyncIterator[Gateway]:
    """The embedded backend on SQLite only, for tests where the backend does not matter."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    async with running(gateway_settings(f"sqlite:///{path}", mock_db, "embedded", None), "embedded") as gw:
        yield gw


@pytest.fixture
async def gateway_pg(migrated_postgres: str, mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway's own tables on PostgreSQL (a fresh database), embedded backend."""
    async with running(gateway_settings(migrated_postgres, mock_db, "embedded", None), "embedded") as gw:
        yield gw
