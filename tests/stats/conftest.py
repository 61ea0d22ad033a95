"""The statistics endpoint end to end, on the embedded mock and on the mock service over HTTP.

The mock holds the personas plus 3,000 generated residents (seed 5, as of 2026-01-01); published counts are
checked against ``tests.stats_reference``, an independent count parsed from the mock's SQLite file.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.cli import upgrade_database
from mock_csdlqg.app import create_app as create_mock_app
from mock_csdlqg.config import MockSettings
from tests.harness import MOCK_KEY, Client, Gateway, gateway_settings, running, seeded_mock, serve_in_thread
from tests.stats_reference import Person, read_people

STATS_PURPOSE = "TK-DS.000001"
URL = "/v1/statistics/population"
THRESHOLD = 10
MAX_NOISE = 2


@pytest.fixture(scope="session")
def stats_mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "stats-mock", 3000)


@pytest.fixture(scope="session")
def people(stats_mock_db: str) -> list[Person]:
    return read_people(stats_mock_db.removeprefix("sqlite:///"))


@pytest.fixture(scope="session")
def stats_live_mock(stats_mock_db: str) -> Iterator[str]:
    settings = MockSettings.model_construct(
        database_url=stats_mock_db, api_key=SecretStr(MOCK_KEY), faults=True, max_batch=1000
    )
    with serve_in_thread(create_mock_app(settings), "stats-live-mock") as url:
        yield url


@pytest.fixture(scope="session")
def stats_migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats-gw") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["embedded", "http"])
async def gateway(
    request: pytest.FixtureRequest, stats_migrated: Path, tmp_path: Path, stats_mock_db: str
) -> AsyncIterator[Gateway]:
    """The gateway (SQLite), once on the embedded mock and once on the mock service over HTTP."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(stats_migrated, path)
    live = request.getfixturevalue("stats_live_mock") if request.param == "http" else None
    settings = gateway_settings(f"sqlite:///{path}", stats_mock_db, request.param, live)
    async with running(settings, request.param) as gw:
        yield gw


async def analyst(gw: Gateway, **grant: Any) -> Client:
    """A client of the planning office: ``stats.read`` for province 52 with a statistical purpose."""
    values: dict[str, Any] = {"scopes": ("stats.read",), "provinces": ("52",), "purposes": (STATS_PURPOSE,)}
    return await gw.register(**{**values, **grant})


async def ask(
    gw: Gateway, client: Client, body: dict[str, Any], *, purpose: str | None = STATS_PURPOSE
) -> httpx.Response:
    return await gw.call(client, URL, body, purpose=purpose)
