"""Fixtures for the gateway's tests: isolated settings, a migrated SQLite database, an in-process client."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from mock_csdlqg.generator.pipeline import seed_database


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database migrated to head by `dancu db upgrade`'s own function, copied per test."""
    path = tmp_path_factory.mktemp("template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(migrated_template: Path, tmp_path: Path) -> str:
    """A fresh migrated database for this test alone."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def mock_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded mock national database (personas only) so the embedded backend is ready."""
    url = f"sqlite:///{tmp_path_factory.mktemp('mock') / 'mock_csdlqg.db'}"
    asyncio.run(seed_database(url, count=0, workers=1))
    return url


@pytest.fixture
def settings(database_url: str, mock_database: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url, MOCK_CSDLQG_DATABASE_URL=mock_database)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``app`` in process, with its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        yield client
