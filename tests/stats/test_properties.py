"""Disclosure control over random queries, on the embedded and the http backend (docs/contract.md, section 14):

1. no published count lies in 1..k-1;
2. every published count is within d of the raw count computed independently from the mock's file, and a cell
   is suppressed exactly when that raw count is in 1..k-1;
3. the same residents give the same published count whatever the grouping, filters or ward list that reach them,
   and asking twice gives the same answer;
5. ``total`` obeys the same rules.
(4, refusals and their audit events, is in test_endpoint.py.)
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import MOCK_AS_OF as AS_OF
from tests.harness import Client, Gateway
from tests.stats.conftest import MAX_NOISE, THRESHOLD, analyst, ask
from tests.stats_reference import Person, raw_counts

DIMENSIONS = (
    "ward",
    "age_band",
    "age_group",
    "sex",
    "ethnicity",
    "residence_status",
    "household_size",
    "marital_status",
)
AGE_RANGES = {
    "age_group": {
        "0-5": (0, 5),
        "6-10": (6, 10),
        "11-14": (11, 14),
        "15-17": (15, 17),
        "18-59": (18, 59),
        "60+": (60, 150),
    },
    "age_band": {f"{low}-{low + 4}": (low, low + 4) for low in range(0, 85, 5)} | {"85+": (85, 150)},
}
# Wards where the mock's residents of province 52 live (a fixed list: hypothesis needs it before the fixtures).
SOME_WARDS = ("21553", "21583", "21589", "21592", "21601", "21607")


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "province": "52",
        "group_by": draw(st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=3)),
    }
    if draw(st.booleans()):
        body["wards"] = draw(st.lists(st.sampled_from(SOME_WARDS), unique=True, min_size=1, max_size=4))
    filters: dict[str, Any] = {}
    if draw(st.booleans()):
        filters["sex"] = draw(st.sampled_from(["male", "female"]))
    if draw(st.booleans()):
        low, high = sorted(draw(st.lists(st.integers(0, 100), min_size=2, max_size=2)))
        filters["age_min"], filters["age_max"] = low, high
    if draw(st.booleans()):
        filters["ethnicity"] = draw(
            st.lists(st.sampled_from(["01", "10", "12", "13"]), unique=True, min_size=1)
        )
    if draw(st.booleans()):
        filters["residence_status"] = draw(
            st.lists(st.sampled_from(["permanent", "temporary", "other"]), unique=True, min_size=1)
        )
    if filters:
        body["filters"] = filters
    if draw(st.booleans()):
        body["as_of"] = draw(st.sampled_from(["2019-06-30", "2024-07-01"]))
    return body


def key_of(item: dict[str, Any], group_by: list[str]) -> tuple[str, ...]:
    return tuple(item[d]["code"] if d in ("ward", "ethnicity") else item[d] for d in group_by)


def check_count(published: dict[str, Any], raw: int) -> None:
    """Properties 1 and 2 for one published count (an item or the total)."""
    if 1 <= raw < THRESHOLD:
        assert published == {"count": None, "suppressed": True}
        return
    assert published["suppressed"] is False
    count = published["count"]
    assert not 1 <= count < THRESHOLD
    assert abs(count - raw) <= MAX_NOISE
    if raw >= THRESHOLD:
        assert count >= THRESHOLD


def same_residents(body: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Another query whose single cell (or total) holds exactly ``item``'s residents: each dimension that can be
    expressed as a filter becomes one, the others stay grouped."""
    f: dict[str, Any] = dict(body.get("filters", {}))
    group_by: list[str] = []
    other: dict[str, Any] = {"province": "52", "group_by": group_by, "filters": f}
    if "as_of" in body:
        other["as_of"] = body["as_of"]
    if "wards" in body:
        other["wards"] = list(reversed(body["wards"]))
    for dim in body["group_by"]:
        value = item[dim]
        if dim == "ward":
            other["wards"] = [value["code"]]
        elif dim == "sex":
            f["sex"] = value
        elif dim == "ethnicity":
            f["ethnicity"] = [value["code"]]
        elif dim == "residence_status":
            f["residence_status"] = [value]
        elif dim in AGE_RANGES:
            low, high = AGE_RANGES[dim][value]
            f["age_min"] = max(low, f.get("age_min", 0))
            f["age_max"] = min(high, f.get("age_max", 150))
        else:
            group_by.append(dim)
    return other


async def check_query(gw: Gateway, client: Client, people: list[Person], body: dict[str, Any]) -> None:
    response = await ask(gw, client, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    group_by = body["group_by"]
    as_of = date.fromisoformat(body.get("as_of", AS_OF.isoformat()))
    raw = raw_counts(
        people,
        province="52",
        as_of=as_of,
        group_by=group_by,
        wards=body.get("wards"),
        filters=body.get("filters"),
    )
    published = {key_of(item, group_by): item for item in answer["items"]}
    assert published.keys() == raw.keys()  # every non-empty combination, and only those
    for key, item in published.items():
        check_count({"count": item["count"], "suppressed": item["suppressed"]}, raw[key])
    check_count(answer["total"], sum(raw.values()))
    # 3: asking twice, and reaching the same residents another way
    again = await ask(gw, client, body)
    assert again.json() == answer
    for item in answer["items"][:3]:
        other_body = same_residents(body, item)
        other = (await ask(gw, client, other_body)).json()
        if other_body["group_by"]:
            rest = {key_of(i, other_body["group_by"]): i for i in other["items"]}
            twin = rest[tuple(item[d] for d in other_body["group_by"])]
            assert (twin["count"], twin["suppressed"]) == (item["count"], item["suppressed"])
        else:
            assert other["total"] == {"count": item["count"], "suppressed": item["suppressed"]}
    # a query with no dimension has one item, and its total is the same residents
    if not group_by and answer["items"]:
        (only,) = answer["items"]
        assert answer["total"] == {"count": only["count"], "suppressed": only["suppressed"]}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=queries())
async def test_random_queries_keep_the_disclosure_rules(
    gateway: Gateway, people: list[Person], body: dict[str, Any]
) -> None:
    client = await analyst(gateway)
    await check_query(gateway, client, people, body)


async def test_the_whole_province_by_each_pair_of_dimensions(gateway: Gateway, people: list[Person]) -> None:
    """Not left to chance: every dimension, alone and beside ward, once."""
    client = await analyst(gateway)
    for dim in DIMENSIONS:
        await check_query(gateway, client, people, {"province": "52", "group_by": [dim]})
        if dim != "ward":
            await check_query(gateway, client, people, {"province": "52", "group_by": ["ward", dim]})
