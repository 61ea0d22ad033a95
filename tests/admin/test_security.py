"""The administration holes of the security review (docs/security.md): credentials are access under four
eyes, separation of duties for the subject report, numbers and timestamps out of range, control characters,
the last administrator, purpose codes that differ only in case, and cursors that cannot be forged.

Storage is involved in each (pending changes, grants, clients, purposes), so each runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.errors import Conflict
from app.auth.models import Client
from app.auth.service import CLI_ACTOR, AuthService
from tests.admin.conftest import Admin, admin_for, two_admins
from tests.harness import ISSUER, PURPOSE, Gateway, Registered, gateway_settings, running

WIDE_GRANT: dict[str, Any] = {
    "scopes": ["citizen.read"],
    "fields": ["phone", "full_name"],
    "provinces": ["*"],
    "purposes": [PURPOSE],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated gateway database of the test's own: SQLite, then PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_database_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def plain(database_url: str) -> AsyncIterator[Gateway]:
    async with running(gateway_settings(database_url, issuer=ISSUER)) as gw:
        yield gw


@pytest.fixture
async def four_eyes(database_url: str) -> AsyncIterator[Gateway]:
    async with running(gateway_settings(database_url, issuer=ISSUER, admin={"require_approval": True})) as gw:
        yield gw


async def wide_portal(gateway: Gateway, admin: Admin) -> Registered:
    """A client that already reads phone numbers nationwide (made with the CLI's powers)."""
    await admin.add_purpose()
    return await gateway.operator_client("Cổng có quyền rộng", **WIDE_GRANT)


def public_jwk(kid: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


def codes(response: httpx.Response) -> list[str]:
    return [item["code"] for item in response.json().get("errors", [])]


# --- item 4: credentials are access --------------------------------------------------------------------------


async def test_rotating_another_clients_secret_waits_for_a_second_admin(four_eyes: Gateway) -> None:
    first, second = await two_admins(four_eyes)
    portal = await wide_portal(four_eyes, first)

    requested = await first.post(f"/clients/{portal.client_id}/secret")
    old_secret_still_works = await four_eyes.token_response(portal)
    self_approved = await first.post(f"/changes/{requested.json()['change_id']}/approve")
    approved = await second.post(f"/changes/{requested.json()['change_id']}/approve")

    assert requested.status_code == 202
    assert "client_secret" not in requested.json()
    assert requested.json()["action"] == "admin.client.secret_rotate"
    assert requested.json()["widens"] == ["client_secret"]
    assert old_secret_still_works.status_code == 200
    assert self_approved.status_code == 403
    assert approved.status_code == 200
    new_secret = approved.json()["client_secret"]
    assert approved.json()["client_id"] == portal.client_id
    assert (await four_eyes.token_response(portal)).status_code == 401
    assert (await four_eyes.token_response(Registered(portal.client_id, new_secret))).status_code == 200
    actions = [(e.action, e.actor) for e in await four_eyes.events("admin.c")]
    assert actions[-3:] == [
        ("admin.change.request", first.client_id),
        ("admin.change.approve", second.client_id),
        ("admin.client.secret_rotate", second.client_id),
    ]
    assert all(new_secret not in json.dumps(e.detail) for e in await four_eyes.events("admin."))


async def test_replacing_another_clients_keys_waits_for_a_second_admin(four_eyes: Gateway) -> None:
    first, second = await two_admins(four_eyes)
    portal = await wide_portal(four_eyes, first)
    jwks = {"keys": [public_jwk("attacker-1")]}

    requested = await first.put(f"/clients/{portal.client_id}/jwks", jwks)
    while_pending = (await first.get(f"/clients/{portal.client_id}")).json()
    invalid = await first.put(
        f"/clients/{portal.client_id}/jwks", {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
    )
    approved = await second.post(f"/changes/{requested.json()['change_id']}/approve")

    assert requested.status_code == 202
    assert requested.json()["action"] == "admin.client.jwks"
    assert requested.json()["widens"] == ["jwks"]
    assert while_pending["jwks"] is None
    assert invalid.status_code == 422  # refused at once, never a pending change
    assert approved.status_code == 200
    assert [k["kid"] for k in approved.json()["jwks"]["keys"]] == ["attacker-1"]
    pending = (await second.get("/changes", status="pending")).json()["items"]
    assert pending == []


async def test_keys_changed_since_the_request_make_the_approval_409(four_eyes: Gateway) -> None:
    first, second = await two_admins(four_eyes)
    portal = await wide_portal(four_eyes, first)
    change_id = (await first.put(f"/clients/{portal.client_id}/jwks", {"keys": [public_jwk("a")]})).json()[
        "change_id"
    ]
    async with four_eyes.state.sessionmaker() as session:  # the operator replaces them meanwhile
        await AuthService(
            session, four_eyes.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR)
        ).set_jwks(portal.client_id, {"keys": [public_jwk("b")]})
        await session.commit()

    approved = await second.post(f"/changes/{change_id}/approve")

    assert approved.status_code == 409
    assert [k["kid"] for k in (await first.get(f"/clients/{portal.client_id}")).json()["jwks"]["keys"]] == [
        "b"
    ]


async def test_own_credentials_and_the_cli_apply_at_once(four_eyes: Gateway) -> None:
    first, _ = await two_admins(four_eyes)

    own = await first.post(f"/clients/{first.client_id}/secret")
    own_keys = await first.put(f"/clients/{first.client_id}/jwks", {"keys": [public_jwk("mine")]})

    assert own.status_code == 200
    assert own.json()["client_secret"]
    assert own_keys.status_code == 200


async def test_without_approval_rotation_applies_at_once(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    portal = await wide_portal(plain, admin)

    rotated = await admin.post(f"/clients/{portal.client_id}/secret")

    assert rotated.status_code == 200
    assert (await plain.token_response(portal)).status_code == 401


# --- item 6: the subject report is the audit side's -----------------------------------------------------------


@pytest.mark.parametrize(
    "scopes",
    [
        ["admin", "audit.subject_report"],
        ["citizen.read", "audit.subject_report"],
        ["citizen.verify", "audit.subject_report"],
        ["household.read", "audit.subject_report"],
    ],
)
async def test_subject_report_never_shares_a_grant_with_admin_or_citizen_scopes(
    plain: Gateway, scopes: list[str]
) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    target = admin.client_id if "admin" in scopes else (await admin.new_client()).client_id

    response = await admin.put_grant(target, scopes=scopes)

    assert response.status_code == 422
    assert "separation_of_duties" in codes(response)
    assert "audit.subject_report" not in (await admin.get(f"/clients/{target}/grant")).json()["scopes"]


async def test_subject_report_may_share_a_grant_with_audit_read(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    portal = await admin.new_client()

    response = await admin.put_grant(portal.client_id, scopes=["audit.read", "audit.subject_report"])

    assert response.status_code == 200


# --- item 7: numbers and timestamps out of range ---------------------------------------------------------------


@pytest.mark.parametrize(
    "member",
    [
        {"distinct_subjects_per_day": 1e18},
        {"rate_limit_per_minute": 1e30},
        {"rate_limit_per_minute": 10**12},
        {"distinct_subjects_per_day": 2**63},
        {"valid_from": "0001-01-01T00:00:00+14:00"},
        {"valid_until": "9999-12-31T23:59:59-14:00"},
        {"valid_from": "1899-12-31T23:59:59Z"},
        {"valid_until": "0005-06-01T00:00:00Z"},
    ],
)
async def test_grant_values_out_of_range_are_422(plain: Gateway, member: dict[str, Any]) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    portal = await admin.new_client()

    response = await admin.put_grant(portal.client_id, scopes=["citizen.verify"], **member)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"


async def test_the_largest_limits_are_kept(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    portal = await admin.new_client()

    response = await admin.put_grant(
        portal.client_id,
        scopes=["citizen.verify"],
        rate_limit_per_minute=1_000_000_000,
        distinct_subjects_per_day=1_000_000_000,
        valid_until="9999-12-31T00:00:00Z",
    )

    assert response.status_code == 200, response.text
    assert (await admin.get(f"/clients/{portal.client_id}/grant")).json()["rate_limit_per_minute"] == 10**9


# --- item 10: control characters, the last administrator, purpose codes, cursors -------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/clients", {"name": "Cổng\x00DVC"}),
        ("POST", "/clients", {"name": "Cổng", "description": "dòng 1\ndòng 2"}),
        ("POST", "/clients", {"name": "Cổng\x1b[31m"}),
        ("POST", "/clients", {"name": "Cổng\u0085"}),
        ("POST", "/purposes", {"code": "P.1", "title": "Tiêu đề\r", "legal_basis": "Luật"}),
        ("POST", "/purposes", {"code": "P.1", "title": "Tiêu đề", "legal_basis": "Luật\x7f"}),
    ],
)
async def test_control_characters_in_text_are_422(
    plain: Gateway, method: str, path: str, body: dict[str, Any]
) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    before = (await admin.get("/clients")).json()["items"]

    response = await admin.request(method, path, body)

    assert response.status_code == 422
    assert "control_character" in codes(response)
    assert (await admin.get("/clients")).json()["items"] == before
    assert (await admin.get("/purposes")).json()["items"] == []


async def test_control_characters_in_an_edit_or_a_grant_are_422(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    portal = await admin.new_client()

    renamed = await admin.patch(f"/clients/{portal.client_id}", {"name": "a\x00b"})
    granted = await admin.put_grant(portal.client_id, scopes=["citizen.verify\x00"])

    assert renamed.status_code == 422
    assert "control_character" in codes(renamed)
    assert granted.status_code == 422
    assert "control_character" in codes(granted)


async def test_a_client_cannot_suspend_itself(plain: Gateway) -> None:
    first, _ = await two_admins(plain)

    response = await first.patch(f"/clients/{first.client_id}", {"status": "suspended"})

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert (await first.get(f"/clients/{first.client_id}")).json()["status"] == "active"


async def test_the_last_active_admin_cannot_be_suspended_or_narrowed(plain: Gateway) -> None:
    first, second = await two_admins(plain)

    suspended_second = await first.patch(f"/clients/{second.client_id}", {"status": "suspended"})
    narrow_self = await first.put_grant(first.client_id, scopes=[])
    expire_self = await first.put_grant(first.client_id, scopes=["admin"], valid_until="2001-01-01T00:00:00Z")
    async with plain.state.sessionmaker() as session:
        service = AuthService(session, plain.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        with pytest.raises(Conflict):
            await service.set_status(first.client_id, "suspended")
        await session.rollback()
    still = await first.get(f"/clients/{first.client_id}/grant")
    reinstated = await first.patch(f"/clients/{second.client_id}", {"status": "active"})
    narrowed_now = await first.put_grant(first.client_id, scopes=[])

    assert suspended_second.status_code == 200
    assert narrow_self.status_code == 409
    assert narrow_self.json()["code"] == "conflict"
    assert expire_self.status_code == 409
    assert still.json()["scopes"] == ["admin"]
    assert reinstated.status_code == 200
    assert narrowed_now.status_code == 200  # another admin is active again


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_admins_suspending_each_other_at_once_leave_one(plain: Gateway) -> None:
    first, second = await two_admins(plain)

    answers = await asyncio.gather(
        first.patch(f"/clients/{second.client_id}", {"status": "suspended"}),
        second.patch(f"/clients/{first.client_id}", {"status": "suspended"}),
    )

    assert sorted(a.status_code for a in answers) == [200, 409]
    async with plain.state.sessionmaker() as session:
        statuses = await session.scalars(
            select(Client.status).where(Client.client_id.in_([first.client_id, second.client_id]))
        )
        assert sorted(statuses) == ["active", "suspended"]


async def test_purpose_codes_are_unique_without_regard_to_case(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    await admin.add_purpose("p1")

    upper = await admin.post("/purposes", {"code": "P1", "title": "Khác", "legal_basis": "Luật"})
    same = await admin.post("/purposes", {"code": "p1", "title": "Khác", "legal_basis": "Luật"})

    assert upper.status_code == 409
    assert upper.json()["code"] == "conflict"
    assert same.status_code == 409
    assert [p["code"] for p in (await admin.get("/purposes")).json()["items"]] == ["p1"]


def _forged(cursor: str, values: list[str]) -> str:
    """What an attacker makes of a cursor whose format it has seen: the same encoding, other values."""
    del cursor
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def test_an_edited_or_forged_admin_cursor_is_422(plain: Gateway) -> None:
    admin = await admin_for(plain, await plain.bootstrap_admin())
    for n in range(3):
        await admin.new_client(f"Cổng {n}")
    page = (await admin.get("/clients", limit=1)).json()
    cursor = page["next_cursor"]

    genuine = await admin.get("/clients", limit=1, cursor=cursor)
    forged = await admin.get("/clients", limit=1, cursor=_forged(cursor, ["c_"]))
    edited = await admin.get(
        "/clients", limit=1, cursor=cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    )

    assert genuine.status_code == 200
    assert forged.status_code == 422
    assert edited.status_code == 422
    assert codes(forged) == ["invalid_cursor"]
