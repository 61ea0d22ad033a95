"""Malformed JSON is 422 ``validation_failed`` (``json_invalid``) on every route that takes a JSON body, after
authentication (docs/contract.md, "Statuses"; docs/security.md).

The routes are enumerated from the app itself, so a route added later is checked without anyone remembering
to list it here. Before this test, the routes whose body members are all optional answered a malformed body as if it were
an empty one: the audit search and export with 200 and every event (no filter), an administrator's
``PATCH /v1/admin/clients/{client_id}`` with 200 (an update that changed nothing).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from tests.harness import PURPOSE, Client, Gateway

MALFORMED = (b'{"a":', b'{"personal_id": "0520', b"[1, 2", b"\xff\xfe\x00")
BODY_METHODS = {"post", "put", "patch"}
UNKNOWN_CONFIRMATION = "00000000-0000-4000-8000-000000000000"
WANTED = (
    401,
    422,
    "validation_failed",
    [{"loc": ["body"], "code": "json_invalid", "message": "Malformed JSON."}],
)


def json_body_routes(app: FastAPI) -> list[tuple[str, str, frozenset[str]]]:
    """(method, path, scopes any of which the route accepts) of every route that takes a JSON body, as the
    app's OpenAPI document (generated from the routes themselves) declares them."""
    document: dict[str, Any] = app.openapi()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if method in BODY_METHODS and "application/json" in content:
                scopes = frozenset(
                    scope
                    for requirement in operation.get("security", [])
                    for scope in requirement.get("OAuth2", [])
                )
                found.append((method.upper(), path, scopes))
    return sorted(found)


def routes_with_a_body(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route that declares a body, read from the routes themselves: a route left out
    of the OpenAPI document is not left out of this test."""
    found: set[tuple[str, str]] = set()
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.body_field is not None:
            found.update(
                (method, route.path) for method in (route.methods or set()) & {"POST", "PUT", "PATCH"}
            )
    return found


@pytest.fixture
async def gateway(app: FastAPI, client: httpx.AsyncClient) -> Gateway:
    return Gateway(app, client, "embedded")


async def clients_by_scope(gateway: Gateway) -> dict[str, Client]:
    citizen = await gateway.register()
    auditor = await gateway.register(scopes=("audit.read",), fields=(), provinces=(), purposes=())
    admin = await gateway.register(scopes=("admin",), fields=(), provinces=(), purposes=())
    analyst = await gateway.register(scopes=("stats.read",), fields=())
    confirmer = await gateway.register(scopes=("citizen.confirm",))
    return {
        "stats.read": analyst,
        "citizen.confirm": confirmer,
        "citizen.verify": citizen,
        "citizen.read": citizen,
        "household.read": citizen,
        "audit.read": auditor,
        "audit.subject_report": auditor,
        "admin": admin,
    }


async def test_every_route_with_a_json_body_answers_malformed_json_with_422_after_the_token(
    app: FastAPI, gateway: Gateway
) -> None:
    by_scope = await clients_by_scope(gateway)
    routes = json_body_routes(app)
    assert {(method, path) for method, path, _ in routes} == routes_with_a_body(app)
    paths = {path for _, path, _ in routes}
    # Not vacuous: the routes this was found on, and one of each family.
    assert {
        "/v1/audit/events/search",
        "/v1/audit/export",
        "/v1/audit/subject-report",
        "/v1/citizens/verify",
        "/v1/citizens/verify/batch",
        "/v1/citizens/lookup",
        "/v1/citizens/household",
        "/v1/statistics/population",
        "/v1/confirmations",
        "/v1/confirmations/{confirmation_id}/complete",
        "/v1/admin/clients",
        "/v1/admin/clients/{client_id}/grant",
    } <= paths
    failures: list[str] = []
    for method, path, scopes in routes:
        assert scopes, f"{method} {path} takes a body but names no scope"
        known = [by_scope[scope] for scope in sorted(scopes) if scope in by_scope]
        assert known, f"{method} {path}: none of its scopes {sorted(scopes)} has a client in this test"
        client = known[0]
        url = re.sub(r"\{client_id\}", by_scope["citizen.read"].client_id, path)  # an existing client
        url = url.replace("{code}", "CT01")  # a form code (malformed JSON is refused before it is looked up)
        url = url.replace("{confirmation_id}", UNKNOWN_CONFIRMATION)  # likewise refused before the look-up
        assert "{" not in url, f"{path}: a path parameter this test does not fill in"
        json_type = {"Content-Type": "application/json", "X-Purpose": PURPOSE}
        for content in MALFORMED:
            anonymous = await gateway.http.request(method, url, content=content, headers=json_type)
            answer = await gateway.http.request(
                method,
                url,
                content=content,
                headers={**json_type, "Authorization": f"Bearer {client.token}"},
            )
            problem = answer.json() if answer.headers["content-type"] == "application/problem+json" else {}
            seen = (anonymous.status_code, answer.status_code, problem.get("code"), problem.get("errors"))
            if seen != WANTED:
                failures.append(f"{method} {path} {content!r}: {seen}")
    assert failures == []
