"""Audit events for refusals name the resident, and an unknown ID releases nothing (docs/contract.md, "Audit").

An auditor searching by personal ID must find attempts as well as accesses: a citizen request refused for its
purpose (missing or not granted), a field outside the grant, a resident out of scope, the request rate or the
distinct-resident quota records the resident its body names (``subject_ref``) and the fields it asked about
(the named ones, or every granted one when it named none; for a verification, the fields supplied for
checking; a household call, none). An unknown or cancelled ID is recorded with ``fields: []`` on every route,
verification included.

Everything is checked through the audit search API, on SQLite and on PostgreSQL, with the citizen call
answered by the fast path and by the route as declared (``path``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.citizens.fast import CitizenFastPath
from tests.audit_api.conftest import OTHER_PURPOSE, Auditor, Site, auditor
from tests.harness import HCM, HEAD, JRAI, NAME_D, REISSUED_OLD, UNKNOWN, Client, Gateway

VERIFY = "/v1/citizens/verify"
BATCH = "/v1/citizens/verify/batch"
LOOKUP = "/v1/citizens/lookup"
HOUSEHOLD = "/v1/citizens/household"


@pytest.fixture(params=["fast", "declared"])
async def gw(
    request: pytest.FixtureRequest, site: Site, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    """The gateway on SQLite, then PostgreSQL; its citizen routes answered by the fast path or without it."""
    if request.param == "declared":
        monkeypatch.setattr(CitizenFastPath, "fast_for", lambda _self, _scope: None)
    async with site.start() as gateway:
        yield gateway


@dataclass
class Portal:
    gw: Gateway
    client: Client
    audit: Auditor
    calls: int = 0

    async def call(self, path: str, body: Any, **options: Any) -> tuple[str, int, dict[str, Any]]:
        """The call's request id, status and JSON answer."""
        self.calls += 1
        request_id = f"refusal-test-{self.calls}"
        response = await self.gw.call(
            self.client, path, body, headers={"X-Request-Id": request_id}, **options
        )
        return request_id, response.status_code, response.json()

    async def recorded(self, request_id: str, personal_id: str) -> list[dict[str, Any]]:
        """The events of one request that a search by ``personal_id`` finds."""
        page = await self.audit.search(personal_id=personal_id, limit=1000)
        return [e for e in page["items"] if e["request_id"] == request_id]

    async def of_request(self, request_id: str) -> list[dict[str, Any]]:
        page = await self.audit.search(client_id=self.client.client_id, limit=1000)
        return [e for e in page["items"] if e["request_id"] == request_id]


async def portal(gw: Gateway, **grant: Any) -> Portal:
    await gw.register(purposes=(OTHER_PURPOSE,))  # registered, but not in this portal's grant
    return Portal(gw, await gw.register(**grant), await auditor(gw))


async def expect_named(
    portal: Portal, request_id: str, code: str, status: int, named: dict[str, list[str]]
) -> None:
    """Exactly one event per resident in ``named`` for the request, found by searching for that resident,
    recording the refusal and the fields; and no other event for the request."""
    for personal_id, fields in named.items():
        found = await portal.recorded(request_id, personal_id)
        assert len(found) == 1, (personal_id, found)
        event = found[0]
        assert (event["outcome"], event["status_code"], event["reason"]) == ("denied", status, code)
        assert event["subject_ref"] is not None
        assert event["fields"] == fields
        assert event["client_id"] == portal.client.client_id
    assert len(await portal.of_request(request_id)) == len(named)


# --- refused for its purpose -------------------------------------------------------------------------------

PURPOSE_REFUSALS: list[tuple[dict[str, Any], int, str]] = [
    ({"purpose": None}, 400, "purpose_required"),
    ({"purpose": "CHUA-DANG-KY"}, 403, "purpose_not_allowed"),  # not registered
    ({"purpose": OTHER_PURPOSE}, 403, "purpose_not_allowed"),  # registered, not granted
]


async def test_a_verification_refused_for_its_purpose_names_the_resident_and_the_fields_supplied(
    gw: Gateway,
) -> None:
    p = await portal(gw)
    body = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "gender": "male"}
    for options, status, code in PURPOSE_REFUSALS:
        rid, got, answer = await p.call(VERIFY, body, **options)
        assert (got, answer["code"]) == (status, code)
        await expect_named(p, rid, code, status, {HEAD: ["full_name", "gender"]})


async def test_a_batch_refused_for_its_purpose_names_each_resident(gw: Gateway) -> None:
    p = await portal(gw)
    items: list[Any] = [
        {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"},
        {"personal_id": JRAI, "date_of_birth": "1996", "gender": "female"},
        {"personal_id": "123", "gender": "male"},  # names no resident
        "not an object",
    ]
    for options, status, code in PURPOSE_REFUSALS:
        rid, got, answer = await p.call(BATCH, {"items": items}, **options)
        assert (got, answer["code"]) == (status, code)
        await expect_named(p, rid, code, status, {HEAD: ["full_name"], JRAI: ["date_of_birth", "gender"]})


async def test_a_lookup_refused_for_its_purpose_names_the_resident_and_the_fields_asked_for(
    gw: Gateway,
) -> None:
    p = await portal(gw, fields=("full_name", "date_of_birth"))
    for options, status, code in PURPOSE_REFUSALS:
        rid, got, _ = await p.call(LOOKUP, {"personal_id": HEAD, "fields": ["full_name", "phone"]}, **options)
        assert got == status
        await expect_named(p, rid, code, status, {HEAD: ["full_name", "phone"]})
        rid, got, _ = await p.call(LOOKUP, {"personal_id": NAME_D}, **options)  # none named: all granted
        assert got == status
        await expect_named(p, rid, code, status, {NAME_D: ["date_of_birth", "full_name"]})


async def test_a_household_call_refused_for_its_purpose_names_the_resident(gw: Gateway) -> None:
    p = await portal(gw)
    for options, status, code in PURPOSE_REFUSALS:
        rid, got, _ = await p.call(HOUSEHOLD, {"personal_id": HEAD}, **options)
        assert got == status
        await expect_named(p, rid, code, status, {HEAD: []})


async def test_a_refused_purpose_with_a_body_that_names_no_resident_is_still_recorded(gw: Gateway) -> None:
    p = await portal(gw)
    cases: list[tuple[str, Any]] = [
        (VERIFY, {"personal_id": "999999999999", "gender": "male"}),  # not a well-formed ID
        (BATCH, {"items": []}),
        (BATCH, {"items": [{"personal_id": HEAD, "gender": "male"}] * 101}),  # too large: refused whole
        (LOOKUP, [1]),
    ]
    for path, body in cases:
        rid, got, _ = await p.call(path, body, purpose=None)
        assert got == 400
        (event,) = await p.of_request(rid)
        assert (event["reason"], event["subject_ref"], event["fields"]) == ("purpose_required", None, [])


# --- refused by the grant or the limits --------------------------------------------------------------------


async def test_a_field_outside_the_grant_and_a_resident_out_of_scope_are_recorded_with_the_resident(
    gw: Gateway,
) -> None:
    p = await portal(gw, fields=("full_name",), provinces=("52",))
    rid, got, _ = await p.call(LOOKUP, {"personal_id": HEAD, "fields": ["full_name", "religion"]})
    assert got == 403
    await expect_named(p, rid, "field_not_allowed", 403, {HEAD: ["full_name", "religion"]})
    rid, got, _ = await p.call(LOOKUP, {"personal_id": HCM})
    assert got == 404
    await expect_named(p, rid, "out_of_scope", 404, {HCM: ["full_name"]})
    rid, got, _ = await p.call(HOUSEHOLD, {"personal_id": HCM})
    assert got == 404
    await expect_named(p, rid, "out_of_scope", 404, {HCM: []})


CALLS: list[tuple[str, dict[str, Any], dict[str, list[str]]]] = [
    (VERIFY, {"personal_id": NAME_D, "gender": "male"}, {NAME_D: ["gender"]}),
    (
        BATCH,
        {
            "items": [
                {"personal_id": NAME_D, "gender": "male"},
                {"personal_id": JRAI, "full_name": "Rơ Châm H'Linh"},
            ]
        },
        {NAME_D: ["gender"], JRAI: ["full_name"]},
    ),
    (LOOKUP, {"personal_id": NAME_D}, {NAME_D: ["date_of_birth", "full_name"]}),
    (HOUSEHOLD, {"personal_id": NAME_D}, {NAME_D: []}),
]
"""A call of each route naming residents other than HEAD, with the fields each event records."""


async def test_a_call_over_the_request_rate_names_each_resident(gw: Gateway) -> None:
    p = await portal(gw, fields=("full_name", "date_of_birth"), rate_limit_per_minute=1)
    _, first, _ = await p.call(VERIFY, {"personal_id": HEAD, "gender": "male"})
    assert first == 200
    for path, body, named in CALLS:  # within the same minute: each is over the rate
        rid, got, answer = await p.call(path, body)
        assert (got, answer["code"]) == (429, "rate_limited"), path
        await expect_named(p, rid, "rate_limited", 429, named)


async def test_a_call_over_the_distinct_resident_quota_names_each_resident(gw: Gateway) -> None:
    p = await portal(gw, fields=("full_name", "date_of_birth"), distinct_subjects_per_day=1)
    _, first, _ = await p.call(VERIFY, {"personal_id": HEAD, "gender": "male"})
    assert first == 200
    for path, body, named in CALLS:  # a refused resident is not counted: each is over the quota
        rid, got, answer = await p.call(path, body)
        if path == BATCH:  # each item over the quota is that item's problem; the batch is answered
            assert got == 200
            assert [r["problem"]["code"] for r in answer["results"]] == ["subject_quota_exceeded"] * 2
        else:
            assert (got, answer["code"]) == (429, "subject_quota_exceeded"), path
        await expect_named(p, rid, "subject_quota_exceeded", 429, named)


# --- an unknown ID releases nothing ------------------------------------------------------------------------


@pytest.mark.parametrize("personal_id", [UNKNOWN, REISSUED_OLD], ids=["unknown", "cancelled"])
async def test_an_unknown_or_cancelled_id_is_recorded_with_no_fields_on_every_route(
    gw: Gateway, personal_id: str
) -> None:
    p = await portal(gw)
    supplied = {"personal_id": personal_id, "full_name": "Nguyễn Văn An", "gender": "male"}
    for path, body, status in (
        (VERIFY, supplied, 200),
        (BATCH, {"items": [supplied]}, 200),
        (LOOKUP, {"personal_id": personal_id}, 404),
        (LOOKUP, {"personal_id": personal_id, "fields": ["full_name"]}, 404),
        (HOUSEHOLD, {"personal_id": personal_id}, 404),
    ):
        rid, got, answer = await p.call(path, body)
        assert got == status, answer
        (event,) = await p.recorded(rid, personal_id)
        assert (event["outcome"], event["reason"], event["fields"]) == ("allowed", "not_found", []), path
        assert event["sensitive_fields"] == []
