"""The audit chain's tests: a log on SQLite and on PostgreSQL, an attacker's hands on its tables, and the
gateway run as `dancu serve` subprocesses for the crash and two-process tests.

Each test gets a migrated database of its own (a SQLite copy, or the module's PostgreSQL database emptied with
the append-only triggers switched off by the test superuser), its own checkpoint key and directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.checkpoints import Checkpointer, load_checkpoint_key
from app.audit.integrity import IntegrityReport, check_integrity
from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog, AuditEvent, AuditWriter, load_subject_hasher
from app.auth.keys import KeyStore
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from tests.harness import free_port, fresh_postgres, postgres_admin, seeded_mock

SUBJECT_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="
ENCRYPTION_KEY = Fernet.generate_key().decode()
PURPOSE = "1.001234.000.00.00.H12"
HEAD = "052068000108"  # Nguyễn Văn Thành, 1968-04-15 (docs/personas.md)
AUDIT_TABLES = ("audit_events", "audit_chain_head", "audit_checkpoints")
GATEWAY_TABLES = (*AUDIT_TABLES, "grants", "clients", "purposes", "signing_keys", "admin_changes")
DANCU = Path(sys.executable).parent / "dancu"


@pytest.fixture(scope="session")
def audit_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def audit_mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The mock national database with the personas only (enough for verification under load)."""
    return seeded_mock(tmp_path_factory, "audit-mock", 0)


@pytest.fixture(scope="module")
def audit_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest, audit_template: Path, tmp_path: Path) -> str:
    """A SQLite copy, or the module's PostgreSQL database (sync: its set-up runs its own event loop)."""
    if request.param == "sqlite":
        path = tmp_path / "dancu.db"
        shutil.copyfile(audit_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("audit_postgres")
    return url


@pytest.fixture
async def database_url(migrated_url: str) -> str:
    """A migrated, empty gateway database on SQLite or PostgreSQL."""
    if migrated_url.startswith("postgresql"):
        await postgres_admin(
            migrated_url,
            "SET session_replication_role = replica",  # the audit tables refuse TRUNCATE through a trigger
            f"TRUNCATE {', '.join(GATEWAY_TABLES)} CASCADE",
            # a tamper test drops it, as an attacker would
            "CREATE UNIQUE INDEX IF NOT EXISTS ix_audit_events_prev_hash ON audit_events (prev_hash)",
        )
    return migrated_url


def audit_settings(database_url: str, tmp_path: Path, **audit: Any) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        keys={"encryption_key": ENCRYPTION_KEY},
        audit={
            "subject_keys": SUBJECT_KEYS,
            "checkpoint_key_file": tmp_path / "keys" / "checkpoint.pem",
            "checkpoint_dir": tmp_path / "checkpoints",
            **audit,
        },
    )


@dataclass
class Log:
    """The audit log of one database: the gateway's writer and checkpointer, and an attacker's SQL."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    writer: AuditWriter
    checkpoints: Checkpointer
    written: list[str] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def directory(self) -> Path:
        return self.settings.audit.checkpoint_dir

    async def write(self, count: int, *, action: str = "citizen.read") -> None:
        """``count`` events, one request each (a few in one batch, as a batch verification writes them)."""
        for _ in range(count):
            request_id = f"req-{len(self.written) + 1}"
            self.written.append(request_id)
            await self.writer.write(
                [
                    AuditEvent(
                        action=action,
                        outcome="allowed",
                        status_code=200,
                        actor="c_portal",
                        client_id="c_portal",
                        request_id=request_id,
                        purpose=PURPOSE,
                        dossier_id="HS-2026/0042",
                        subject=HEAD,
                        fields=("full_name", "date_of_birth", "ethnicity"),
                        sensitive_fields=("ethnicity",),
                    )
                ]
            )

    async def verify(self, checkpoint_file: Path | None = None) -> IntegrityReport:
        return await check_integrity(
            self.sessionmaker,
            key=self.checkpoints.key,
            directory=self.directory,
            checkpoint_file=checkpoint_file,
        )

    async def rows(self) -> list[AuditEventRow]:
        async with self.sessionmaker() as session:
            return list((await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq))).all())

    async def close(self) -> None:
        await self.writer.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def owner(self) -> AsyncIterator[AsyncConnection]:
        """A transaction with the owner's rights: the append-only triggers switched off first and on again
        after, as an attacker holding the database would do."""
        guarded = ("audit_events", "audit_checkpoints")
        if self.dialect == "postgresql":
            before = [f"ALTER TABLE {t} DISABLE TRIGGER USER" for t in guarded]
            after = [f"ALTER TABLE {t} ENABLE TRIGGER USER" for t in guarded]
        else:
            before = [f"DROP TRIGGER {t}_no_{verb}" for t in guarded for verb in ("update", "delete")]
            after = [
                f"CREATE TRIGGER {t}_no_{verb} BEFORE {verb.upper()} ON {t} "
                f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END"
                for t in guarded
                for verb in ("update", "delete")
            ]
        async with self.engine.begin() as connection:
            for statement in before:
                await connection.exec_driver_sql(statement)
            yield connection
            for statement in after:
                await connection.exec_driver_sql(statement)

    async def tamper(self, *statements: str) -> None:
        async with self.owner() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)

    async def stored(self) -> list[dict[str, Any]]:
        """Every event as stored, every column, in ``seq`` order."""
        async with self.engine.connect() as connection:
            result = await connection.execute(select(AuditEventRow.__table__).order_by(AuditEventRow.seq))
            return [dict(row._mapping) for row in result]


def open_log(settings: Settings) -> Log:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    checkpoints = Checkpointer(sessionmaker, load_checkpoint_key(settings), settings.audit)
    writer = AuditWriter(sessionmaker, load_subject_hasher(settings), on_append=checkpoints.note_appended)
    return Log(settings, engine, sessionmaker, writer, checkpoints)


@pytest.fixture
async def log(database_url: str, tmp_path: Path) -> AsyncIterator[Log]:
    opened = open_log(audit_settings(database_url, tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


# --- the gateway as `dancu serve` ------------------------------------------------------------------------


async def register_client(settings: Settings, name: str = "Cổng DVC tỉnh Gia Lai") -> tuple[str, str]:
    """A verify client with generous limits, registered through the service layer (as the CLI does)."""
    engine = create_engine(settings)
    try:
        sessionmaker = create_sessionmaker(engine)
        keys = KeyStore.from_settings(settings, sessionmaker)
        async with sessionmaker() as session:
            service = AuthService(session, keys.secrets, AdminLog(session, actor="test"))
            if PURPOSE not in {p.code for p in await service.list_purposes()}:
                await service.add_purpose(
                    PurposeIn(
                        code=PURPOSE, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 21"
                    )
                )
            created = await service.create_client(ClientCreate(name=name))
            await service.replace_grant(
                created.client.client_id,
                GrantIn(
                    scopes=["citizen.verify"],
                    fields=["*"],
                    provinces=["52"],
                    purposes=[PURPOSE],
                    rate_limit_per_minute=1_000_000,
                    distinct_subjects_per_day=1_000_000,
                ),
            )
            await session.commit()
        return created.client.client_id, created.client_secret
    finally:
        await engine.dispose()


def server_env(settings: Settings, mock_db: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DANCU_", "MOCK_CSDLQG_")) or name.startswith("DANCU_TEST_")
    }
    env.update(
        DANCU_DATABASE_URL=settings.database_url,
        MOCK_CSDLQG_DATABASE_URL=mock_db,
        DANCU_KEYS__ENCRYPTION_KEY=ENCRYPTION_KEY,
        DANCU_AUDIT__SUBJECT_KEYS=SUBJECT_KEYS,
        DANCU_AUDIT__CHECKPOINT_KEY_FILE=str(settings.audit.checkpoint_key_file),
        DANCU_AUDIT__CHECKPOINT_DIR=str(settings.audit.checkpoint_dir),
        DANCU_AUDIT__CHECKPOINT_EVERY_EVENTS=str(settings.audit.checkpoint_every_events),
        DANCU_ISSUER="http://gateway.test",  # replicas share one issuer
    )
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final checkpoint, whatever was in flight is cut off."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path) -> AsyncIterator[Server]:
    """`dancu serve` on a free port, until it answers /healthz; stopped (SIGTERM) at the end if still up."""
    port = free_port()
    with (cwd / f"serve-{port}.log").open("wb") as output:
        # Popen returns at once; the wait for the server below polls without blocking the loop.
        process = subprocess.Popen(  # noqa: ASYNC220
            [str(DANCU), "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 120  # a loaded CI machine starts a fresh interpreter slowly
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                try:
                    if (await http.get(server.url + "/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"dancu serve did not start: {(cwd / f'serve-{port}.log').read_text()[-2000:]}"
                    )
                await asyncio.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


async def token_for(http: httpx.AsyncClient, base_url: str, client: tuple[str, str]) -> str:
    response = await http.post(
        base_url + "/oauth2/token", data={"grant_type": "client_credentials"}, auth=client
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def drive(
    http: httpx.AsyncClient, base_url: str, token: str, prefix: str, until: float, answered: list[str]
) -> None:
    """Verify requests back to back until ``until`` or until the server is gone; ``answered`` gets the
    request id of every 2xx answer."""
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
    body = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}
    number = 0
    while time.monotonic() < until:
        number += 1
        request_id = f"{prefix}-{number}"
        try:
            response = await http.post(
                base_url + "/v1/citizens/verify", json=body, headers={**headers, "X-Request-Id": request_id}
            )
        except httpx.TransportError:
            return
        if 200 <= response.status_code < 300:
            assert "match" in response.json()
            answered.append(request_id)
