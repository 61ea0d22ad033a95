"""The migrations go up, come down and go up again, and they build exactly what the models declare.

These tests are synchronous on purpose: `dancu db upgrade` runs its own event loop.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

import app.models  # noqa: F401 - registers every table on Base.metadata
from app.cli import migration_config, upgrade_database
from app.db import Base, async_database_url

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
    assert at_head["purposes"] == {"code": False, "title": False, "legal_basis": False, "created_at": False}
    assert at_head["purposes_pk"]["name"] == "pk_purposes"
    assert at_head["purposes_pk"]["constrained_columns"] == ["code"]
    assert at_head["drift"] == []

    command.downgrade(migration_config(url), "base")
    at_base = snapshot(url)
    assert at_base["tables"] == set()
    assert at_base["revision"] is None

    upgrade_database(url)
    assert snapshot(url) == at_head


def test_sqlite_round_trip(tmp_path: Path) -> None:
    # The directory does not exist yet: `dancu db upgrade` must create it, as it does for ./var.
    assert_round_trip(f"sqlite:///{tmp_path}/new/dancu.db")


@pytest.mark.postgres
def test_postgresql_round_trip(postgres_url: str) -> None:
    try:
        assert_round_trip(postgres_url)
    finally:
        command.downgrade(migration_config(postgres_url), "base")


def test_one_head_and_dated_file_names() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migration_config())

    assert len(scripts.get_heads()) == 1
    for revision in scripts.walk_revisions():
        assert revision.path is not None
        name = Path(revision.path).name
        assert re.fullmatch(r"\d{8}-\d{4}-[a-z0-9_]+\.py", name), name
