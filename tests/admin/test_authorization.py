"""Function-level authorisation and mass assignment on the admin API.

Every `/v1/admin` route is found from the app itself, so a route added later is covered without editing
this file: a portal's token and an auditor's token get 403 there, no token gets 401, and nothing changes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from tests.admin.conftest import Admin
from tests.harness import Gateway, Registered

ADMIN_PREFIX = "/v1/admin"


def admin_routes(gateway: Gateway) -> list[tuple[str, str]]:
    routes = [
        (method, ctx.path)
        for ctx in iter_route_contexts(gateway.app.routes)
        if isinstance(ctx.original_route, APIRoute) and ctx.path and ctx.path.startswith(ADMIN_PREFIX)
        for method in sorted(ctx.methods or ())
    ]
    assert len(routes) >= 16
    return routes


def concrete(path: str, client_id: str) -> str:
    return re.sub(
        r"\{change_id\}", "00000000-0000-4000-8000-000000000000", path.replace("{client_id}", client_id)
    )


async def test_every_admin_route_is_documented_as_the_contract_names_it(gateway: Gateway) -> None:
    routes = set(admin_routes(gateway))

    assert {
        ("POST", "/v1/admin/clients"),
        ("GET", "/v1/admin/clients"),
        ("GET", "/v1/admin/clients/{client_id}"),
        ("PATCH", "/v1/admin/clients/{client_id}"),
        ("POST", "/v1/admin/clients/{client_id}/secret"),
        ("PUT", "/v1/admin/clients/{client_id}/jwks"),
        ("GET", "/v1/admin/clients/{client_id}/grant"),
        ("PUT", "/v1/admin/clients/{client_id}/grant"),
        ("POST", "/v1/admin/purposes"),
        ("GET", "/v1/admin/purposes"),
        ("POST", "/v1/admin/keys/rotate"),
        ("GET", "/v1/admin/changes"),
        ("POST", "/v1/admin/changes/{change_id}/approve"),
        ("POST", "/v1/admin/changes/{change_id}/reject"),
    } <= routes


@pytest.mark.parametrize(
    "grant",
    [
        {"scopes": ["citizen.verify", "citizen.read", "household.read"], "fields": ["*"], "provinces": ["*"]},
        {"scopes": ["audit.read", "audit.subject_report"]},
        {"scopes": ["audit.subject_report"]},
    ],
    ids=["portal", "auditor", "subject-report-portal"],
)
async def test_non_admin_tokens_get_403_on_every_admin_route(
    admin: Admin, gateway: Gateway, grant: dict[str, Any]
) -> None:
    victim = await admin.new_client("Nạn nhân")
    caller = await gateway.operator_client("Không phải quản trị", **grant)
    token = await gateway.token(caller)
    before = (await admin.get(f"/clients/{victim.client_id}")).json()
    events = len(await gateway.events("admin."))

    for method, path in admin_routes(gateway):
        response = await gateway.http.request(
            method,
            concrete(path, victim.client_id),
            json={"status": "active", "scopes": ["admin"]} if method in {"PUT", "PATCH", "POST"} else None,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "insufficient_scope"

    assert (await admin.get(f"/clients/{victim.client_id}")).json() == before
    assert len(await gateway.events("admin.")) == events


async def test_no_token_or_a_bad_one_gets_401_on_every_admin_route(admin: Admin, gateway: Gateway) -> None:
    for method, path in admin_routes(gateway):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await gateway.http.request(method, concrete(path, admin.client_id), headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.json()["code"] == "invalid_token"
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_admin_whose_admin_scope_is_withdrawn_is_refused_at_once(
    admin: Admin, gateway: Gateway
) -> None:
    other = await admin_client(gateway)
    other_token = await gateway.token(other)
    assert (await gateway.http.get("/v1/admin/clients", headers=bearer(other_token))).status_code == 200

    narrowed = await admin.put_grant(other.client_id, scopes=[])
    response = await gateway.http.get("/v1/admin/clients", headers=bearer(other_token))

    assert narrowed.status_code == 200
    assert response.status_code == 401


async def admin_client(gateway: Gateway) -> Registered:
    return await gateway.operator_client("Quản trị 2", scopes=["admin"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- mass assignment: unknown members are 422 and change nothing --------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/clients", {"name": "P", "client_id": "c_chosen"}),
        ("POST", "/clients", {"name": "P", "status": "suspended"}),
        ("POST", "/clients", {"name": "P", "secret_hash": "0" * 64}),
        ("POST", "/clients", {"name": "P", "scopes": ["admin"]}),
        ("PATCH", "/clients/{client_id}", {"client_id": "c_other"}),
        ("PATCH", "/clients/{client_id}", {"secret_hash": "0" * 64}),
        ("PATCH", "/clients/{client_id}", {"jwks": {"keys": []}}),
        ("PATCH", "/clients/{client_id}", {"created_at": "2020-01-01T00:00:00Z"}),
        ("PATCH", "/clients/{client_id}", {"status": "deleted"}),
        ("PUT", "/clients/{client_id}/grant", {"scopes": [], "client_id": "c_other"}),
        ("PUT", "/clients/{client_id}/grant", {"scopes": [], "updated_at": "2020-01-01T00:00:00Z"}),
        ("PUT", "/clients/{client_id}/grant", {"scope": "admin"}),
        ("PUT", "/clients/{client_id}/jwks", {"keys": [], "client_id": "c_other"}),
        (
            "POST",
            "/purposes",
            {"code": "P", "title": "T", "legal_basis": "L", "created_at": "2020-01-01T00:00:00Z"},
        ),
        ("POST", "/clients", ["name"]),
        ("PUT", "/clients/{client_id}/grant", "admin"),
    ],
)
async def test_unknown_members_are_422(
    admin: Admin, gateway: Gateway, method: str, path: str, body: Any
) -> None:
    portal = await admin.new_client()
    clients = (await admin.get("/clients")).json()
    grant = (await admin.get(f"/clients/{portal.client_id}/grant")).json()
    events = len(await gateway.events("admin."))

    response = await admin.request(method, path.replace("{client_id}", portal.client_id), body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"]
    assert "c_other" not in response.text
    assert (await admin.get("/clients")).json() == clients
    assert (await admin.get(f"/clients/{portal.client_id}/grant")).json() == grant
    assert len(await gateway.events("admin.")) == events


async def test_malformed_json_is_422(admin: Admin, gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v1/admin/clients",
        content=b'{"name": ',
        headers={**admin.headers(), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "json_invalid"


@pytest.mark.parametrize("content", [b'{"name": ', b"\xff\xfe\x00"])
async def test_a_body_that_does_not_decode_is_judged_after_the_token(
    admin: Admin, gateway: Gateway, content: bytes
) -> None:
    """Found by the schemathesis run: FastAPI decodes JSON before authentication (and says 400 for non-UTF-8)."""
    json_headers = {"Content-Type": "application/json"}
    anonymous = await gateway.http.post("/v1/admin/clients", content=content, headers=json_headers)
    with_token = await gateway.http.post(
        "/v1/admin/clients", content=content, headers={**admin.headers(), **json_headers}
    )

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "invalid_token"
    assert with_token.status_code == 422
    assert with_token.json()["code"] == "validation_failed"
    assert with_token.json()["errors"] == [
        {"loc": ["body"], "code": "json_invalid", "message": "Malformed JSON."}
    ]
