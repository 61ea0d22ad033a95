"""``X-End-User`` on statistics queries (docs/contract.md, 5. Purpose of use, "End user", and 14. Population
statistics): recorded in the query's event with ``client_ip``; malformed is 422 with no event; a grant with
``require_end_user`` refuses a query without one (400 ``end_user_required``, audited as denied). On SQLite and
on PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.citizens.test_endpoints import problem
from tests.harness import Gateway, gateway_settings, running
from tests.stats.conftest import STATS_PURPOSE, URL, analyst
from tests.stats.test_endpoint import stats_events

PEER = "127.0.0.1"
QUERY = {"province": "52", "group_by": ["sex"]}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, stats_migrated: Path, tmp_path: Path) -> str:
    """The gateway's tables on SQLite (a copy of a migrated file), then on PostgreSQL (a fresh database)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("migrated_postgres")
        return url
    path = tmp_path / "dancu.db"
    shutil.copyfile(stats_migrated, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def gw(database_url: str, stats_mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway on the embedded backend."""
    async with running(gateway_settings(database_url, stats_mock_db)) as gateway:
        yield gateway


async def query(gw: Gateway, token: str, end_user: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Purpose": STATS_PURPOSE}
    if end_user is not None:
        headers["X-End-User"] = end_user
    return await gw.http.post(URL, json=QUERY, headers=headers)


async def test_the_end_user_and_address_are_in_the_event(gw: Gateway) -> None:
    client = await analyst(gw)

    with_officer = await query(gw, client.token, "phong.ke-hoach:lan")
    without = await query(gw, client.token, None)

    assert with_officer.status_code == 200, with_officer.text
    assert without.status_code == 200, without.text
    first, second = await stats_events(gw)
    assert (first.end_user, first.client_ip) == ("phong.ke-hoach:lan", PEER)
    assert (second.end_user, second.client_ip) == (None, PEER)


async def test_a_grant_requiring_the_end_user_refuses_a_query_without_one(gw: Gateway) -> None:
    client = await analyst(gw, require_end_user=True)

    refused = await query(gw, client.token, None)
    answered = await query(gw, client.token, "lan")

    problem(refused, 400, "end_user_required")
    assert answered.status_code == 200, answered.text
    denied, allowed = await stats_events(gw)
    assert (denied.outcome, denied.status_code, denied.reason) == ("denied", 400, "end_user_required")
    assert denied.detail is not None
    assert denied.detail["group_by"] == ["sex"], "the query refused is recorded"
    assert denied.client_ip == PEER
    assert (allowed.outcome, allowed.end_user) == ("allowed", "lan")


@pytest.mark.parametrize("end_user", ["", "Lan Nguyen", "u" * 129], ids=repr)
async def test_a_malformed_end_user_is_422_and_writes_no_event(gw: Gateway, end_user: str) -> None:
    client = await analyst(gw, require_end_user=True)

    found = problem(await query(gw, client.token, end_user), 422, "validation_failed")

    assert [e["loc"] for e in found["errors"]] == [["header", "X-End-User"]]
    assert await stats_events(gw) == []


async def test_without_the_scope_a_valid_end_user_is_still_recorded(gw: Gateway) -> None:
    portal = await gw.register(purposes=(STATS_PURPOSE,))  # citizen scopes only

    problem(await query(gw, portal.token, "lan"), 403, "insufficient_scope")
    problem(await query(gw, portal.token, "l a n"), 403, "insufficient_scope")

    first, second = await stats_events(gw)
    assert (first.reason, first.end_user, first.client_ip) == ("insufficient_scope", "lan", PEER)
    assert (second.reason, second.end_user) == ("insufficient_scope", None)
