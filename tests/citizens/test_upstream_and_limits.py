"""Upstream faults as a portal sees them, and limits shared through the real Redis."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.citizens.test_endpoints import problem
from tests.harness import HEAD, MOCK_KEY, UNKNOWN, YEAR_ONLY, Gateway, gateway_settings, running


@pytest.fixture
async def http_gateway(
    migrated_sqlite: Path, tmp_path: Path, mock_db: str, live_mock: str
) -> AsyncIterator[Gateway]:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    async with running(gateway_settings(f"sqlite:///{path}", mock_db, "http", live_mock), "http") as gw:
        yield gw


@pytest.fixture
async def faults(live_mock: str) -> AsyncIterator[httpx.AsyncClient]:
    """The mock's global fault mode; always cleared afterwards (the mock is shared by the session)."""
    async with httpx.AsyncClient(base_url=live_mock, headers={"X-Api-Key": MOCK_KEY}) as mock:
        yield mock
        await mock.delete("/_mock/faults")


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ({"status": 503}, 503, "upstream_unavailable"),
        ({"malformed": True}, 502, "upstream_bad_response"),
        ({"wrong_id": True}, 502, "upstream_identity_mismatch"),
    ],
)
async def test_upstream_faults_become_gateway_problems_and_error_events(
    http_gateway: Gateway, faults: httpx.AsyncClient, mode: dict[str, object], status: int, code: str
) -> None:
    client = await http_gateway.register()
    assert (await faults.put("/_mock/faults", json=mode)).status_code == 200
    response = await http_gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    body = problem(response, status, code)
    assert "Nguyễn" not in response.text
    assert body["status"] == status
    event = (await http_gateway.events())[-1]
    assert (event.outcome, event.status_code, event.reason) == ("error", status, code)


@pytest.fixture
async def replicas(
    migrated_sqlite: Path, tmp_path: Path, mock_db: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Two gateway instances sharing one database and one Redis (this test's own key prefix), no memory."""
    path = tmp_path / "shared.db"
    shutil.copyfile(migrated_sqlite, path)
    settings = gateway_settings(
        f"sqlite:///{path}",
        mock_db,
        "embedded",
        None,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix + tmp_path.name + ":",
    )
    async with running(settings, "embedded") as first, running(settings, "embedded") as second:
        yield first, second


async def test_distinct_quota_is_shared_through_redis(replicas: tuple[Gateway, Gateway]) -> None:
    """Two gateway processes (replicas) with one database and one Redis count one quota."""
    first, second = replicas
    client = await first.register(distinct_subjects_per_day=2)
    body = {"gender": "male"}
    assert (await first.call(client, "/v1/citizens/verify", {"personal_id": HEAD, **body})).status_code == 200
    assert (
        await second.call(client, "/v1/citizens/verify", {"personal_id": UNKNOWN, **body})
    ).status_code == 200
    third = await second.call(client, "/v1/citizens/verify", {"personal_id": YEAR_ONLY, "gender": "female"})
    problem(third, 429, "subject_quota_exceeded")
    again = await first.call(client, "/v1/citizens/verify", {"personal_id": UNKNOWN, **body})
    assert again.status_code == 200


async def test_request_rate_is_shared_through_redis(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    client = await first.register(rate_limit_per_minute=2)
    body = {"personal_id": HEAD, "gender": "male"}
    assert (await first.call(client, "/v1/citizens/verify", body)).status_code == 200
    assert (await second.call(client, "/v1/citizens/verify", body)).status_code == 200
    problem(await first.call(client, "/v1/citizens/verify", body), 429, "rate_limited")


async def test_unreachable_redis_fails_closed(migrated_sqlite: Path, tmp_path: Path, mock_db: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        path = tmp_path / "down.db"
        shutil.copyfile(migrated_sqlite, path)
        settings = gateway_settings(
            f"sqlite:///{path}", mock_db, "embedded", None, redis_url=f"redis://127.0.0.1:{port}/0"
        )
        async with running(settings, "embedded") as gw:
            client = await gw.register()
            response = await gw.call(client, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
            problem(response, 503, "limits_unavailable")
            ready = await gw.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["limits"] == "failed"
            assert (await gw.http.get("/healthz")).status_code == 200
            event = (await gw.events())[-1]
            assert (event.outcome, event.reason) == ("error", "limits_unavailable")
