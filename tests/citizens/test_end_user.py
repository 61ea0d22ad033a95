"""The end user and the caller's address on citizen calls (docs/contract.md, 5. Purpose of use, "End user"):
``X-End-User`` checked (1-128 characters of ``[A-Za-z0-9._@:-]``, else 422, no event), recorded in the event
with ``client_ip``; a grant with ``require_end_user`` answers its absence with 400 ``end_user_required``,
audited as denied and naming the resident with the fields asked about. On SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.audit.dependencies import AUDIT
from tests.citizens.test_endpoints import problem
from tests.harness import HEAD, NAME_D, Gateway, gateway_settings, running

LOOKUP = "/v1/citizens/lookup"
VERIFY = "/v1/citizens/verify"
BATCH = "/v1/citizens/verify/batch"
HOUSEHOLD = "/v1/citizens/household"
THANH = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}
PEER = "127.0.0.1"
"""The address httpx's ASGI transport gives as the TCP peer."""


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Gateway:
    gateway: Gateway = request.getfixturevalue(
        "sqlite_gateway" if request.param == "sqlite" else "gateway_pg"
    )
    return gateway


@pytest.mark.parametrize("end_user", ["lan", "can.bo_01@hue.gov.vn", "HUE:nguyen-thi.lan", "x" * 128])
async def test_the_end_user_and_address_are_in_the_event(any_db: Gateway, end_user: str) -> None:
    gw = any_db
    client = await gw.register()

    response = await gw.call(client, LOOKUP, {"personal_id": HEAD}, headers={"X-End-User": end_user})

    assert response.status_code == 200, response.text
    (event,) = await gw.events("citizen.read")
    assert event.end_user == end_user
    assert event.client_ip == PEER
    assert event.outcome == "allowed"


async def test_without_the_header_the_event_has_no_end_user(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register()

    response = await gw.call(client, VERIFY, THANH)

    assert response.status_code == 200, response.text
    (event,) = await gw.events("citizen.verify")
    assert event.end_user is None
    assert event.client_ip == PEER


@pytest.mark.parametrize(
    "end_user", ["", "Lan Nguyen", "u" * 129, "a/b", "lan;drop", "=cmd", "tab\tbed"], ids=repr
)
@pytest.mark.parametrize("path", [VERIFY, LOOKUP, HOUSEHOLD, BATCH])
async def test_a_malformed_end_user_is_422_and_writes_no_event(
    sqlite_gateway: Gateway, path: str, end_user: str
) -> None:
    gw = sqlite_gateway
    client = await gw.register(require_end_user=True)
    body = {"items": [THANH]} if path == BATCH else THANH if path == VERIFY else {"personal_id": HEAD}

    response = await gw.call(client, path, body, headers={"X-End-User": end_user})

    found = problem(response, 422, "validation_failed")
    assert [e["loc"] for e in found["errors"]] == [["header", "X-End-User"]]
    assert end_user not in response.text or not end_user, "the value is never echoed"
    assert await gw.events("citizen.") == []
    assert await gw.events("household.") == []


async def test_a_malformed_end_user_is_judged_after_the_token(sqlite_gateway: Gateway) -> None:
    response = await sqlite_gateway.http.post(
        LOOKUP, json={"personal_id": HEAD}, headers={"X-End-User": "a b", "X-Purpose": "P"}
    )
    problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    ("path", "body", "action", "fields"),
    [
        (
            LOOKUP,
            {"personal_id": HEAD, "fields": ["full_name", "gender"]},
            "citizen.read",
            ["full_name", "gender"],
        ),
        (VERIFY, THANH, "citizen.verify", ["date_of_birth", "full_name"]),
        (HOUSEHOLD, {"personal_id": HEAD}, "household.read", []),
    ],
)
async def test_a_grant_requiring_the_end_user_refuses_a_call_without_one(
    any_db: Gateway, path: str, body: dict[str, object], action: str, fields: list[str]
) -> None:
    gw = any_db
    client = await gw.register(require_end_user=True)

    refused = await gw.call(client, path, body)
    answered = await gw.call(client, path, body, headers={"X-End-User": "lan"})

    problem(refused, 400, "end_user_required")
    assert answered.status_code == 200, answered.text
    denied, allowed = [e for e in await gw.events(action.split(".")[0]) if e.action == action][:2]
    assert denied.outcome == "denied"
    assert denied.reason == "end_user_required"
    assert denied.status_code == 400
    assert denied.subject_ref == gw.state[AUDIT].hasher.ref(HEAD), "a search by personal ID finds the attempt"
    assert sorted(denied.fields) == fields
    assert denied.end_user is None
    assert denied.client_ip == PEER
    assert allowed.outcome == "allowed"
    assert allowed.end_user == "lan"


async def test_a_refused_lookup_naming_no_fields_records_every_granted_one(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await gw.register(require_end_user=True, fields=["full_name", "gender"])

    problem(await gw.call(client, LOOKUP, {"personal_id": HEAD}), 400, "end_user_required")

    (event,) = await gw.events("citizen.read")
    assert sorted(event.fields) == ["full_name", "gender"]


async def test_a_refused_batch_names_each_resident(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register(require_end_user=True)
    items = [THANH, {"personal_id": NAME_D, "gender": "male"}, {"personal_id": "123", "gender": "male"}]

    problem(await gw.call(client, BATCH, {"items": items}), 400, "end_user_required")

    events = await gw.events("citizen.verify")
    hasher = gw.state[AUDIT].hasher
    assert [(e.subject_ref, e.reason, e.outcome) for e in events] == [
        (hasher.ref(HEAD), "end_user_required", "denied"),
        (hasher.ref(NAME_D), "end_user_required", "denied"),
    ]


async def test_the_purpose_is_judged_before_the_end_user(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await gw.register(require_end_user=True)

    problem(await gw.call(client, VERIFY, THANH, purpose=None), 400, "purpose_required")
    problem(await gw.call(client, VERIFY, THANH, purpose="NOT.GRANTED"), 403, "purpose_not_allowed")


async def test_an_unknown_resident_with_an_end_user_is_recorded_with_it(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await gw.register(require_end_user=True)

    response = await gw.call(client, LOOKUP, {"personal_id": "052099999999"}, headers={"X-End-User": "lan"})

    assert response.status_code == 404
    (event,) = await gw.events("citizen.read")
    assert (event.reason, event.fields, event.end_user) == ("not_found", [], "lan")


async def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(
    migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> None:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    settings = gateway_settings(f"sqlite:///{path}", mock_db, trusted_proxies="127.0.0.0/8, 10.0.0.0/8")
    async with running(settings) as gw:
        client = await gw.register(require_end_user=True)
        forwarded = {"X-End-User": "lan", "X-Forwarded-For": "192.0.2.66, 198.51.100.7, 10.1.2.3"}
        refused = {"X-Forwarded-For": "198.51.100.8"}

        assert (await gw.call(client, LOOKUP, {"personal_id": HEAD}, headers=forwarded)).status_code == 200
        problem(
            await gw.call(client, LOOKUP, {"personal_id": HEAD}, headers=refused), 400, "end_user_required"
        )

        allowed, denied = await gw.events("citizen.read")
    assert allowed.client_ip == "198.51.100.7", "the rightmost address that is not a trusted proxy"
    assert denied.client_ip == "198.51.100.8"
