"""Fixtures for the operators tests: a migrated SQLite database (copied per test) and a service on it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.models import AuditEventRow
from app.cli import upgrade_database
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.operators.service import OperatorService

T = TypeVar("T")
FERNET = Fernet(Fernet.generate_key())


@pytest.fixture(scope="session")
def operators_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("operators-template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(operators_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "dancu.db"
    shutil.copyfile(operators_template, path)
    return f"sqlite:///{path}"


class Runner:
    """``await run(lambda service: ...)``: one transaction, committed (as a console request or a command)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def __call__(
        self, work: Callable[[OperatorService], Awaitable[T]], *, require_totp: bool = False
    ) -> T:
        async with self.sessions() as session:
            result = await work(OperatorService(session, FERNET, require_totp=require_totp))
            await session.commit()
            return result

    async def events(self) -> list[AuditEventRow]:
        async with self.sessions() as session:
            return list(await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


@pytest.fixture
async def run(database_url: str) -> AsyncIterator[Runner]:
    engine = create_engine(Settings(database_url=database_url))
    try:
        yield Runner(create_sessionmaker(engine))
    finally:
        await engine.dispose()
