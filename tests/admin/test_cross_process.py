"""Admin changes made in one process of a deployment are obeyed by every other process.

Two processes share one database (a SQLite file, or PostgreSQL) and nothing else: a real `dancu serve`
subprocess on a free port, and the gateway in this test's process. The token endpoint reads the client from
the database on every call, so the other process's token endpoint obeys at once. Scope checks use each
process's access cache, which learns of another process's change from the database's access version
(docs/contract.md, Access tokens: within 1 s); as for every propagation between processes, the tests poll for
up to 10 s and assert the outcome, not the delay. (The process that made the change obeys it on its very next
request: tests/admin/test_router.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admin.conftest import admin_for
from tests.harness import (
    HEAD,
    ISSUER,
    PURPOSE,
    Gateway,
    Registered,
    eventually,
    gateway_environment,
    gateway_settings,
    running,
    served,
    status_is,
)

VERIFY = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_database(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
async def local(shared_database: str, mock_db: str) -> AsyncIterator[Gateway]:
    async with running(gateway_settings(shared_database, mock_db, issuer=ISSUER)) as gateway:
        yield gateway


@pytest.fixture
async def remote(shared_database: str, mock_db: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    with served(gateway_environment(shared_database, mock_db), tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client


async def token_at(http: httpx.AsyncClient, client: Registered) -> httpx.Response:
    return await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )


async def verify_at(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        "/v1/citizens/verify", json=VERIFY, headers={"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
    )


async def test_changes_in_one_process_apply_in_the_other(local: Gateway, remote: httpx.AsyncClient) -> None:
    admin = await admin_for(local, await local.bootstrap_admin())
    await admin.add_purpose()
    portal = await admin.new_client()
    grant: dict[str, Any] = {"scopes": ["citizen.verify"], "purposes": [PURPOSE], "provinces": ["*"]}
    await admin.put_grant(portal.client_id, **grant)
    issued = await token_at(remote, portal)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert (await verify_at(remote, token)).status_code == 200

    def verify_there() -> Awaitable[httpx.Response]:
        return verify_at(remote, token)

    # A grant change made here: the other process refuses the token's scope.
    await admin.put_grant(portal.client_id, **{**grant, "scopes": ["citizen.read"]})
    narrowed = await eventually(verify_there, status_is(401))
    assert narrowed.status_code == 401, narrowed.text
    assert narrowed.json()["code"] == "invalid_token"
    await admin.put_grant(portal.client_id, **grant)
    assert (await eventually(verify_there, status_is(200))).status_code == 200

    # A purpose taken out of the grant.
    await admin.put_grant(portal.client_id, **{**grant, "purposes": []})
    withdrawn = await eventually(verify_there, status_is(403))
    assert withdrawn.json()["code"] == "purpose_not_allowed"
    await admin.put_grant(portal.client_id, **grant)
    assert (await eventually(verify_there, status_is(200))).status_code == 200

    # Suspension: the token endpoint refuses at once (it reads the client on every call), the token soon.
    await admin.patch(f"/clients/{portal.client_id}", {"status": "suspended"})
    refused = await token_at(remote, portal)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    suspended = await eventually(verify_there, status_is(401))
    assert suspended.status_code == 401
    assert suspended.json()["code"] == "invalid_token"
    await admin.patch(f"/clients/{portal.client_id}", {"status": "active"})
    assert (await eventually(verify_there, status_is(200))).status_code == 200

    # Secret rotation: the old secret stops at the other process's token endpoint.
    rotated = (await admin.post(f"/clients/{portal.client_id}/secret")).json()
    old = await token_at(remote, portal)
    new = await token_at(remote, Registered(portal.client_id, rotated["client_secret"]))
    assert old.status_code == 401
    assert old.json()["error"] == "invalid_client"
    assert new.status_code == 200


async def test_changes_in_the_other_process_apply_here(local: Gateway, remote: httpx.AsyncClient) -> None:
    first = await local.bootstrap_admin()
    admin_token = (await token_at(remote, first)).json()["access_token"]
    portal = await local.operator_client("Cổng", scopes=["citizen.verify"], provinces=["*"])
    local_token = await local.token(portal)
    remote_admin = {"Authorization": f"Bearer {admin_token}"}
    assert (await local.http.get("/v1/admin/clients", headers=remote_admin)).status_code == 200

    suspended = await remote.patch(
        f"/v1/admin/clients/{portal.client_id}", json={"status": "suspended"}, headers=remote_admin
    )
    here = await eventually(
        lambda: local.http.post(
            "/v1/citizens/verify",
            json=VERIFY,
            headers={"Authorization": f"Bearer {local_token}", "X-Purpose": PURPOSE},
        ),
        status_is(401),
    )

    assert suspended.status_code == 200
    assert here.status_code == 401
    assert here.json()["code"] == "invalid_token"

    # Withdrawing the admin's own scope in the other process stops its token here too.
    second = await local.operator_client("Quản trị 2", scopes=["admin"])
    second_token = (await token_at(remote, second)).json()["access_token"]
    withdrawn = await remote.put(
        f"/v1/admin/clients/{first.client_id}/grant",
        json={"scopes": []},
        headers={"Authorization": f"Bearer {second_token}"},
    )
    assert withdrawn.status_code == 200
    refused = await eventually(
        lambda: local.http.get("/v1/admin/clients", headers=remote_admin), status_is(401)
    )
    assert refused.status_code == 401
