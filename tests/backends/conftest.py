"""Fixtures for the backend adapters: wire records without a database, seeded mock databases, a live mock.

The PostgreSQL mock tables are seeded with the same parameters as ``tests/mock_csdlqg`` (they share the
session's database, and seeding replaces the ``csdlqg_*`` tables), so whichever suite seeds last leaves the
same data behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest

from mock_csdlqg.app import create_app
from mock_csdlqg.generator.pipeline import seed_database
from mock_csdlqg.personas import persona_rows
from tests.harness import MOCK_AS_OF as AS_OF
from tests.harness import MOCK_SEED as SEED
from tests.harness import MOCK_SEED_COUNT as SEED_COUNT
from tests.harness import mock_settings, serve_in_thread

SQLITE_COUNT = 400
SQLITE_SEED = 5


def seed(url: str, *, count: int, seed: int, as_of: date = AS_OF) -> str:
    asyncio.run(seed_database(url, count=count, seed=seed, provinces=("52",), as_of=as_of, workers=1))
    return url


@pytest.fixture(scope="session")
def persona_wire() -> dict[str, bytes]:
    """Every persona's record as the upstream sends it (wire JSON), by personal ID."""
    residents, _ = persona_rows(AS_OF)
    return {pid: blob for pid, _, _, blob in residents}


@pytest.fixture(scope="session")
def persona_households() -> dict[str, bytes]:
    _, households = persona_rows(AS_OF)
    return dict(households)


@pytest.fixture(scope="session")
def mock_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("backends") / "mock.db"
    return seed(f"sqlite:///{path}", count=SQLITE_COUNT, seed=SQLITE_SEED)


@pytest.fixture(scope="session")
def mock_postgres_url(postgres_url: str) -> str:
    return seed(postgres_url, count=SEED_COUNT, seed=SEED)


@pytest.fixture(params=["sqlite", "postgresql"])
def mock_database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "mock_sqlite_url" if request.param == "sqlite" else "mock_postgres_url"
    )
    return url


@pytest.fixture
def live_mock(mock_sqlite_url: str) -> Iterator[str]:
    """The real mock service (faults enabled) under uvicorn on a free loopback port, in a thread."""
    with serve_in_thread(create_app(mock_settings(mock_sqlite_url)), "live-mock-backends") as url:
        yield url


def wire(blob: bytes) -> dict[str, object]:
    doc: dict[str, object] = orjson.loads(blob)
    return doc
