"""The mock's raw aggregates (docs/contract.md, section 14): counts against an independent count of the file,
key sums that add up, record keys that leave the records as they were, refusals that name the member."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio

from mock_csdlqg.generator.pipeline import DEFAULT_PROVINCES
from mock_csdlqg.generator.population import PopulationSpec, generate_chunk, generate_chunk_with_stats
from mock_csdlqg.wire import ThongKeResponse
from tests.harness import mock_settings, postgres_admin, with_database
from tests.mock_csdlqg.conftest import AS_OF, SEED, _seed, assert_problem, open_client
from tests.stats_reference import raw_counts, read_people
from vnid import wards_of

URL = "/api/v1/statistics/population"
WIRE_DIMENSION = {
    "ward": "xa",
    "age_band": "doTuoi",
    "age_group": "nhomTuoi",
    "sex": "gioiTinh",
    "ethnicity": "danToc",
    "residence_status": "cuTru",
    "household_size": "quyMoHo",
    "marital_status": "honNhan",
}
WIRE_VALUE = {
    "sex": {"Nam": "male", "Nữ": "female"},
    "residence_status": {"thuong_tru": "permanent", "tam_tru": "temporary", "khac": "other"},
    "marital_status": {
        "doc_than": "single",
        "da_ket_hon": "married",
        "ly_hon": "divorced",
        "goa": "widowed",
        "chua_ro": "unknown",
    },
}


@pytest.fixture(scope="module")
def own_postgres_url(postgres_url: str) -> Iterator[str]:
    """The session's shared mock database is reseeded by the seed CLI's tests: these need their own."""
    name = "dancu_t_" + secrets.token_hex(6)
    asyncio.run(postgres_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _seed(with_database(postgres_url, name))
    finally:
        asyncio.run(postgres_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def stats_database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "own_postgres_url")
    return url


@pytest_asyncio.fixture
async def mock_client(stats_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(mock_settings(stats_database_url)) as client:
        yield client


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


async def ask(client: httpx.AsyncClient, body: dict[str, Any]) -> ThongKeResponse:
    response = await client.post(URL, json=body)
    assert response.status_code == 200, response.text
    return ThongKeResponse.model_validate_json(response.content)


def as_api(answer: ThongKeResponse, group_by: list[str]) -> dict[tuple[str, ...], int]:
    out = {}
    for cell in answer.o:
        values = tuple(
            WIRE_VALUE.get(dim, {}).get(value, value)
            for dim, value in zip(group_by, cell.giaTri, strict=True)
        )
        out[values] = cell.soNguoi
    return out


QUERIES: list[tuple[list[str], dict[str, Any], dict[str, Any]]] = [
    ([], {}, {}),
    (["sex"], {}, {}),
    (["ward", "age_group"], {}, {}),
    (["age_band", "sex", "marital_status"], {}, {}),
    (["ethnicity", "residence_status"], {"tuoiTu": 18}, {"age_min": 18}),
    (["household_size"], {"gioiTinh": "Nữ", "tuoiDen": 5}, {"sex": "female", "age_max": 5}),
    (["ward"], {"cuTru": ["tam_tru", "khac"]}, {"residence_status": ["temporary", "other"]}),
    (["sex"], {"danToc": ["10", "13"]}, {"ethnicity": ["10", "13"]}),
]


@pytest.mark.parametrize(("group_by", "wire_filters", "filters"), QUERIES)
async def test_counts_match_an_independent_count_of_the_records(
    mock_client: httpx.AsyncClient,
    sqlite_url: str,
    group_by: list[str],
    wire_filters: dict[str, Any],
    filters: dict[str, Any],
) -> None:
    people = read_people(sqlite_path(sqlite_url))  # the same seed on both databases: the same people
    body = {"maTinh": "52", "nhomTheo": [WIRE_DIMENSION[d] for d in group_by], "loc": wire_filters}
    answer = await ask(mock_client, body)
    expected = raw_counts(people, province="52", as_of=AS_OF, group_by=group_by, filters=filters)
    assert as_api(answer, group_by) == dict(expected)
    assert answer.ngayTinh == AS_OF.isoformat()
    assert all(0 <= cell.tongKhoa <= 255 * cell.soNguoi for cell in answer.o)


async def test_wards_and_an_earlier_date(mock_client: httpx.AsyncClient, sqlite_url: str) -> None:
    people = read_people(sqlite_path(sqlite_url))
    wards = sorted({p.ward for p in people if p.province == "52"})[:5]
    earlier = date(2019, 6, 30)
    body = {"maTinh": "52", "maXa": wards, "nhomTheo": ["xa", "nhomTuoi"], "ngayTinh": earlier.isoformat()}
    answer = await ask(mock_client, body)
    expected = raw_counts(people, province="52", as_of=earlier, group_by=["ward", "age_group"], wards=wards)
    assert as_api(answer, ["ward", "age_group"]) == dict(expected)
    names = {w.code: w.name for w in wards_of("52")}
    assert answer.nhan["xa"] == {code: names[code] for code in {c.giaTri[0] for c in answer.o}}
    # the deceased are counted before they died
    dead_then_alive = [p for p in people if p.province == "52" and p.died and p.died > earlier]
    assert dead_then_alive


async def test_key_sums_add_up_whatever_the_grouping(mock_client: httpx.AsyncClient) -> None:
    whole = await ask(mock_client, {"maTinh": "52"})
    assert len(whole.o) == 1
    for dims in (["gioiTinh"], ["xa", "doTuoi"], ["honNhan", "quyMoHo", "cuTru"]):
        split = await ask(mock_client, {"maTinh": "52", "nhomTheo": dims})
        assert sum(c.soNguoi for c in split.o) == whole.o[0].soNguoi
        assert sum(c.tongKhoa for c in split.o) == whole.o[0].tongKhoa


async def test_an_empty_province_has_no_cells(mock_client: httpx.AsyncClient) -> None:
    answer = await ask(mock_client, {"maTinh": "12", "nhomTheo": ["gioiTinh"]})  # Lai Châu: few or none
    assert all(cell.soNguoi >= 1 for cell in answer.o)


def test_record_keys_leave_the_records_as_they_were() -> None:
    spec = PopulationSpec(seed=SEED, as_of=AS_OF, home_provinces=DEFAULT_PROVINCES)
    plain = generate_chunk(spec, 3, 400)
    residents, households, stats = generate_chunk_with_stats(spec, 3, 400)
    assert (residents, households) == plain
    again = generate_chunk_with_stats(spec, 3, 400)[2]
    assert again == stats
    assert sum(len(cols["khoa"]) for cols in stats.values()) == len(residents)


def test_every_resident_has_a_record_key(sqlite_url: str) -> None:
    conn = sqlite3.connect(f"file:{sqlite_path(sqlite_url)}?mode=ro", uri=True)
    try:
        keys = [
            np.frombuffer(blob, dtype="u1")
            for (blob,) in conn.execute("SELECT du_lieu FROM csdlqg_thong_ke WHERE cot = 'khoa'")
        ]
        total = conn.execute("SELECT count(*) FROM csdlqg_cong_dan").fetchone()[0]
    finally:
        conn.close()
    assert sum(len(k) for k in keys) == total
    assert len(set(np.concatenate(keys).tolist())) > 200  # uniform over 0..255


@pytest.mark.parametrize(
    ("body", "loc", "code"),
    [
        ({"maTinh": "52", "nhomTheo": ["tuoi"]}, ["body", "nhomTheo", 0], "literal_error"),
        (
            {"maTinh": "52", "nhomTheo": ["xa", "gioiTinh", "doTuoi", "cuTru"]},
            ["body", "nhomTheo"],
            "too_long",
        ),
        ({"maTinh": "52", "nhomTheo": ["xa", "xa"]}, ["body", "nhomTheo", 1], "repeated_dimension"),
        ({"maTinh": "52", "maXa": ["26734"]}, ["body", "maXa", 0], "ward_not_in_province"),
        (
            {"maTinh": "52", "loc": {"tuoiTu": 10, "tuoiDen": 5}},
            ["body", "loc", "tuoiTu"],
            "age_min_above_age_max",
        ),
        ({"maTinh": "99"}, ["body", "maTinh"], "unknown_province"),
        ({"maTinh": "52", "loc": {"danToc": ["99"]}}, ["body", "loc", "danToc", 0], "unknown_value"),
        ({"maTinh": "52", "thua": 1}, ["body", "thua"], "extra_forbidden"),
    ],
)
async def test_refusals_name_the_member(
    mock_client: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], code: str
) -> None:
    problem = assert_problem(await mock_client.post(URL, json=body), 422, "validation_failed")
    assert problem["errors"][0]["loc"] == loc
    assert problem["errors"][0]["code"] == code
