"""``openapi/csdlqg.json`` is generated from the code: drift check, CLI export, and what it must describe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mock_csdlqg.app import openapi_document
from mock_csdlqg.cli import cli
from mock_csdlqg.faults import FAULT_HEADER, is_faultable
from mock_csdlqg.middleware import requires_key
from tests.harness import mock_settings
from tests.mock_csdlqg.conftest import open_client

PUBLISHED = Path(__file__).resolve().parents[2] / "openapi" / "csdlqg.json"
METHODS = {"get", "put", "post", "delete", "patch"}


def serialised(document: dict[str, Any]) -> str:
    """Exactly what ``mock-csdlqg openapi export`` writes."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_published_document_is_the_generated_one() -> None:
    assert PUBLISHED.read_text(encoding="utf-8") == serialised(openapi_document()), (
        "openapi/csdlqg.json is stale: run `mock-csdlqg openapi export`"
    )


def test_the_cli_export_writes_the_same(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "csdlqg.json"
    result = CliRunner().invoke(cli, ["openapi", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == PUBLISHED.read_text(encoding="utf-8")


async def test_the_served_document_is_the_published_one(sqlite_url: str) -> None:
    for faults in (True, False):
        async with open_client(mock_settings(sqlite_url, faults=faults)) as client:
            response = await client.get("/openapi.json")
            assert response.status_code == 200
            assert response.json() == openapi_document()


def test_every_route_of_the_contract_is_described() -> None:
    described = {(path, method) for path, method, _ in operations(openapi_document())}
    assert described == {
        ("/api/v1/residents/lookup", "post"),
        ("/api/v1/residents/batch-get", "post"),
        ("/api/v1/households/{maHo}", "get"),
        ("/api/v1/statistics/population", "post"),
        ("/api/v1/residents/otp/send", "post"),
        ("/api/v1/residents/otp/verify", "post"),
        ("/api/v1/health", "get"),
        ("/healthz", "get"),
        ("/_mock/personas", "get"),
        ("/_mock/sample", "get"),
        ("/_mock/faults", "get"),
        ("/_mock/faults", "put"),
        ("/_mock/faults", "delete"),
        ("/_mock/outbox", "get"),
    }


def test_security_and_fault_header_follow_what_the_middleware_enforces() -> None:
    document = openapi_document()
    assert document["components"]["securitySchemes"] == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "The key the mock was started with (MOCK_CSDLQG_API_KEY).",
        }
    }
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        keyed = requires_key(path)
        assert (operation.get("security") == [{"ApiKey": []}]) is keyed, where
        assert ("401" in operation["responses"]) is keyed, where
        fault_headers = [p for p in operation.get("parameters", []) if p["name"] == FAULT_HEADER]
        assert len(fault_headers) == int(is_faultable(path)), where
        assert ("default" in operation["responses"]) is is_faultable(path), where


def test_answers_are_described_with_the_wire_models_and_problems() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {
        "CongDan",
        "HoGiaDinh",
        "BatchGetResponse",
        "LookupRequest",
        "BatchGetRequest",
        "Problem",
    } <= schemas.keys()
    assert set(schemas["LookupRequest"]["properties"]) == {"soDinhDanh"}
    assert schemas["LookupRequest"]["additionalProperties"] is False
    ok = {
        ("/api/v1/residents/lookup", "post"): "CongDan",
        ("/api/v1/residents/batch-get", "post"): "BatchGetResponse",
        ("/api/v1/households/{maHo}", "get"): "HoGiaDinh",
        ("/api/v1/statistics/population", "post"): "ThongKeResponse",
        ("/_mock/personas", "get"): "PersonaList",
        ("/_mock/sample", "get"): "SampleList",
        ("/_mock/faults", "put"): "FaultMode",
    }
    for (path, method), model in ok.items():
        answer = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{model}"}, path
    bodies = {
        "/api/v1/residents/lookup": "LookupRequest",
        "/api/v1/residents/batch-get": "BatchGetRequest",
        "/api/v1/statistics/population": "ThongKeRequest",
    }
    for path, model in bodies.items():
        body = document["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) or status == "default":
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_every_reference_resolves() -> None:
    document = openapi_document()
    text = json.dumps(document)
    names = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert names <= document["components"]["schemas"].keys()


def test_openapi_document_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_CSDLQG_MAX_BATCH", "7")
    monkeypatch.setenv("MOCK_CSDLQG_DATABASE_URL", "postgresql://nowhere/none")
    assert serialised(openapi_document()) == PUBLISHED.read_text(encoding="utf-8")
