"""Problem details, request ids, security headers and the body cap, seen from the outside."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.errors import InvalidToken
from app.main import create_app
from app.problems import field_errors, preferred_language

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
SECRET_ID = "079123456789"
BODY_CAP = 256


class EchoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personal_id: str = Field(max_length=12)
    count: int = 1


extra_routes = APIRouter()


@extra_routes.post("/test/echo")
async def echo(body: EchoBody) -> EchoBody:
    return body


@extra_routes.post("/test/raw")
async def raw(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}


@extra_routes.get("/test/boom")
async def boom() -> None:
    raise RuntimeError(f"lookup of {SECRET_ID} failed")


@extra_routes.get("/test/unauthenticated")
async def unauthenticated(token: str | None = None) -> None:
    raise InvalidToken(token_sent=token is not None)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url, max_body_bytes=BODY_CAP)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """A fresh gateway with routes that only these tests need."""
    app = create_app(settings)
    app.include_router(extra_routes)
    return app


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:dancu:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_path_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not_found")

    assert body.keys() == PROBLEM_KEYS
    assert body["title"] == "Not found"


async def test_wrong_method_is_a_problem_that_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")

    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_missing_field_is_422_validation_failed(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/test/echo", json={}), 422, "validation_failed")

    assert body["errors"] == [
        {"loc": ["body", "personal_id"], "code": "missing", "message": "Field required."}
    ]


async def test_validation_errors_never_echo_the_input(client: httpx.AsyncClient) -> None:
    submitted = {"personal_id": SECRET_ID + "0000", "count": "many-" + SECRET_ID, "note": SECRET_ID}

    response = await client.post("/test/echo", json=submitted)

    body = assert_problem(response, 422, "validation_failed")
    assert SECRET_ID not in response.text
    assert sorted((e["loc"], e["code"]) for e in body["errors"]) == [
        (["body", "count"], "int_parsing"),
        (["body", "note"], "extra_forbidden"),
        (["body", "personal_id"], "string_too_long"),
    ]
    too_long = next(e for e in body["errors"] if e["code"] == "string_too_long")
    assert too_long["message"] == "Must have at most 12 characters."


async def test_malformed_json_is_422_validation_failed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/echo",
        content=b'{"personal_id": "' + SECRET_ID.encode(),
        headers={"content-type": "application/json"},
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [e["code"] for e in body["errors"]] == ["json_invalid"]
    assert SECRET_ID not in response.text


async def test_vietnamese_when_the_caller_prefers_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/echo", json={}, headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"}
    )

    body = assert_problem(response, 422, "validation_failed")
    assert body["title"] == "Dữ liệu không hợp lệ"
    assert body["detail"].startswith("Yêu cầu không đúng")
    assert body["errors"][0]["message"] == "Thiếu trường bắt buộc."
    assert response.headers["content-language"] == "vi"


async def test_english_otherwise(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing", headers={"Accept-Language": "en-US,en;q=0.9,vi;q=0.8"})

    body = assert_problem(response, 404, "not_found")
    assert body["title"] == "Not found"
    assert response.headers["content-language"] == "en"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("vi", "vi"),
        ("VI-vn", "vi"),
        ("fr", "en"),
        ("fr, vi;q=0.3", "vi"),
        ("en;q=0.5, vi", "vi"),
        ("vi;q=0.5, en;q=0.8", "en"),
        ("vi, en", "vi"),
        ("en, vi", "en"),
        ("vi;q=0", "en"),
        ("vi;q=abc", "en"),
        ("vi;q=2", "en"),
        ("*", "en"),
        ("*;q=0.5, vi;q=0.1", "en"),
        ("en;q=0.1, *", "vi"),
    ],
)
def test_preferred_language_weighs_q_values(header: str | None, language: str) -> None:
    assert preferred_language(header) == language


def test_field_errors_keep_constraints_but_never_values() -> None:
    errors: list[dict[str, Any]] = [
        {
            "type": "value_error",
            "loc": ("body", "x"),
            "msg": f"Value error, {SECRET_ID}",
            "ctx": {"error": SECRET_ID},
        },
        {"type": "greater_than_equal", "loc": ("query", "limit", 0), "msg": "...", "ctx": {"ge": 1}},
        {"type": "string_too_long", "loc": ("body", "y"), "msg": "...", "ctx": {}},
    ]

    assert field_errors(errors, language="en") == [
        {"loc": ["body", "x"], "code": "value_error", "message": "Invalid value."},
        {"loc": ["query", "limit", 0], "code": "greater_than_equal", "message": "Must be at least 1."},
        {"loc": ["body", "y"], "code": "string_too_long", "message": "Invalid value."},
    ]


async def test_unhandled_exception_is_a_bare_500_logged_with_the_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.problems"):
        response = await client.get("/test/boom", headers={"X-Request-Id": "req-500"})

    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-500"
    assert SECRET_ID not in response.text
    assert "req-500" in caplog.text
    assert "RuntimeError" in caplog.text
    assert SECRET_ID not in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("query", "challenge"),
    [("", "Bearer"), ("?token=x", 'Bearer error="invalid_token"')],
)
async def test_invalid_token_carries_a_bearer_challenge(
    client: httpx.AsyncClient, query: str, challenge: str
) -> None:
    response = await client.get("/test/unauthenticated" + query)

    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize("offered", ["abc", "A.b_c-9", "x" * 64])
async def test_a_well_formed_request_id_is_kept(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/nothing", headers={"X-Request-Id": offered})

    assert response.headers["x-request-id"] == offered
    assert response.json()["request_id"] == offered


@pytest.mark.parametrize(
    "offered", [None, b"", b"has space", b"x" * 65, b"semi;colon", "ünïcode".encode(), b"a\tb", b"abc\n"]
)
async def test_any_other_request_id_is_replaced(client: httpx.AsyncClient, offered: bytes | None) -> None:
    headers: dict[bytes, bytes] = {} if offered is None else {b"X-Request-Id": offered}

    response = await client.get("/healthz", headers=headers)

    generated = response.headers["x-request-id"]
    assert generated.encode() != offered
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", generated)


async def test_request_ids_are_unique(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(20)}

    assert len(ids) == 20


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/healthz", 200), ("GET", "/nothing", 404), ("GET", "/test/boom", 500), ("PUT", "/readyz", 405)],
)
async def test_security_headers_on_every_answer(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)

    assert response.status_code == status
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "strict-transport-security" not in response.headers
    assert "x-request-id" in response.headers


async def test_hsts_only_over_https(app: FastAPI) -> None:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://gateway.example") as client,
    ):
        response = await client.get("/healthz")

    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_docs_page_gets_a_csp_it_can_render_with(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    spec = await client.get("/openapi.json")

    assert docs.status_code == 200
    assert "script-src" in docs.headers["content-security-policy"]
    assert spec.headers["content-security-policy"] == "default-src 'none'"


async def test_body_within_the_cap_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/raw", content=b"x" * BODY_CAP)

    assert response.status_code == 200
    assert response.json() == {"received": BODY_CAP}


async def test_declared_length_over_the_cap_is_refused_unread(client: httpx.AsyncClient) -> None:
    sent: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        sent.append(b"x" * (BODY_CAP + 1))
        yield sent[-1]

    response = await client.post("/test/raw", content=body(), headers={"Content-Length": str(BODY_CAP + 1)})

    body_json = assert_problem(response, 413, "payload_too_large")
    assert str(BODY_CAP) in body_json["detail"]
    assert sent == []


async def test_chunked_body_over_the_cap_is_refused_while_streaming(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(BODY_CAP // 16 + 1):
            yield b"x" * 16

    response = await client.post("/test/raw", content=chunks())

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(response, 413, "payload_too_large")
    assert response.headers["content-security-policy"] == "default-src 'none'"


async def test_chunked_body_over_the_cap_never_reaches_validation(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"personal_id": "'
        yield b"9" * BODY_CAP

    response = await client.post("/test/echo", content=chunks(), headers={"content-type": "application/json"})

    assert_problem(response, 413, "payload_too_large")


def test_openapi_documents_problems_not_fastapi_validation_errors(app: FastAPI) -> None:
    document = app.openapi()

    unprocessable = document["paths"]["/test/echo"]["post"]["responses"]["422"]
    assert list(unprocessable["content"]) == ["application/problem+json"]
    assert unprocessable["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    # app.openapi adds an example per code the response may carry
    assert set(unprocessable["content"]["application/problem+json"]["examples"]) == {"validation_failed"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    not_ready = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert list(not_ready) == ["application/problem+json"]
