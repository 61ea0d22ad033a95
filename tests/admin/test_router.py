"""Every `/v1/admin` endpoint: what it answers, what it refuses, and the audit event each change leaves."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.auth.context import SCOPES
from app.auth.models import ClientGrant
from app.auth.service import expand_grant
from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from tests.admin.conftest import Admin
from tests.harness import ISSUER, PURPOSE, Gateway, Registered


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str = "k1") -> dict[str, Any]:
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


def error_codes(body: dict[str, Any]) -> list[tuple[list[str | int], str]]:
    return [(item["loc"], item["code"]) for item in body["errors"]]


# clients


async def test_create_client_shows_the_secret_once(admin: Admin) -> None:
    response = await admin.post(
        "/clients",
        {"name": "Cổng DVC tỉnh Gia Lai", "description": "Một cửa", "contact_email": "a@gialai.gov.vn"},
    )

    assert response.status_code == 201
    created = response.json()
    assert created["client_id"].startswith("c_")
    assert len(created["client_secret"]) >= 43
    assert response.headers["location"] == f"/v1/admin/clients/{created['client_id']}"
    assert created["status"] == "active"
    read = await admin.get(f"/clients/{created['client_id']}")
    listed = await admin.get("/clients")
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert read.json() == {k: v for k, v in created.items() if k != "client_secret"}
    assert created["client_secret"] not in read.text + listed.text
    grant = (await admin.get(f"/clients/{created['client_id']}/grant")).json()
    assert (grant["scopes"], grant["fields"], grant["provinces"], grant["purposes"]) == ([], [], [], [])
    assert (grant["rate_limit_per_minute"], grant["distinct_subjects_per_day"]) == (600, 5000)


async def test_list_clients_pages_with_a_cursor(admin: Admin) -> None:
    made = {(await admin.new_client(f"Cổng {n}")).client_id for n in range(4)}

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await admin.get("/clients", **params)).json()
        pages += 1
        seen += [item["client_id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break

    assert pages == 3  # the admin and four portals, two at a time
    assert seen == sorted(seen)
    assert set(seen) == made | {admin.client_id}
    assert (await admin.get("/clients")).json()["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"cursor": "W10"}],
    ids=["zero", "over-1000", "not-int", "garbage-cursor", "empty-list-cursor"],
)
@pytest.mark.parametrize("path", ["/clients", "/purposes", "/keys", "/changes"])
async def test_list_parameters_are_validated(admin: Admin, path: str, params: dict[str, Any]) -> None:
    response = await admin.get(path, **params)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed"


async def test_unknown_client_is_404_on_every_client_route(admin: Admin) -> None:
    for method, path, body in [
        ("GET", "/clients/c_nobody", None),
        ("PATCH", "/clients/c_nobody", {"name": "x"}),
        ("POST", "/clients/c_nobody/secret", None),
        ("PUT", "/clients/c_nobody/jwks", {"keys": [public_jwk(ec_key())]}),
        ("GET", "/clients/c_nobody/grant", None),
        ("PUT", "/clients/c_nobody/grant", {"scopes": ["citizen.verify"]}),
    ]:
        response = await admin.request(method, path, body)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"


async def test_edit_suspend_and_reinstate(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    await admin.add_purpose()
    await admin.put_grant(portal.client_id, scopes=["citizen.verify"], purposes=[PURPOSE])
    token = await gateway.token(portal)

    edited = await admin.patch(
        f"/clients/{portal.client_id}",
        {"name": "Cổng DVC Gia Lai (mới)", "contact_email": "it@gialai.gov.vn"},
    )
    suspended = await admin.patch(f"/clients/{portal.client_id}", {"status": "suspended"})
    after_suspension = await gateway.http.post(
        "/v1/citizens/verify",
        json={"personal_id": "052068000108"},
        headers={"Authorization": f"Bearer {token}"},
    )
    no_token = await gateway.token_response(portal)
    reinstated = await admin.patch(f"/clients/{portal.client_id}", {"status": "active"})

    assert edited.status_code == 200
    assert edited.json()["name"] == "Cổng DVC Gia Lai (mới)"
    assert edited.json()["contact_email"] == "it@gialai.gov.vn"
    assert suspended.json()["status"] == "suspended"
    assert after_suspension.status_code == 401
    assert after_suspension.json()["code"] == "invalid_token"
    assert no_token.status_code == 401
    assert no_token.json()["error"] == "invalid_client"
    assert reinstated.status_code == 200
    assert reinstated.json()["status"] == "active"
    assert (await gateway.token_response(portal)).status_code == 200


async def test_an_empty_patch_changes_nothing_and_writes_no_event(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    before = len(await gateway.events("admin."))

    response = await admin.patch(f"/clients/{portal.client_id}", {})

    assert response.status_code == 200
    assert len(await gateway.events("admin.")) == before


async def test_rotate_secret_stops_the_old_one(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    await admin.put_grant(portal.client_id, scopes=["citizen.verify"])

    response = await admin.post(f"/clients/{portal.client_id}/secret")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"client_id", "client_secret", "previous_secret_until"}
    assert body["previous_secret_until"] is None  # no grace asked for: the old secret stops at once
    assert body["client_id"] == portal.client_id
    assert body["client_secret"] != portal.client_secret
    old = await gateway.token_response(portal)
    assert old.status_code == 401
    assert old.json()["error"] == "invalid_client"
    assert (
        await gateway.token_response(Registered(portal.client_id, body["client_secret"]))
    ).status_code == 200
    assert body["client_secret"] not in (await admin.get(f"/clients/{portal.client_id}")).text


async def test_jwks_registration_enables_private_key_jwt(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    await admin.put_grant(portal.client_id, scopes=["citizen.verify"])
    key = ec_key()

    response = await admin.put(f"/clients/{portal.client_id}/jwks", {"keys": [public_jwk(key, "portal-1")]})

    assert response.status_code == 200
    assert [k["kid"] for k in response.json()["jwks"]["keys"]] == ["portal-1"]
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": portal.client_id,
            "sub": portal.client_id,
            "aud": ISSUER + "/oauth2/token",
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        },
        key,
        algorithm="ES256",
        headers={"kid": "portal-1"},
    )
    token = await gateway.http.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert token.status_code == 200, token.text


async def test_jwks_refuses_a_private_key_without_echoing_it(admin: Admin) -> None:
    portal = await admin.new_client()
    private = jwt.algorithms.ECAlgorithm.to_jwk(ec_key(), as_dict=True)

    response = await admin.put(f"/clients/{portal.client_id}/jwks", {"keys": [private]})

    assert response.status_code == 422
    assert private["d"] not in response.text
    assert (await admin.get(f"/clients/{portal.client_id}")).json()["jwks"] is None


# grants


async def test_grant_read_and_replace(admin: Admin) -> None:
    portal = await admin.new_client()
    await admin.add_purpose()
    grant = {
        "scopes": ["citizen.read", "citizen.verify"],
        "fields": ["*", "ethnicity"],
        "provinces": ["52", "79"],
        "purposes": [PURPOSE],
        "verify_details": True,
        "rate_limit_per_minute": 120,
        "distinct_subjects_per_day": 300,
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2099-01-01T00:00:00+07:00",
    }

    replaced = await admin.put_grant(portal.client_id, **grant)
    read = await admin.get(f"/clients/{portal.client_id}/grant")

    assert replaced.status_code == 200
    assert read.json() == replaced.json()
    body = read.json()
    assert body["client_id"] == portal.client_id
    assert body["scopes"] == ["citizen.verify", "citizen.read"]  # the catalogue's order
    assert body["fields"] == ["*", "ethnicity"]
    assert body["provinces"] == ["52", "79"]
    assert body["valid_until"].startswith("2098-12-31T17:00:00")


async def test_a_star_grant_reaches_sensitive_fields_only_by_name(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    await admin.put_grant(portal.client_id, scopes=["citizen.read"], fields=["*"], provinces=["*"])
    async with gateway.state.sessionmaker() as session:
        star = expand_grant(await session.get_one(ClientGrant, portal.client_id))
    await admin.put_grant(
        portal.client_id, scopes=["citizen.read"], fields=["*", "ethnicity"], provinces=["*"]
    )
    async with gateway.state.sessionmaker() as session:
        named = expand_grant(await session.get_one(ClientGrant, portal.client_id))

    assert not star.fields & SENSITIVE_FIELDS
    assert named.fields & SENSITIVE_FIELDS == {"ethnicity"}
    assert star.provinces is None


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        ({"scopes": ["citizen.write"]}, [(["scopes", 0], "unknown_scope")]),
        ({"fields": ["salary"]}, [(["fields", 0], "unknown_field")]),
        ({"fields": ["personal_id"]}, [(["fields", 0], "personal_id_not_grantable")]),
        ({"provinces": ["079"]}, [(["provinces", 0], "invalid_province")]),
        ({"provinces": ["99"]}, [(["provinces", 0], "invalid_province")]),
        ({"provinces": ["*", "52"]}, [(["provinces"], "invalid_province")]),
        ({"purposes": ["NOT-REGISTERED"]}, [(["purposes", 0], "unknown_purpose")]),
        ({"scopes": ["admin", "audit.read"]}, [(["scopes"], "separation_of_duties")]),
        ({"scopes": ["admin", "citizen.verify"]}, [(["scopes"], "separation_of_duties")]),
        ({"scopes": ["audit.read", "citizen.read"]}, [(["scopes"], "separation_of_duties")]),
        ({"scopes": ["audit.read", "household.read"]}, [(["scopes"], "separation_of_duties")]),
        ({"rate_limit_per_minute": 0}, [(["body", "rate_limit_per_minute"], "greater_than")]),
        ({"valid_until": "2026-01-01T00:00:00"}, [(["body", "valid_until"], "timezone_aware")]),
        ({"valid_from": "0001-01-01T00:00:00+14:00"}, [(["body", "valid_from"], "datetime_out_of_range")]),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
async def test_an_invalid_grant_is_422_and_changes_nothing(
    admin: Admin, gateway: Gateway, grant: dict[str, Any], expected: list[tuple[list[str | int], str]]
) -> None:
    portal = await admin.new_client()
    before = (await admin.get(f"/clients/{portal.client_id}/grant")).json()
    events = len(await gateway.events("admin."))

    response = await admin.put_grant(portal.client_id, **grant)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    assert error_codes(response.json()) == expected
    submitted = [v for value in grant.values() for v in (value if isinstance(value, list) else [value])]
    for value in submitted:
        if isinstance(value, str) and value not in {"*", *SCOPES, *RESIDENT_FIELDS}:
            assert value not in json.dumps(response.json()["errors"])  # never echoes the input
    assert (await admin.get(f"/clients/{portal.client_id}/grant")).json() == before
    assert len(await gateway.events("admin.")) == events


async def test_audit_scopes_may_share_a_grant(admin: Admin) -> None:
    auditor = await admin.new_client("Thanh tra")

    response = await admin.put_grant(auditor.client_id, scopes=["audit.read", "audit.subject_report"])

    assert response.status_code == 200


# purposes


async def test_purposes_register_list_and_conflict(admin: Admin) -> None:
    codes = ["1.001234.000.00.00.H12", "2.000001", "CAP_CCCD"]
    for code in reversed(codes):
        await admin.add_purpose(code)

    again = await admin.post("/purposes", {"code": codes[0], "title": "Khác", "legal_basis": "Khác"})
    bad_code = await admin.post("/purposes", {"code": "có dấu", "title": "T", "legal_basis": "L"})
    first = (await admin.get("/purposes", limit=2)).json()
    second = (await admin.get("/purposes", limit=2, cursor=first["next_cursor"])).json()

    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert bad_code.status_code == 422
    assert [p["code"] for p in first["items"] + second["items"]] == sorted(codes)
    assert second["next_cursor"] is None
    assert first["items"][0]["title"] == "Đăng ký thường trú"
    assert first["items"][0]["legal_basis"] == "Luật Cư trú 2020, Điều 20"


async def test_purpose_title_is_stored_in_nfc(admin: Admin) -> None:
    nfd = "Đăng ký thường trú".encode().decode()
    import unicodedata

    response = await admin.post(
        "/purposes", {"code": "NFC", "title": unicodedata.normalize("NFD", nfd), "legal_basis": "Luật"}
    )

    assert response.json()["title"] == unicodedata.normalize("NFC", nfd)


# signing keys


async def test_key_rotation_keeps_the_old_key_published(admin: Admin, gateway: Gateway) -> None:
    before = {key["kid"] for key in (await gateway.http.get("/.well-known/jwks.json")).json()["keys"]}

    rotated = await admin.post("/keys/rotate")
    after = {key["kid"] for key in (await gateway.http.get("/.well-known/jwks.json")).json()["keys"]}
    listed = (await admin.get("/keys")).json()["items"]
    new_token = await gateway.token(admin.client)

    assert rotated.status_code == 200
    kid = rotated.json()["kid"]
    assert rotated.json()["active"] is True
    assert after == before | {kid}
    assert [k["kid"] for k in listed if k["active"]] == [kid]
    assert {k["kid"] for k in listed} <= after  # the JWKS may also publish the audit checkpoint key
    assert len(listed) == 2
    assert jwt.get_unverified_header(new_token)["kid"] == kid
    # The admin's token, signed by the old key, keeps working until it expires.
    assert (await admin.get("/keys")).status_code == 200
    assert all(set(k) == {"kid", "alg", "active", "created_at", "retired_at"} for k in listed)


# audit


async def test_every_change_is_audited_with_before_and_after_and_no_secret(
    admin: Admin, gateway: Gateway
) -> None:
    request_id = "req-admin-audit-1"
    headers = {"X-Request-Id": request_id}
    created = await admin.request("POST", "/clients", {"name": "Cổng"}, headers=headers)
    client_id = created.json()["client_id"]
    secrets_seen = [admin.client.client_secret, created.json()["client_secret"]]
    await admin.add_purpose()
    await admin.request("PATCH", f"/clients/{client_id}", {"description": "Một cửa"}, headers=headers)
    await admin.put_grant(client_id, scopes=["citizen.verify"], purposes=[PURPOSE])
    await admin.put(f"/clients/{client_id}/jwks", {"keys": [public_jwk(ec_key())]})
    rotated = await admin.post(f"/clients/{client_id}/secret")
    secrets_seen.append(rotated.json()["client_secret"])
    await admin.patch(f"/clients/{client_id}", {"status": "suspended"})
    await admin.post("/keys/rotate")

    events = [e for e in await gateway.events("admin.") if e.actor == admin.client_id]

    assert [e.action for e in events] == [
        "admin.client.create",
        "admin.purpose.create",
        "admin.client.update",
        "admin.grant.replace",
        "admin.client.jwks",
        "admin.client.secret_rotate",
        "admin.client.update",
        "admin.key.rotate",
    ]
    for event in events:
        assert event.outcome == "allowed"
        assert event.detail is not None
        assert set(event.detail) >= {"before", "after"}
        text = json.dumps(event.detail)
        assert "secret_hash" not in text
        for secret in secrets_seen:
            assert secret not in text
    assert events[0].request_id == request_id
    assert events[2].request_id == request_id
    assert events[0].client_id == client_id
    grant_event = events[3]
    assert grant_event.detail is not None
    assert grant_event.detail["before"]["scopes"] == []
    assert grant_event.detail["after"]["scopes"] == ["citizen.verify"]
    assert events[6].detail == {
        "before": {"name": "Cổng", "description": "Một cửa", "contact_email": None, "status": "active"},
        "after": {"name": "Cổng", "description": "Một cửa", "contact_email": None, "status": "suspended"},
    }


async def test_a_suspension_s_reason_is_recorded_in_its_event(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()
    too_long = await admin.patch(f"/clients/{portal.client_id}", {"status": "suspended", "reason": "x" * 501})
    suspended = await admin.patch(
        f"/clients/{portal.client_id}", {"status": "suspended", "reason": "Công văn 15/CV-CA"}
    )

    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["loc"][-1] == "reason"
    assert suspended.status_code == 200
    assert "reason" not in suspended.json()  # kept in the log, not on the client
    event = (await gateway.events("admin.client.update"))[-1]
    assert event.detail is not None
    assert event.detail["reason"] == "Công văn 15/CV-CA"
    assert event.detail["after"]["status"] == "suspended"
