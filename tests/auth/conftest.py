"""Fixtures for the auth tests: a migrated database (SQLite, and PostgreSQL where the database matters), and
the gateway in process (``tests.harness``) with routes that echo what each scope alias gives."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from app.auth.context import AuthContext
from app.auth.dependencies import AdminClient, ReadClient, SubjectReportReader, VerifyClient
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from tests.harness import Gateway, fresh_postgres, running

with warnings.catch_warnings():
    # Authlib warns once, on import, that it found httpx rather than its httpx2 fork (and installs an
    # "always" filter for its warnings first, hence the explicit category).
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    import authlib.integrations.httpx_client  # type: ignore[import-untyped]  # noqa: F401

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


READER_GRANT: Mapping[str, Any] = {
    "scopes": ["citizen.read"],
    "fields": ["*"],
    "provinces": ["*"],
    "purposes": [],
}
"""What ``Gateway.register`` grants in the auth tests unless told otherwise; they ask for tokens themselves."""


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    async with running(protected_app(settings), grant=READER_GRANT, token_on_register=False) as gw:
        yield gw


@pytest.fixture
async def sqlite_gateway(sqlite_url: str) -> AsyncIterator[Gateway]:
    """The gateway on SQLite only, for tests where the database does not matter."""
    app = protected_app(Settings(_env_file=None, database_url=sqlite_url))
    async with running(app, grant=READER_GRANT, token_on_register=False) as gw:
        yield gw
