"""Secret rotation without downtime, and key-only clients (docs/contract.md, Administration).

The clock is moved, never waited for: ``app.auth.service.utcnow`` is what both the rotation and the token
endpoint read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

import app.auth.service as auth_service
from app.audit.models import AuditEventRow
from tests.auth.test_private_key_jwt import Holder, form, jwk_of, post
from tests.harness import Gateway, Registered


class MovedClock:
    """``utcnow`` for the auth service, shifted by ``offset`` (the test moves it forward)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovedClock:
    moved = MovedClock()
    monkeypatch.setattr(auth_service, "utcnow", moved)
    return moved


async def admin_headers(gateway: Gateway) -> dict[str, str]:
    admin = await gateway.register(scopes=("admin",), fields=(), provinces=())
    return {"Authorization": f"Bearer {await gateway.token(admin)}"}


async def rotate(gateway: Gateway, headers: dict[str, str], client_id: str, **body: int) -> httpx.Response:
    return await gateway.http.post(
        f"/v1/admin/clients/{client_id}/secret", headers=headers, json=body if body else None
    )


async def secret_events(gateway: Gateway, client_id: str) -> list[AuditEventRow]:
    async with gateway.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.client_id == client_id, AuditEventRow.action.like("admin.client.secret%"))
            .order_by(AuditEventRow.seq)
        )
        return list(rows)


async def test_the_old_secret_works_inside_the_grace_window_and_fails_after(
    gateway: Gateway, clock: MovedClock
) -> None:
    headers = await admin_headers(gateway)
    portal = await gateway.register()

    response = await rotate(gateway, headers, portal.client_id, grace_seconds=3600)
    assert response.status_code == 200, response.text
    answer = response.json()
    new = Registered(portal.client_id, answer["client_secret"])
    until = datetime.fromisoformat(answer["previous_secret_until"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)

    clock.offset = timedelta(minutes=59)
    assert (await gateway.token_response(portal)).status_code == 200  # old, inside the window
    assert (await gateway.token_response(new)).status_code == 200

    clock.offset = timedelta(hours=1, seconds=1)
    assert (await gateway.token_response(portal)).status_code == 401  # old, after it
    assert (await gateway.token_response(new)).status_code == 200

    (event,) = await secret_events(gateway, portal.client_id)
    assert event.action == "admin.client.secret_rotate"
    assert event.detail is not None
    assert event.detail["after"]["grace_seconds"] == 3600
    assert event.detail["after"]["previous_secret_until"] is not None
    assert answer["client_secret"] not in json.dumps(event.detail)


async def test_without_grace_the_old_secret_stops_at_once(gateway: Gateway, clock: MovedClock) -> None:
    headers = await admin_headers(gateway)
    portal = await gateway.register()

    response = await rotate(gateway, headers, portal.client_id)

    assert response.status_code == 200, response.text
    assert response.json()["previous_secret_until"] is None
    assert (await gateway.token_response(portal)).status_code == 401
    assert (
        await gateway.token_response(Registered(portal.client_id, response.json()["client_secret"]))
    ).status_code == 200


@pytest.mark.parametrize("grace", [-1, 86401])
async def test_a_grace_beyond_a_day_is_refused(gateway: Gateway, grace: int) -> None:
    headers = await admin_headers(gateway)
    portal = await gateway.register()

    response = await rotate(gateway, headers, portal.client_id, grace_seconds=grace)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "grace_seconds"]
    assert (await gateway.token_response(portal)).status_code == 200  # nothing changed


async def test_a_second_rotation_ends_the_first_grace(gateway: Gateway, clock: MovedClock) -> None:
    headers = await admin_headers(gateway)
    portal = await gateway.register()
    first = (await rotate(gateway, headers, portal.client_id, grace_seconds=3600)).json()

    second = (await rotate(gateway, headers, portal.client_id, grace_seconds=600)).json()

    assert (await gateway.token_response(portal)).status_code == 401  # the original is two secrets back
    assert (
        await gateway.token_response(Registered(portal.client_id, first["client_secret"]))
    ).status_code == 200
    assert (
        await gateway.token_response(Registered(portal.client_id, second["client_secret"]))
    ).status_code == 200


async def test_secret_authentication_can_be_turned_off_for_a_key_only_client(
    gateway: Gateway, clock: MovedClock
) -> None:
    headers = await admin_headers(gateway)
    without_keys = await gateway.register()
    key = ec.generate_private_key(ec.SECP256R1())
    portal = await gateway.register(jwks={"keys": [jwk_of(key, "k1")]})
    holder = Holder(portal.client_id, key)
    grace = (await rotate(gateway, headers, portal.client_id, grace_seconds=600)).json()

    refused = await gateway.http.delete(f"/v1/admin/clients/{without_keys.client_id}/secret", headers=headers)
    turned_off = await gateway.http.delete(f"/v1/admin/clients/{portal.client_id}/secret", headers=headers)

    assert refused.status_code == 409  # it would be locked out
    assert refused.json()["code"] == "conflict"
    assert (await gateway.token_response(without_keys)).status_code == 200
    assert turned_off.status_code == 200, turned_off.text
    assert turned_off.json()["secret_enabled"] is False
    assert turned_off.json()["previous_secret_until"] is None
    assert (
        await gateway.token_response(Registered(portal.client_id, grace["client_secret"]))
    ).status_code == 401
    assert (await gateway.token_response(portal)).status_code == 401  # the one in its grace period too
    assert (await post(gateway, form(holder.assertion()))).status_code == 200  # keys keep working

    again = (await rotate(gateway, headers, portal.client_id)).json()  # a new secret turns it on again
    assert (
        await gateway.token_response(Registered(portal.client_id, again["client_secret"]))
    ).status_code == 200
    actions = [event.action for event in await secret_events(gateway, portal.client_id)]
    assert actions == [
        "admin.client.secret_rotate",
        "admin.client.secret_disable",
        "admin.client.secret_rotate",
    ]
