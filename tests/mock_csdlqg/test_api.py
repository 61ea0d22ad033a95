"""The mock's HTTP contract (docs/contract.md, The mock national population database), SQLite and Postgres."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mock_csdlqg.app import create_app
from mock_csdlqg.config import MockSettings
from mock_csdlqg.personas import personas
from mock_csdlqg.store import StoreMissing
from mock_csdlqg.wire import BatchGetResponse, CongDan, HoGiaDinh, PersonaList, SampleList
from tests.harness import free_port, mock_settings
from tests.mock_csdlqg.conftest import (
    API_KEY,
    HEAD_OF_LARGE_HOUSEHOLD,
    REQUEST_ID,
    UNKNOWN_ID,
    assert_problem,
    lookup,
    open_client,
    some_ids,
    without_key,
)


def current_province(record: CongDan) -> str | None:
    residence = record.noiOHienTai or record.noiTamTru or record.noiThuongTru
    return residence.maTinh if residence else None


# ------------------------------------------------------------------------------------ authentication

PROTECTED = [
    ("POST", "/api/v1/residents/lookup", {"json": {"soDinhDanh": HEAD_OF_LARGE_HOUSEHOLD}}),
    ("POST", "/api/v1/residents/batch-get", {"json": {"ids": [HEAD_OF_LARGE_HOUSEHOLD]}}),
    ("GET", "/api/v1/households/520000000001", {}),
    ("GET", "/api/v1/no-such-route", {}),
    ("GET", "/_mock/personas", {}),
    ("GET", "/_mock/sample", {}),
    ("GET", "/_mock/faults", {}),
]


@pytest.mark.parametrize(("method", "url", "kwargs"), PROTECTED)
async def test_a_missing_key_is_401(
    mock_client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    response = await without_key(mock_client, method, url, **kwargs)
    body = assert_problem(response, 401, "invalid_api_key")
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text
    assert "errors" not in body


@pytest.mark.parametrize("key", ["wrong", API_KEY + "x", API_KEY[:-1], ""])
async def test_a_wrong_key_is_401(mock_client: httpx.AsyncClient, key: str) -> None:
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={"X-Api-Key": key})
    assert_problem(response, 401, "invalid_api_key")


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/health"])
async def test_health_needs_no_key(mock_client: httpx.AsyncClient, path: str) -> None:
    response = await without_key(mock_client, "GET", path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_api_health_counts_the_residents(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/api/v1/health")
    assert response.json() == {"status": "ok", "residents": 1500 + len(personas())}


def test_the_app_refuses_to_be_built_without_a_key(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        create_app(MockSettings(database_url=sqlite_url, api_key=None))


# ------------------------------------------------------------------------------------------- lookup


async def test_lookup_answers_the_stored_record(mock_client: httpx.AsyncClient) -> None:
    for personal_id in [HEAD_OF_LARGE_HOUSEHOLD, *await some_ids(mock_client, 5)]:
        response = await lookup(mock_client, personal_id)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        record = CongDan.model_validate_json(response.content)
        assert record.soDinhDanh == personal_id


async def test_lookup_of_an_unknown_id_is_404(mock_client: httpx.AsyncClient) -> None:
    response = await lookup(mock_client, UNKNOWN_ID)
    assert_problem(response, 404, "not_found")
    assert UNKNOWN_ID not in response.text


@pytest.mark.parametrize(
    "value",
    [
        "05206800010",  # 11 digits
        "0520680001088",  # 13 digits
        "05206800010A",
        "052068000108\n",
        " 052068000108",
        "٠٥٢٠٦٨٠٠٠١٠٨",  # Arabic-Indic digits: str.isdigit() says yes
        52068000108,
        None,
    ],
)
async def test_an_invalid_id_is_422_and_never_echoed(mock_client: httpx.AsyncClient, value: object) -> None:
    response = await mock_client.post("/api/v1/residents/lookup", json={"soDinhDanh": value})
    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", "soDinhDanh"]]
    assert "input" not in body["errors"][0]
    if value is not None:
        assert str(value).strip() not in response.text
        assert orjson.dumps(value).decode() not in response.text


async def test_unknown_members_are_422_and_a_key_that_looks_like_an_id_is_masked(
    mock_client: httpx.AsyncClient,
) -> None:
    response = await mock_client.post(
        "/api/v1/residents/lookup",
        json={"soDinhDanh": HEAD_OF_LARGE_HOUSEHOLD, "hoVaTen": "x", "052170000109": True},
    )
    body = assert_problem(response, 422, "validation_failed")
    assert sorted((e["code"], e["loc"][1]) for e in body["errors"]) == [
        ("extra_forbidden", "*"),
        ("extra_forbidden", "hoVaTen"),
    ]
    assert "052170000109" not in response.text
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "json_invalid"),
        (b'["052068000108"]', "model_type"),
        (b"{}", "missing"),
        (b"", "json_invalid"),
    ],
)
async def test_unreadable_bodies_are_422(mock_client: httpx.AsyncClient, content: bytes, code: str) -> None:
    response = await mock_client.post(
        "/api/v1/residents/lookup", content=content, headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert [error["code"] for error in body["errors"]] == [code]
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text


async def test_lookup_is_post_only(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/api/v1/residents/lookup")
    assert_problem(response, 405, "method_not_allowed")


# ---------------------------------------------------------------------------------------- batch-get


async def test_batch_get_keeps_request_order_answers_duplicates_once_and_lists_missing(
    mock_client: httpx.AsyncClient,
) -> None:
    first, second, third = await some_ids(mock_client, 3, seed=5)
    assert len({first, second, third}) == 3
    asked = [second, UNKNOWN_ID, first, second, third, UNKNOWN_ID, first]
    response = await mock_client.post("/api/v1/residents/batch-get", json={"ids": asked})
    assert response.status_code == 200
    answer = BatchGetResponse.model_validate_json(response.content)
    assert [record.soDinhDanh for record in answer.records] == [second, first, third]
    assert answer.missing == [UNKNOWN_ID]


async def test_batch_get_of_unknown_ids_only(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.post("/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID]})
    assert response.json() == {"records": [], "missing": [UNKNOWN_ID]}


@pytest.mark.parametrize("count", [0, 1001])
async def test_batch_get_size_is_1_to_max_batch(mock_client: httpx.AsyncClient, count: int) -> None:
    response = await mock_client.post("/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID] * count})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "ids"]
    assert body["errors"][0]["code"] == ("too_short" if count == 0 else "too_long")


async def test_batch_get_follows_the_configured_max_batch(sqlite_url: str) -> None:
    async with open_client(mock_settings(sqlite_url, max_batch=3)) as client:
        ok = await client.post("/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID] * 3})
        assert ok.status_code == 200
        too_many = await client.post("/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID] * 4})
        body = assert_problem(too_many, 422, "validation_failed")
        assert body["errors"] == [
            {"loc": ["body", "ids"], "code": "too_long", "message": "Must have at most 3 items."}
        ]


async def test_batch_get_refuses_invalid_ids_without_echoing_them(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.post(
        "/api/v1/residents/batch-get", json={"ids": [HEAD_OF_LARGE_HOUSEHOLD, "05206800010X", "123"]}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", "ids", 1], ["body", "ids", 2]]
    for value in (HEAD_OF_LARGE_HOUSEHOLD, "05206800010X", '"123"'):
        assert value not in response.text


@pytest.mark.parametrize("body", [{"ids": "052068000108"}, {"ids": [1]}, {"ids": [], "extra": 1}, {}])
async def test_batch_get_refuses_other_shapes(mock_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await mock_client.post("/api/v1/residents/batch-get", json=body)
    assert_problem(response, 422, "validation_failed")


# --------------------------------------------------------------------------------------- households


async def check_household(client: httpx.AsyncClient, household_id: str) -> HoGiaDinh:
    response = await client.get(f"/api/v1/households/{household_id}")
    assert response.status_code == 200
    household = HoGiaDinh.model_validate_json(response.content)
    assert household.maHo == household_id
    heads = [member for member in household.thanhVien if member.quanHeVoiChuHo == "chu_ho"]
    assert [head.soDinhDanh for head in heads] == [household.chuHo.soDinhDanh]
    members = await client.post(
        "/api/v1/residents/batch-get", json={"ids": [member.soDinhDanh for member in household.thanhVien]}
    )
    answer = BatchGetResponse.model_validate_json(members.content)
    assert answer.missing == []
    assert [record.maHo for record in answer.records] == [household_id] * len(household.thanhVien)
    return household


async def test_a_household_lists_its_head_among_its_members(mock_client: httpx.AsyncClient) -> None:
    head = CongDan.model_validate_json((await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD)).content)
    assert head.maHo is not None
    household = await check_household(mock_client, head.maHo)
    assert household.chuHo.soDinhDanh == HEAD_OF_LARGE_HOUSEHOLD
    assert len(household.thanhVien) == 8


async def test_generated_households_are_consistent(mock_client: httpx.AsyncClient) -> None:
    ids = await some_ids(mock_client, 10, seed=3)
    answer = BatchGetResponse.model_validate_json(
        (await mock_client.post("/api/v1/residents/batch-get", json={"ids": ids})).content
    )
    household_ids = {record.maHo for record in answer.records if record.maHo}
    assert household_ids
    for household_id in household_ids:
        await check_household(mock_client, household_id)


async def test_an_unknown_household_is_404(mock_client: httpx.AsyncClient) -> None:
    assert_problem(await mock_client.get("/api/v1/households/529999999999"), 404, "not_found")


async def test_a_malformed_household_code_is_422(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/api/v1/households/52.99")
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["path", "maHo"]


# ------------------------------------------------------------------------------------------ _mock/*


async def test_personas_are_listed_and_each_one_is_on_record(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/_mock/personas")
    assert response.status_code == 200
    listed = PersonaList.model_validate_json(response.content).items
    assert len(listed) >= 20
    assert [(p.personal_id, p.scenario) for p in listed] == [(p.personal_id, p.scenario) for p in personas()]
    for persona in listed:
        assert persona.description
        record = await lookup(mock_client, persona.personal_id)
        assert record.status_code == 200, persona.scenario
        assert CongDan.model_validate_json(record.content).soDinhDanh == persona.personal_id


@pytest.mark.parametrize("n", [1, 25, 1000])
async def test_sample_answers_n_well_formed_ids_on_record(mock_client: httpx.AsyncClient, n: int) -> None:
    ids = await some_ids(mock_client, n)
    assert len(ids) == n
    assert all(re.fullmatch(r"[0-9]{12}", pid) for pid in ids)
    answer = (await mock_client.post("/api/v1/residents/batch-get", json={"ids": ids})).json()
    assert answer["missing"] == []


async def test_sample_defaults_to_ten(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/_mock/sample")
    assert len(SampleList.model_validate_json(response.content).items) == 10


@pytest.mark.parametrize("province", ["52", "79", "01"])
async def test_sample_filters_on_the_current_residence(mock_client: httpx.AsyncClient, province: str) -> None:
    ids = await some_ids(mock_client, 30, province=province)
    assert len(ids) == 30
    answer = BatchGetResponse.model_validate_json(
        (await mock_client.post("/api/v1/residents/batch-get", json={"ids": ids})).content
    )
    assert len(answer.records) == len(set(ids))
    assert {current_province(record) for record in answer.records} == {province}


async def test_a_seeded_sample_is_reproducible(mock_client: httpx.AsyncClient) -> None:
    first = await some_ids(mock_client, 20, seed=42)
    assert await some_ids(mock_client, 20, seed=42) == first
    assert await some_ids(mock_client, 20, seed=43) != first
    unseeded = [await some_ids(mock_client, 20, seed=None) for _ in range(3)]
    assert len({tuple(ids) for ids in unseeded}) > 1


@pytest.mark.parametrize(
    "params",
    [
        {"n": 0},
        {"n": 1001},
        {"n": "x"},
        {"province": "53"},
        {"province": "052"},
        {"province": "ab"},
        {"seed": "x"},
    ],
)
async def test_sample_refuses_bad_parameters(mock_client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await mock_client.get("/_mock/sample", params=params)
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["query", next(iter(params))]


# ----------------------------------------------------------------------- request ids, headers, errors


async def test_a_well_formed_request_id_is_echoed(mock_client: httpx.AsyncClient) -> None:
    for request_id in ["abc", "A.b-c_9", "x" * 64]:
        ok = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={"X-Request-Id": request_id})
        assert ok.headers["x-request-id"] == request_id
        problem = await lookup(mock_client, UNKNOWN_ID, headers={"X-Request-Id": request_id})
        assert problem.headers["x-request-id"] == request_id
        assert problem.json()["request_id"] == request_id


@pytest.mark.parametrize("offered", ["x" * 65, "has space", "semi;colon", "ư", ""])
async def test_a_malformed_request_id_is_replaced(mock_client: httpx.AsyncClient, offered: str) -> None:
    response = await lookup(mock_client, UNKNOWN_ID, headers={"X-Request-Id": offered.encode()})
    request_id = response.headers["x-request-id"]
    assert request_id != offered
    assert REQUEST_ID.fullmatch(request_id)
    assert response.json()["request_id"] == request_id


async def test_every_answer_gets_a_fresh_request_id(mock_client: httpx.AsyncClient) -> None:
    ids = {(await mock_client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(REQUEST_ID.fullmatch(request_id) for request_id in ids)


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'",
}


async def test_security_headers_on_every_answer(mock_client: httpx.AsyncClient) -> None:
    answers = [
        await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD),
        await lookup(mock_client, UNKNOWN_ID),
        await lookup(mock_client, "bad"),
        await without_key(mock_client, "GET", "/_mock/personas"),
        await mock_client.get("/healthz"),
        await mock_client.get("/nowhere"),
        await mock_client.get("/openapi.json"),
    ]
    for response in answers:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_list(name) == [value], (response.url, name)
        assert "x-request-id" in response.headers


async def test_docs_get_a_policy_that_lets_swagger_ui_load(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] != "default-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_declared_body_over_the_cap_is_413(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.post(
        "/api/v1/residents/batch-get",
        content=b" " * (1 << 20 | 1),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_an_unexpected_error_is_a_500_problem_logged_without_its_message(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: object, personal_id: str) -> bytes:
        raise RuntimeError(f"disk error while reading {personal_id}")

    monkeypatch.setattr("mock_csdlqg.store.SqliteStore.get", explode)
    async with open_client(mock_settings(sqlite_url)) as client:
        with caplog.at_level(logging.ERROR, logger="mock_csdlqg"):
            response = await lookup(client, HEAD_OF_LARGE_HOUSEHOLD, headers={"X-Request-Id": "boom-1"})
    assert_problem(response, 500, "internal_error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "RuntimeError" in line
    assert "boom-1" in line
    assert HEAD_OF_LARGE_HOUSEHOLD not in line
    assert caplog.records[0].exc_info is None


async def test_nothing_logs_a_personal_id(
    mock_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD)
        await lookup(mock_client, UNKNOWN_ID)
        await lookup(mock_client, "05206800010X")
        await mock_client.post(
            "/api/v1/residents/batch-get", json={"ids": [HEAD_OF_LARGE_HOUSEHOLD, UNKNOWN_ID]}
        )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for value in (HEAD_OF_LARGE_HOUSEHOLD, UNKNOWN_ID, "05206800010X"):
        assert value not in logged


# --------------------------------------------------------------------------------------------- startup


async def test_an_unseeded_database_fails_the_lifespan(tmp_path: Path) -> None:
    app = create_app(mock_settings(f"sqlite:///{tmp_path / 'missing.db'}"))
    with pytest.raises(StoreMissing, match="mock-csdlqg seed"):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover


def test_serve_on_an_unseeded_database_exits_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    env = {**os.environ, "MOCK_CSDLQG_API_KEY": API_KEY}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("mock-csdlqg")),
            "serve",
            "--port",
            str(free_port()),
            "--database-url",
            f"sqlite:///{empty}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "mock-csdlqg cannot start" in line]
    assert len(errors) == 1
    assert "mock-csdlqg seed" in errors[0]
