"""Raw population aggregates through each backend (docs/contract.md, section 14): embedded and http give the
same answer, both agree with an independent count of the mock's file, the fake counts its records, and an
upstream answer off the contract is 502 before anything is used."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import orjson
import pytest

from app.backends.base import PopulationQuery, RawAggregate
from app.backends.embedded import EmbeddedBackend
from app.backends.errors import UpstreamBadResponse, UpstreamUnavailable
from app.backends.fake import FakeBackend, resident
from app.backends.http import HttpBackend
from tests.harness import MOCK_API_KEY as API_KEY
from tests.harness import MOCK_AS_OF as AS_OF
from tests.stats_reference import raw_counts, read_people

QUERIES = [
    PopulationQuery(province="52"),
    PopulationQuery(province="52", group_by=("ward", "sex")),
    PopulationQuery(province="52", group_by=("age_band", "marital_status", "residence_status")),
    PopulationQuery(province="52", group_by=("household_size",), sex="female", age_min=60),
    PopulationQuery(
        province="52", group_by=("ethnicity", "age_group"), residence_status=("temporary", "other")
    ),
    PopulationQuery(province="52", group_by=("age_group",), as_of=date(2020, 1, 1), ethnicity=("01",)),
]


def counts(answer: RawAggregate) -> dict[tuple[str, ...], int]:
    return {cell.values: cell.count for cell in answer.cells}


@pytest.mark.parametrize("query", QUERIES)
async def test_embedded_and_http_agree_with_an_independent_count(
    mock_sqlite_url: str, live_mock: str, query: PopulationQuery
) -> None:
    embedded = EmbeddedBackend(mock_sqlite_url)
    await embedded.open()
    try:
        inside = await embedded.population_aggregate(query)
    finally:
        await embedded.close()
    async with HttpBackend(live_mock, API_KEY) as http:
        outside = await http.population_aggregate(query)
    assert inside == outside
    people = read_people(mock_sqlite_url.removeprefix("sqlite:///"))
    filters = {
        "sex": query.sex,
        "age_min": query.age_min,
        "age_max": query.age_max,
        "ethnicity": query.ethnicity,
        "residence_status": query.residence_status,
    }
    expected = raw_counts(
        people, province="52", as_of=query.as_of or AS_OF, group_by=query.group_by, filters=filters
    )
    assert counts(inside) == dict(expected)
    assert inside.as_of == (query.as_of or AS_OF)
    if "ward" in query.group_by:
        assert {cell.values[0] for cell in inside.cells} <= inside.labels["ward"].keys()


async def test_the_fake_counts_its_records() -> None:
    fake = FakeBackend(
        [
            resident("052090000118"),
            resident("052190000104"),
            resident("052195000105", marital_status=None),
            resident("079090000106", province="79"),
            resident("052050000107", date_of_death="2020-05-01"),
        ]
    )
    answer = await fake.population_aggregate(
        PopulationQuery(province="52", group_by=("sex", "marital_status"))
    )
    assert counts(answer) == {("female", "single"): 1, ("female", "unknown"): 1, ("male", "single"): 1}
    earlier = await fake.population_aggregate(PopulationQuery(province="52", as_of=date(2019, 1, 1)))
    assert counts(earlier) == {(): 4}
    fake.fail_next(UpstreamUnavailable())
    with pytest.raises(UpstreamUnavailable):
        await fake.population_aggregate(PopulationQuery(province="52"))


GOOD: dict[str, Any] = {
    "maTinh": "52",
    "ngayTinh": "2026-01-01",
    "nhomTheo": ["xa", "gioiTinh"],
    "o": [{"giaTri": ["21601", "Nam"], "soNguoi": 12, "tongKhoa": 1500}],
    "nhan": {"xa": {"21601": "Phường Quy Nhơn Đông"}},
}


def broken(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(orjson.dumps(GOOD))
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        broken(maTinh="79"),
        broken(nhomTheo=["xa"]),
        broken(ngayTinh="2026-13-01"),
        broken(o=[{"giaTri": ["21601", "X"], "soNguoi": 12, "tongKhoa": 1}]),
        broken(o=[{"giaTri": ["21601", "Nam"], "soNguoi": 0, "tongKhoa": 0}]),
        broken(o=[{"giaTri": ["21601", "Nam"], "soNguoi": 2, "tongKhoa": 600}]),
        broken(o=[{"giaTri": ["99999", "Nam"], "soNguoi": 2, "tongKhoa": 6}]),
        broken(o=[GOOD["o"][0], GOOD["o"][0]]),
        broken(nhan=[]),
        [],
    ],
)
async def test_an_answer_off_the_contract_is_refused(doc: Any) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=doc)

    async with HttpBackend("http://upstream.test", "k", transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(UpstreamBadResponse):
            await http.population_aggregate(PopulationQuery(province="52", group_by=("ward", "sex")))


async def test_a_good_answer_maps_to_the_api_vocabulary() -> None:
    seen: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        return httpx.Response(200, json=GOOD)

    async with HttpBackend("http://upstream.test", "k", transport=httpx.MockTransport(answer)) as http:
        got = await http.population_aggregate(
            PopulationQuery(province="52", group_by=("ward", "sex"), sex="male", residence_status=("other",))
        )
    assert seen == [
        {"maTinh": "52", "nhomTheo": ["xa", "gioiTinh"], "loc": {"gioiTinh": "Nam", "cuTru": ["khac"]}}
    ]
    assert counts(got) == {("21601", "male"): 12}
    assert got.labels["ward"] == {"21601": "Phường Quy Nhơn Đông"}
