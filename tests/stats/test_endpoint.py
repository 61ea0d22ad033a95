"""``POST /v1/statistics/population`` (docs/contract.md, section 14): the answer's shape, refusals with their
codes, one audit event per query, upstream failures audited as errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.backends.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.citizens.dependencies import BACKEND
from app.stats.schemas import PopulationResponse
from tests.harness import MOCK_AS_OF as AS_OF
from tests.harness import PURPOSE, Gateway
from tests.stats.conftest import MAX_NOISE, STATS_PURPOSE, THRESHOLD, analyst, ask
from tests.stats_reference import Person, raw_counts


async def stats_events(gw: Gateway) -> list[AuditEventRow]:
    async with gw.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.action == "stats.population")
            .order_by(AuditEventRow.seq)
        )
        return list(rows.all())


async def test_a_table_by_ward_and_sex(gateway: Gateway, people: list[Person]) -> None:
    client = await analyst(gateway)
    response = await ask(gateway, client, {"province": "52", "group_by": ["ward", "sex"]})
    assert response.status_code == 200, response.text
    body = response.json()
    PopulationResponse.model_validate(body)  # the route serialises itself; the OpenAPI model still holds
    assert body["province"] == "52"
    assert body["as_of"] == AS_OF.isoformat()
    assert body["group_by"] == ["ward", "sex"]
    assert body["method"] == {"name": "cell_key", "threshold": THRESHOLD, "max_noise": MAX_NOISE}
    raw = raw_counts(people, province="52", as_of=AS_OF, group_by=["ward", "sex"])
    assert len(body["items"]) == len(raw)
    keys = [(item["ward"]["code"], ["male", "female"].index(item["sex"])) for item in body["items"]]
    assert keys == sorted(keys)
    for item in body["items"]:
        assert set(item) == {"ward", "sex", "count", "suppressed"}
        assert item["ward"]["name"]
        n = raw[(item["ward"]["code"], item["sex"])]
        if n < THRESHOLD:
            assert item == {**item, "count": None, "suppressed": True}
        else:
            assert not item["suppressed"]
            assert abs(item["count"] - n) <= MAX_NOISE
            assert item["count"] >= THRESHOLD
    total = sum(raw.values())
    assert abs(body["total"]["count"] - total) <= MAX_NOISE
    events = await stats_events(gateway)
    assert len(events) == 1
    event = events[0]
    assert (event.outcome, event.status_code, event.subject_ref) == ("allowed", 200, None)
    assert event.purpose == STATS_PURPOSE
    assert event.client_id == client.client_id
    assert event.detail is not None
    assert event.detail["group_by"] == ["ward", "sex"]
    assert event.detail["province"] == "52"
    assert event.detail["filters"] == {}


async def test_the_grants_only_province_is_the_default_and_filters_are_audited(gateway: Gateway) -> None:
    client = await analyst(gateway)
    body = {
        "group_by": ["age_group"],
        "filters": {"sex": "female", "age_min": 60},
        "wards": ["21601", "21607"],
    }
    response = await ask(gateway, client, body)
    assert response.status_code == 200, response.text
    assert response.json()["province"] == "52"
    (event,) = await stats_events(gateway)
    assert event.detail is not None
    assert event.detail["filters"] == {"sex": "female", "age_min": 60}
    assert event.detail["wards"] == ["21601", "21607"]
    assert event.detail["province"] == "52"


async def test_ethnicity_items_carry_code_and_name(gateway: Gateway) -> None:
    client = await analyst(gateway)
    response = await ask(gateway, client, {"province": "52", "group_by": ["ethnicity"]})
    items = response.json()["items"]
    assert {"code": "01", "name": "Kinh"} in [item["ethnicity"] for item in items]


# --- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "code"),
    [
        ({"province": "52", "group_by": ["religion"]}, ["body", "group_by", 0], "literal_error"),
        (
            {"province": "52", "group_by": ["ward", "sex", "age_band", "ethnicity"]},
            ["body", "group_by"],
            "too_long",
        ),
        ({"province": "52", "filters": {"income": 1}}, ["body", "filters", "income"], "extra_forbidden"),
        ({"province": "52", "wards": [f"{20000 + i}" for i in range(201)]}, ["body", "wards"], "too_long"),
        ({"province": "52", "as_of": "1850-01-01"}, ["body", "as_of"], "datetime_out_of_range"),
    ],
)
async def test_schema_refusals_name_the_member(
    gateway: Gateway, body: dict[str, Any], loc: list[Any], code: str
) -> None:
    client = await analyst(gateway)
    response = await ask(gateway, client, body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["errors"][0]["loc"] == loc
    assert problem["errors"][0]["code"] == code


@pytest.mark.parametrize(
    ("body", "loc", "code"),
    [
        ({"province": "52", "group_by": ["sex", "sex"]}, ["body", "group_by", 1], "repeated_dimension"),
        ({"province": "52", "wards": ["21601", "26734"]}, ["body", "wards", 1], "ward_not_in_province"),
        (
            {"province": "52", "filters": {"age_min": 30, "age_max": 20}},
            ["body", "filters", "age_min"],
            "age_range",
        ),
        (
            {"province": "52", "filters": {"ethnicity": ["77"]}},
            ["body", "filters", "ethnicity", 0],
            "unknown_ethnicity",
        ),
    ],
)
async def test_query_refusals_name_the_member_and_are_audited(
    gateway: Gateway, body: dict[str, Any], loc: list[Any], code: str
) -> None:
    client = await analyst(gateway)
    response = await ask(gateway, client, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [e["loc"] for e in problem["errors"]] == [loc]
    assert problem["errors"][0]["code"] == code
    (event,) = await stats_events(gateway)
    assert (event.outcome, event.status_code, event.reason) == ("denied", 422, "validation_failed")


async def test_a_province_outside_the_grant_is_403_and_audited(gateway: Gateway) -> None:
    client = await analyst(gateway)
    response = await ask(gateway, client, {"province": "79", "group_by": ["sex"]})
    assert response.status_code == 403
    assert response.json()["code"] == "province_not_allowed"
    (event,) = await stats_events(gateway)
    assert (event.outcome, event.status_code, event.reason) == ("denied", 403, "province_not_allowed")
    assert event.detail is not None
    assert event.detail["province"] == "79"


async def test_several_provinces_need_the_province_named(gateway: Gateway) -> None:
    client = await analyst(gateway, provinces=("52", "79"))
    response = await ask(gateway, client, {"group_by": ["sex"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "province"]
    star = await analyst(gateway, provinces=("*",))
    assert (await ask(gateway, star, {"province": "79"})).status_code == 200


@pytest.mark.parametrize(
    ("purpose", "status", "code"),
    [
        (None, 400, "purpose_required"),
        (PURPOSE, 403, "purpose_not_allowed"),
        ("NOPE-1", 403, "purpose_not_allowed"),
    ],
)
async def test_purpose_refusals_are_audited(
    gateway: Gateway, purpose: str | None, status: int, code: str
) -> None:
    await gateway.register(purposes=(PURPOSE,))  # registers PURPOSE, which the analyst is not granted
    client = await analyst(gateway)
    response = await ask(gateway, client, {"province": "52", "group_by": ["sex"]}, purpose=purpose)
    assert response.status_code == status
    assert response.json()["code"] == code
    (event,) = await stats_events(gateway)
    assert (event.outcome, event.status_code, event.reason) == ("denied", status, code)
    assert event.detail is not None
    assert event.detail["group_by"] == ["sex"]


async def test_a_client_without_the_scope_is_refused_and_audited(gateway: Gateway) -> None:
    portal = await gateway.register(purposes=(STATS_PURPOSE,))  # citizen scopes only
    response = await ask(gateway, portal, {"province": "52"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    (event,) = await stats_events(gateway)
    assert (event.outcome, event.status_code, event.reason) == ("denied", 403, "insufficient_scope")
    assert event.client_id == portal.client_id


async def test_without_a_token_it_is_401(gateway: Gateway) -> None:
    response = await gateway.http.post("/v1/statistics/population", json={"province": "52"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UpstreamUnavailable(), 503, "upstream_unavailable"),
        (UpstreamTimeout(), 504, "upstream_timeout"),
        (UpstreamBadResponse(reason="shape:o[]"), 502, "upstream_bad_response"),
    ],
)
async def test_upstream_failures_are_audited_as_errors(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int, code: str
) -> None:
    client = await analyst(gateway)

    async def failing(query: Any) -> Any:
        raise error

    monkeypatch.setattr(gateway.state[BACKEND], "population_aggregate", failing)
    response = await ask(gateway, client, {"province": "52", "group_by": ["sex"]})
    assert response.status_code == status
    assert response.json()["code"] == code
    (event,) = await stats_events(gateway)
    assert (event.outcome, event.status_code, event.reason) == ("error", status, code)


async def test_asking_twice_gives_the_same_answer(gateway: Gateway) -> None:
    client = await analyst(gateway)
    body = {"province": "52", "group_by": ["age_band", "sex"]}
    first = await ask(gateway, client, body)
    second = await ask(gateway, client, body)
    assert first.json() == second.json()
    assert len(await stats_events(gateway)) == 2
