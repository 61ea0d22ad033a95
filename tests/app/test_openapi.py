"""The published contract (`openapi/gateway.json`) is a valid OpenAPI document a portal developer can work from
(docs/contract.md, section 17): examples everywhere, required headers, response headers, scope alternatives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from app.openapi import error_classes

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "gateway.json"
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONTRACT.read_text(encoding="utf-8"))
    return loaded


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_it_validates(document: dict[str, Any]) -> None:
    validate(document)


def test_every_operation_has_an_example(document: dict[str, Any]) -> None:
    missing = [f"{m} {p}" for m, p, op in operations(document) if '"example' not in json.dumps(op)]
    assert missing == []


def test_every_problem_code_has_an_example(document: dict[str, Any]) -> None:
    examples = document["components"]["examples"]
    for code, error in error_classes().items():
        value = examples[f"problem_{code}"]["value"]
        assert (value["code"], value["status"]) == (code, error.status)
    # and the problems an operation lists are exemplified on the operation itself
    verify = document["paths"]["/v1/citizens/verify"]["post"]["responses"]
    assert {"insufficient_scope", "purpose_not_allowed"} <= set(
        verify["403"]["content"]["application/problem+json"]["examples"]
    )


def test_the_citizen_record_household_and_batch_are_typed(document: dict[str, Any]) -> None:
    paths = document["paths"]
    lookup = paths["/v1/citizens/lookup"]["post"]["responses"]["200"]["content"]["application/json"]
    schema = document["components"]["schemas"][lookup["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"personal_id", "full_name", "current_address", "id_cards", "relatives", "_meta"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
    for path in ("/v1/citizens/household", "/v1/citizens/verify/batch", "/v1/citizens/verify"):
        assert "$ref" in paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]


def test_required_and_response_headers(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "X-Purpose":
                assert parameter["required"] is True, path
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert "X-Request-Id" in headers, (method, path, status)
            if status in ("429", "503"):
                assert "Retry-After" in headers, (method, path, status)
            if status == "401":
                assert "WWW-Authenticate" in headers, (method, path, status)
    verify = document["paths"]["/v1/citizens/verify"]["post"]
    assert any(p["name"] == "X-Purpose" and p["required"] for p in verify["parameters"])


def test_servers_description_and_tags_in_both_languages(document: dict[str, Any]) -> None:
    assert document["servers"]
    description = document["info"]["description"]
    assert "Cổng kết nối" in description
    assert "lets provincial systems" in description
    used = {tag for _, _, op in operations(document) for tag in op.get("tags", [])}
    described = {tag["name"]: tag["description"] for tag in document["tags"]}
    assert used <= set(described)
    assert all(" / " in text for text in described.values())  # Vietnamese / English


def test_alternative_scopes_are_alternative_requirements(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for requirement in operation.get("security", []):
            for scopes in requirement.values():
                assert len(scopes) <= 1, (method, path, requirement)
    metrics = document["paths"]["/metrics"]["get"]["security"]
    assert {"OAuth2": ["metrics.read"]} in metrics
    assert {} in metrics
