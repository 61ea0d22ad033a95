"""The mock service over a seeded database: one SQLite file and one PostgreSQL database per session.

Seeding is synchronous (``asyncio.run`` in a session fixture, one generator process: no fork under a
multi-threaded pytest); the clients are per test, so the global fault mode never leaks between tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mock_csdlqg.app import create_app
from mock_csdlqg.config import MockSettings
from mock_csdlqg.generator.pipeline import seed_database
from mock_csdlqg.wire import SampleList
from tests.harness import (
    MOCK_API_KEY,
    MOCK_AS_OF,
    MOCK_SEED,
    MOCK_SEED_COUNT,
    UNKNOWN,
    mock_settings,
    serve_in_thread,
)

API_KEY = MOCK_API_KEY
SEED_COUNT = MOCK_SEED_COUNT
SEED = MOCK_SEED
AS_OF = MOCK_AS_OF
UNKNOWN_ID = UNKNOWN
"""Well-formed but never on record: serials below 001000 belong to personas, which use 000101-000133."""

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "request_id"}
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
HEAD_OF_LARGE_HOUSEHOLD = "052068000108"  # persona large_household_head: a household of eight


async def without_key(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    request = client.build_request(method, url, **kwargs)
    del request.headers["X-Api-Key"]
    return await client.send(request)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def lookup(client: httpx.AsyncClient, personal_id: str, **kwargs: Any) -> httpx.Response:
    return await client.post("/api/v1/residents/lookup", json={"soDinhDanh": personal_id}, **kwargs)


async def some_ids(client: httpx.AsyncClient, n: int, **params: Any) -> list[str]:
    query = {key: value for key, value in {"n": n, "seed": 11, **params}.items() if value is not None}
    response = await client.get("/_mock/sample", params=query)
    assert response.status_code == 200
    return SampleList.model_validate_json(response.content).items


def _seed(url: str) -> str:
    asyncio.run(seed_database(url, count=SEED_COUNT, seed=SEED, provinces=("52",), as_of=AS_OF, workers=1))
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("mock_csdlqg") / "mock.db"
    return _seed(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def seeded_postgres_url(postgres_url: str) -> str:
    return _seed(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "seeded_postgres_url")
    return url


@asynccontextmanager
async def open_client(settings: MockSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app built from ``settings``, lifespan running, sending the API key."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://mock",
            headers={"X-Api-Key": API_KEY},
            timeout=10,
        ) as client,
    ):
        yield client


@pytest_asyncio.fixture
async def mock_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The mock on each backend, faults enabled, API key set and sent by default."""
    async with open_client(mock_settings(database_url)) as client:
        yield client


@pytest.fixture
def live_mock(sqlite_url: str) -> Iterator[str]:
    """A real uvicorn server (faults enabled) on a free loopback port, in a thread; yields its base URL."""
    with serve_in_thread(create_app(mock_settings(sqlite_url)), "live-mock") as url:
        yield url
