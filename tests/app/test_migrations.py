"""The migrations go up, come down and go up again, and they build exactly what the models declare; the
triggers they install move the access version on every change to clients, grants and purposes.

These tests are synchronous on purpose: `dancu db upgrade` runs its own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

import app.models  # noqa: F401 - registers every table on Base.metadata
from app.cli import migration_config, upgrade_database
from app.db import Base, async_database_url
from tests.harness import postgres_admin, with_database

GATEWAY_TABLES = set(Base.metadata.tables)


def _snapshot(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names()) - {"alembic_version"}
    return {
        "tables": tables,
        "revision": MigrationContext.configure(connection).get_current_revision(),
        "purposes": {c["name"]: c["nullable"] for c in inspector.get_columns("purposes")}
        if "purposes" in tables
        else None,
        "purposes_pk": inspector.get_pk_constraint("purposes") if "purposes" in tables else None,
        "drift": compare_metadata(MigrationContext.configure(connection), Base.metadata)
        if "purposes" in tables
        else None,
    }


def snapshot(url: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        engine = create_async_engine(async_database_url(url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_snapshot)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def assert_round_trip(url: str) -> None:
    upgrade_database(url)
    at_head = snapshot(url)
    assert at_head["tables"] == GATEWAY_TABLES
    assert at_head["revision"] is not None
    assert at_head["purposes"] == {
        "code": False,
        "title": False,
        "legal_basis": False,
        "created_at": False,
        "code_folded": True,
        "retired_at": True,
    }
    assert at_head["purposes_pk"]["name"] == "pk_purposes"
    assert at_head["purposes_pk"]["constrained_columns"] == ["code"]
    assert at_head["drift"] == []

    command.downgrade(migration_config(url), "base")
    at_base = snapshot(url)
    assert at_base["tables"] == set()
    assert at_base["revision"] is None

    upgrade_database(url)
    assert snapshot(url) == at_head


# Plain SQL, as an operator or another program would send it (no ORM, no gateway code involved).
_CHANGES = (
    "INSERT INTO purposes (code, title, legal_basis, created_at) VALUES ('T.1', 't', 'l', CURRENT_TIMESTAMP)",
    "INSERT INTO clients (client_id, name, status, secret_hash, secret_kid, created_at, updated_at) "
    "VALUES ('c_t', 'Cổng', 'active', 'h', 'k', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO grants (client_id, scopes, fields, provinces, purposes, verify_details, rate_limit_per_minute, "
    "distinct_subjects_per_day, updated_at) VALUES ('c_t', '[]', '[]', '[]', '[]', FALSE, 600, 5000, CURRENT_TIMESTAMP)",
    """UPDATE grants SET scopes = '["citizen.verify"]' WHERE client_id = 'c_t'""",
    "UPDATE clients SET status = 'suspended' WHERE client_id = 'c_t'",
    "DELETE FROM purposes WHERE code = 'T.1'",
    "DELETE FROM grants WHERE client_id = 'c_t'",
    "DELETE FROM clients WHERE client_id = 'c_t'",
)
_VERSION = "SELECT version FROM access_version WHERE id = 1"


def versions_around_changes(url: str) -> tuple[list[int], int]:
    """The access version before and after each of ``_CHANGES`` (each its own transaction), then after a
    change that was rolled back."""

    async def run() -> tuple[list[int], int]:
        engine = create_async_engine(async_database_url(url))
        try:
            async with engine.connect() as connection:
                versions = [int((await connection.exec_driver_sql(_VERSION)).scalar_one())]
            changes = list(_CHANGES)
            if engine.dialect.name == "postgresql":
                changes += [*_CHANGES[:3], "TRUNCATE grants"]
            for statement in changes:
                async with engine.begin() as connection:
                    await connection.exec_driver_sql(statement)
                async with engine.connect() as connection:
                    versions.append(int((await connection.exec_driver_sql(_VERSION)).scalar_one()))
            async with engine.connect() as connection:
                await connection.exec_driver_sql(_CHANGES[0].replace("'T.1'", "'T.2'"))
                await connection.rollback()
                after_rollback = int((await connection.exec_driver_sql(_VERSION)).scalar_one())
            return versions, after_rollback
        finally:
            await engine.dispose()

    return asyncio.run(run())


def assert_every_change_moves_the_access_version(url: str) -> None:
    versions, after_rollback = versions_around_changes(url)
    assert all(later > earlier for earlier, later in itertools.pairwise(versions)), versions
    assert after_rollback == versions[-1]


def test_sqlite_round_trip(tmp_path: Path) -> None:
    # The directory does not exist yet: `dancu db upgrade` must create it, as it does for ./var.
    url = f"sqlite:///{tmp_path}/new/dancu.db"
    assert_round_trip(url)
    assert_every_change_moves_the_access_version(url)  # the triggers came back with the second upgrade


@pytest.mark.postgres
def test_postgresql_round_trip(empty_postgres: str) -> None:
    assert_round_trip(empty_postgres)
    assert_every_change_moves_the_access_version(empty_postgres)


@pytest.fixture
def empty_postgres(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of the test's own. The session's database is shared: the mock's suites
    seed their tables into it, and the snapshot of the gateway's tables then held three more (the test passed
    or failed by the order the suites ran in)."""
    name = "dancu_t_" + secrets.token_hex(6)
    asyncio.run(postgres_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(postgres_url, name)
    finally:
        asyncio.run(postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_one_head_and_dated_file_names() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migration_config())

    assert len(scripts.get_heads()) == 1
    for revision in scripts.walk_revisions():
        assert revision.path is not None
        name = Path(revision.path).name
        assert re.fullmatch(r"\d{8}-\d{4}-[a-z0-9_]+\.py", name), name


# --- purpose codes unique without regard to case (docs/contract.md, "Purposes") --------------------------------

_BEFORE_FOLDING = "ac5e55000001"


def _run_sql(url: str, *statements: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_database_url(url))
        try:
            async with engine.begin() as connection:
                results = []
                for statement in statements:
                    result = await connection.exec_driver_sql(statement)
                    results.append(result.all() if result.returns_rows else None)
                return results
        finally:
            await engine.dispose()

    return asyncio.run(run())


_OLD_PURPOSES = (
    "INSERT INTO purposes (code, title, legal_basis, created_at) VALUES ('p1', 't', 'l', '2026-01-01 00:00:00')",
    "INSERT INTO purposes (code, title, legal_basis, created_at) VALUES ('P1', 't', 'l', '2026-02-01 00:00:00')",
    "INSERT INTO purposes (code, title, legal_basis, created_at) VALUES ('Q.2', 't', 'l', '2026-01-01 00:00:00')",
)


def assert_case_variants_survive_the_upgrade(url: str) -> None:
    command.upgrade(migration_config(url), _BEFORE_FOLDING)
    _run_sql(url, *_OLD_PURPOSES)

    upgrade_database(url)

    (rows,) = _run_sql(url, "SELECT code, code_folded FROM purposes ORDER BY code")
    assert sorted(map(tuple, rows)) == [("P1", None), ("Q.2", "q.2"), ("p1", "p1")]
    with pytest.raises(IntegrityError):  # the database refuses a third variant by itself
        _run_sql(
            url,
            "INSERT INTO purposes (code, code_folded, title, legal_basis, created_at) "
            "VALUES ('q.2', 'q.2', 't', 'l', CURRENT_TIMESTAMP)",
        )


def test_sqlite_keeps_case_variants_registered_before_the_rule(tmp_path: Path) -> None:
    assert_case_variants_survive_the_upgrade(f"sqlite:///{tmp_path}/dancu.db")


@pytest.mark.postgres
def test_postgresql_keeps_case_variants_registered_before_the_rule(postgres_url: str) -> None:
    try:
        assert_case_variants_survive_the_upgrade(postgres_url)
    finally:
        command.downgrade(migration_config(postgres_url), "base")
