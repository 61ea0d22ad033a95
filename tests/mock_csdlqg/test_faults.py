"""Fault injection, every mode, through the header and the global mode.

docs/contract.md, The mock national population database; docs/security.md, The upstream."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message

from mock_csdlqg.app import create_app
from mock_csdlqg.faults import cut_in_half, parse_fault_header
from mock_csdlqg.problems import InvalidFault
from mock_csdlqg.wire import BatchGetResponse, CongDan, FaultMode, HoGiaDinh
from tests.harness import mock_settings
from tests.mock_csdlqg.conftest import (
    API_KEY,
    HEAD_OF_LARGE_HOUSEHOLD,
    UNKNOWN_ID,
    assert_problem,
    lookup,
    open_client,
    some_ids,
)

FAULT = "X-Mock-Fault"
NET = 10.0
"""How long an answer that must not be delayed may take before the test calls it delayed (a fault's latency
in these tests is far longer: the answer coming at all is the check, not how fast it came)."""
OFF = FaultMode().model_dump()


async def set_global(client: httpx.AsyncClient, **mode: Any) -> None:
    response = await client.put("/_mock/faults", json=mode)
    assert response.status_code == 200
    assert response.json() == {**OFF, **mode}


async def household_of(client: httpx.AsyncClient, personal_id: str) -> str:
    record = CongDan.model_validate_json((await lookup(client, personal_id, headers={FAULT: "none"})).content)
    assert record.maHo is not None
    return record.maHo


# ------------------------------------------------------------------------------------------------ latency


async def test_latency_through_the_header(mock_client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: "latency=300"})
    assert time.monotonic() - started >= 0.3
    assert CongDan.model_validate_json(response.content).soDinhDanh == HEAD_OF_LARGE_HOUSEHOLD


async def test_latency_through_the_global_mode(mock_client: httpx.AsyncClient) -> None:
    await set_global(mock_client, latency_ms=250)
    for call in (
        lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD),
        mock_client.post("/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID]}),
    ):
        started = time.monotonic()
        response = await call
        assert time.monotonic() - started >= 0.25
        assert response.status_code == 200


# ------------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(("status", "retry_after"), [(503, "1"), (500, None), (429, "1"), (404, None)])
async def test_status_through_the_header(
    mock_client: httpx.AsyncClient, status: int, retry_after: str | None
) -> None:
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: f"status={status}"})
    assert_problem(response, status, "injected_fault")
    assert response.headers.get("retry-after") == retry_after
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text


async def test_status_through_the_global_mode_hits_every_api_route(mock_client: httpx.AsyncClient) -> None:
    household = await household_of(mock_client, HEAD_OF_LARGE_HOUSEHOLD)
    await set_global(mock_client, status=503)
    for response in (
        await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD),
        await mock_client.post("/api/v1/residents/batch-get", json={"ids": [HEAD_OF_LARGE_HOUSEHOLD]}),
        await mock_client.get(f"/api/v1/households/{household}"),
    ):
        assert_problem(response, 503, "injected_fault")
        assert response.headers["retry-after"] == "1"


async def test_latency_comes_before_the_status(mock_client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: "status=503;latency=200"})
    assert time.monotonic() - started >= 0.2
    assert_problem(response, 503, "injected_fault")


# ---------------------------------------------------------------------------------------------- malformed


def assert_not_json(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) > 0
    text = response.content.decode("utf-8")  # cut on a character boundary
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_malformed_through_the_header_on_every_api_route(mock_client: httpx.AsyncClient) -> None:
    household = await household_of(mock_client, HEAD_OF_LARGE_HOUSEHOLD)
    headers = {FAULT: "malformed"}
    assert_not_json(await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers=headers))
    assert_not_json(
        await mock_client.post(
            "/api/v1/residents/batch-get", json={"ids": [HEAD_OF_LARGE_HOUSEHOLD]}, headers=headers
        )
    )
    assert_not_json(await mock_client.get(f"/api/v1/households/{household}", headers=headers))


@given(
    st.dictionaries(st.text(), st.text() | st.integers(-(2**63), 2**63 - 1) | st.lists(st.text()), min_size=1)
)
def test_a_body_cut_in_half_is_text_but_never_json(document: dict[str, Any]) -> None:
    cut = cut_in_half(orjson.dumps(document)).decode("utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


async def test_malformed_through_the_global_mode(mock_client: httpx.AsyncClient) -> None:
    await set_global(mock_client, malformed=True)
    assert_not_json(await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD))


async def test_malformed_leaves_a_404_alone(mock_client: httpx.AsyncClient) -> None:
    response = await lookup(mock_client, UNKNOWN_ID, headers={FAULT: "malformed"})
    assert_problem(response, 404, "not_found")


# ----------------------------------------------------------------------------------------------- wrong_id


async def test_wrong_id_lookup_answers_another_real_record(mock_client: httpx.AsyncClient) -> None:
    for personal_id in [HEAD_OF_LARGE_HOUSEHOLD, *await some_ids(mock_client, 5)]:
        response = await lookup(mock_client, personal_id, headers={FAULT: "wrong_id"})
        assert response.status_code == 200
        record = CongDan.model_validate_json(response.content)
        assert record.soDinhDanh != personal_id
        real = await lookup(mock_client, record.soDinhDanh, headers={FAULT: "none"})
        assert real.content == response.content


async def test_wrong_id_batch_answers_records_nobody_asked_for(mock_client: httpx.AsyncClient) -> None:
    asked = [*await some_ids(mock_client, 6, seed=21), UNKNOWN_ID]
    response = await mock_client.post(
        "/api/v1/residents/batch-get", json={"ids": asked}, headers={FAULT: "wrong_id"}
    )
    assert response.status_code == 200
    answer = BatchGetResponse.model_validate_json(response.content)
    assert answer.records
    assert not {record.soDinhDanh for record in answer.records} & set(asked)
    assert answer.missing == [UNKNOWN_ID]


async def test_wrong_id_household_answers_another_household(mock_client: httpx.AsyncClient) -> None:
    household = await household_of(mock_client, HEAD_OF_LARGE_HOUSEHOLD)
    response = await mock_client.get(f"/api/v1/households/{household}", headers={FAULT: "wrong_id"})
    assert response.status_code == 200
    other = HoGiaDinh.model_validate_json(response.content)
    assert other.maHo != household
    assert HEAD_OF_LARGE_HOUSEHOLD not in {member.soDinhDanh for member in other.thanhVien}


async def test_wrong_id_through_the_global_mode(mock_client: httpx.AsyncClient) -> None:
    await set_global(mock_client, wrong_id=True)
    record = CongDan.model_validate_json((await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD)).content)
    assert record.soDinhDanh != HEAD_OF_LARGE_HOUSEHOLD


async def test_faults_compose(mock_client: httpx.AsyncClient) -> None:
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: "wrong_id;malformed"})
    assert_not_json(response)
    assert HEAD_OF_LARGE_HOUSEHOLD not in response.text[:40]


# ------------------------------------------------------------------------------------------------ trickle


async def read_trickle(client: httpx.AsyncClient, **headers: str) -> tuple[bytes, list[bytes], float]:
    pieces: list[bytes] = []
    started = time.monotonic()
    async with client.stream(
        "POST", "/api/v1/residents/batch-get", json={"ids": [UNKNOWN_ID]}, headers=headers
    ) as response:
        assert response.status_code == 200
        length = int(response.headers["content-length"])
        async for piece in response.aiter_raw():
            pieces.append(piece)
    body = b"".join(pieces)
    assert len(body) == length
    return body, pieces, time.monotonic() - started


def live_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"X-Api-Key": API_KEY}, timeout=httpx.Timeout(5.0))


def assert_trickled(body: bytes, seconds: float) -> None:
    """The whole body, and no faster than 10 bytes every 200 ms (counted from the body's length: over a real
    socket a reader that falls behind gets several pieces in one read, so the pieces read prove nothing)."""
    assert json.loads(body) == {"records": [], "missing": [UNKNOWN_ID]}
    assert len(body) > 30
    assert seconds >= (math.ceil(len(body) / 10) - 1) * 0.2 * 0.9


async def test_trickle_sends_the_body_in_ten_byte_pieces(sqlite_url: str) -> None:
    """The messages the app hands the server, read at the ASGI interface (no socket or client joins them)."""
    app = create_app(mock_settings(sqlite_url))
    request = json.dumps({"ids": [UNKNOWN_ID]}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/residents/batch-get",
        "raw_path": b"/api/v1/residents/batch-get",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"mock"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request)).encode()),
            (b"x-api-key", API_KEY.encode()),
            (FAULT.lower().encode(), b"trickle"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("mock", 80),
        "state": {},
    }
    sent: list[Message] = []
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": request, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        started = time.monotonic()
        await asyncio.wait_for(app(scope, receive, send), NET)
        seconds = time.monotonic() - started
    assert sent[0]["status"] == 200
    pieces = [m["body"] for m in sent[1:] if m.get("body")]
    body = b"".join(pieces)
    assert_trickled(body, seconds)
    assert [len(piece) for piece in pieces[:-1]] == [10] * (len(pieces) - 1)
    assert 0 < len(pieces[-1]) <= 10


async def test_trickle_through_the_header_on_a_real_server(live_mock: str) -> None:
    async with live_client(live_mock) as client:
        body, _, seconds = await read_trickle(client, **{FAULT: "trickle"})
        assert_trickled(body, seconds)


async def test_trickle_through_the_global_mode_on_a_real_server(live_mock: str) -> None:
    async with live_client(live_mock) as client:
        await set_global(client, trickle=True, latency_ms=100)
        body, _, seconds = await read_trickle(client)
        assert_trickled(body, seconds)
        assert seconds >= 0.1 + (math.ceil(len(body) / 10) - 1) * 0.2 * 0.9
        assert (await client.delete("/_mock/faults")).status_code == 204
        _, pieces, _ = await read_trickle(client)
        assert len(pieces) == 1


# ---------------------------------------------------------------------------------------- the global mode


async def test_global_mode_put_get_delete(mock_client: httpx.AsyncClient) -> None:
    assert (await mock_client.get("/_mock/faults")).json() == OFF
    await set_global(mock_client, status=503, latency_ms=10)
    assert (await mock_client.get("/_mock/faults")).json() == {**OFF, "status": 503, "latency_ms": 10}
    await set_global(mock_client, malformed=True)  # members left out are off
    assert (await mock_client.get("/_mock/faults")).json() == {**OFF, "malformed": True}
    deleted = await mock_client.delete("/_mock/faults")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await mock_client.get("/_mock/faults")).json() == OFF
    assert (await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD)).status_code == 200


@pytest.mark.parametrize(
    "mode", [{"status": 200}, {"status": 600}, {"latency_ms": -1}, {"latency_ms": 60_001}, {"slow": True}]
)
async def test_global_mode_refuses_what_it_cannot_do(
    mock_client: httpx.AsyncClient, mode: dict[str, Any]
) -> None:
    response = await mock_client.put("/_mock/faults", json=mode)
    assert_problem(response, 422, "validation_failed")
    assert (await mock_client.get("/_mock/faults")).json() == OFF


async def test_the_header_overrides_the_global_mode(mock_client: httpx.AsyncClient) -> None:
    await set_global(mock_client, status=503)
    for no_fault in ("", "none", " ; "):
        response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: no_fault})
        assert CongDan.model_validate_json(response.content).soDinhDanh == HEAD_OF_LARGE_HOUSEHOLD
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: "wrong_id"})
    assert CongDan.model_validate_json(response.content).soDinhDanh != HEAD_OF_LARGE_HOUSEHOLD
    assert_problem(await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD), 503, "injected_fault")


async def test_health_and_mock_routes_are_never_faulted(mock_client: httpx.AsyncClient) -> None:
    await set_global(mock_client, status=503, malformed=True, latency_ms=60_000)
    for path in ("/api/v1/health", "/healthz", "/_mock/personas", "/_mock/sample", "/_mock/faults"):
        # A minute's latency, were it applied, would outlast the net: the answer coming at all is the check.
        response = await asyncio.wait_for(mock_client.get(path, headers={FAULT: "status=500;malformed"}), NET)
        assert response.status_code == 200, path
        response.json()


async def test_authentication_comes_before_faults(mock_client: httpx.AsyncClient) -> None:
    response = await lookup(
        mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: "status=503", "X-Api-Key": "no"}
    )
    assert_problem(response, 401, "invalid_api_key")


@pytest.mark.parametrize(
    "value",
    [
        "slow",
        "latency",
        "latency=",
        "latency=abc",
        "latency=-5",
        "latency=60001",
        "latency=１０",  # fullwidth digits
        "status=200",
        "status=600",
        "malformed=1",
        "latency=10;latency=20",
        "trickle;trickle",
        "wrong_id,malformed",
    ],
)
async def test_an_invalid_header_is_400(mock_client: httpx.AsyncClient, value: str) -> None:
    response = await lookup(mock_client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: value.encode()})
    assert_problem(response, 400, "invalid_fault")


def test_header_grammar() -> None:
    assert parse_fault_header(" latency = 1500 ; status=503;malformed;wrong_id;trickle ") == FaultMode(
        latency_ms=1500, status=503, malformed=True, wrong_id=True, trickle=True
    )
    assert parse_fault_header("none") == FaultMode()
    with pytest.raises(InvalidFault):
        parse_fault_header("none=1")


async def test_with_faults_disabled_the_header_is_ignored_and_the_control_is_404(sqlite_url: str) -> None:
    async with open_client(mock_settings(sqlite_url, faults=False)) as client:
        for value in ("status=503", "malformed", "wrong_id", "latency=60000", "nonsense"):
            response = await asyncio.wait_for(
                lookup(client, HEAD_OF_LARGE_HOUSEHOLD, headers={FAULT: value}), NET
            )
            assert CongDan.model_validate_json(response.content).soDinhDanh == HEAD_OF_LARGE_HOUSEHOLD
        calls: list[tuple[str, dict[str, Any]]] = [
            ("GET", {}),
            ("PUT", {"json": {"status": 503}}),
            ("DELETE", {}),
        ]
        for method, kwargs in calls:
            assert_problem(await client.request(method, "/_mock/faults", **kwargs), 404, "not_found")
        assert_problem(await client.put("/_mock/faults", json={"bogus": 1}), 404, "not_found")
