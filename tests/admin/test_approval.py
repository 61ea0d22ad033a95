"""Four-eyes approval (DANCU_ADMIN__REQUIRE_APPROVAL=true): widening waits for a second administrator,
narrowing and suspension apply at once, and both steps are audit events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.admin.models import AdminChange
from app.admin.service import grant_widening
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.schemas import GrantIn, GrantOut
from tests.admin.conftest import Admin, admin_for, two_admins
from tests.harness import ISSUER, PURPOSE, Gateway, Registered, gateway_settings, running

NARROW_BASE: dict[str, Any] = {
    "scopes": ["citizen.verify", "citizen.read"],
    "fields": ["full_name", "date_of_birth"],
    "provinces": ["52"],
    "purposes": [PURPOSE],
    "verify_details": True,
    "rate_limit_per_minute": 600,
    "distinct_subjects_per_day": 5000,
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_until": "2027-01-01T00:00:00Z",
}


def current(**changes: Any) -> GrantOut:
    return GrantOut.model_validate(
        {**NARROW_BASE, "client_id": "c_x", "updated_at": datetime(2026, 1, 1, tzinfo=UTC), **changes}
    )


@pytest.mark.parametrize(
    ("changes", "widens"),
    [
        ({}, []),
        ({"scopes": ["citizen.verify"]}, []),
        ({"scopes": ["citizen.verify", "citizen.read", "household.read"]}, ["scopes"]),
        ({"fields": ["full_name"]}, []),
        ({"fields": ["full_name", "gender"]}, ["fields"]),
        ({"fields": ["*"]}, ["fields"]),
        ({"fields": ["full_name", "ethnicity"]}, ["fields"]),
        ({"provinces": []}, []),
        ({"provinces": ["52", "79"]}, ["provinces"]),
        ({"provinces": ["*"]}, ["provinces"]),
        ({"purposes": []}, []),
        ({"purposes": [PURPOSE, "OTHER"]}, ["purposes"]),
        ({"verify_details": False}, []),
        ({"rate_limit_per_minute": 60}, []),
        ({"rate_limit_per_minute": 601}, ["rate_limit_per_minute"]),
        ({"distinct_subjects_per_day": 5001}, ["distinct_subjects_per_day"]),
        ({"valid_from": "2026-06-01T00:00:00Z"}, []),
        ({"valid_from": "2025-06-01T00:00:00Z"}, ["valid_from"]),
        ({"valid_from": None}, ["valid_from"]),
        ({"valid_until": "2026-06-01T00:00:00Z"}, []),
        ({"valid_until": "2028-01-01T00:00:00Z"}, ["valid_until"]),
        ({"valid_until": None}, ["valid_until"]),
        ({"provinces": ["79"], "scopes": ["citizen.verify"]}, ["provinces"]),  # mixed: waits whole
        ({"require_end_user": True}, []),  # demanding the end user narrows
    ],
)
def test_what_widens_access(changes: dict[str, Any], widens: list[str]) -> None:
    assert grant_widening(current(), GrantIn.model_validate({**NARROW_BASE, **changes})) == widens


def test_no_longer_requiring_the_end_user_widens_access() -> None:
    """Calls naming no officer were refused and would be answered: a control loosened waits for approval."""
    strict = current(require_end_user=True)

    assert grant_widening(strict, GrantIn.model_validate({**NARROW_BASE, "require_end_user": True})) == []
    assert grant_widening(strict, GrantIn.model_validate(NARROW_BASE)) == ["require_end_user"]


def test_a_star_grant_only_narrows_when_it_names_fields() -> None:
    star = current(fields=["*"], provinces=["*"])

    assert grant_widening(star, GrantIn.model_validate({**NARROW_BASE, "provinces": ["52"]})) == []
    assert grant_widening(star, GrantIn.model_validate({**NARROW_BASE, "fields": ["full_name"]})) == []
    assert grant_widening(star, GrantIn.model_validate({**NARROW_BASE, "fields": ["*", "religion"]})) == [
        "fields"
    ]


@pytest.fixture
async def admins(four_eyes: Gateway) -> tuple[Admin, Admin]:
    return await two_admins(four_eyes)


async def portal_with_narrow_grant(admin: Admin) -> Registered:
    portal = await admin.new_client()
    await admin.add_purpose()
    await admin.add_purpose("OTHER")
    # A new client's grant allows nothing, so its first real grant waits too: make it through the CLI's powers.
    async with admin.gateway.state.sessionmaker() as session:
        from app.auth.service import CLI_ACTOR, AuthService

        await AuthService(
            session, admin.gateway.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR)
        ).replace_grant(portal.client_id, GrantIn.model_validate(NARROW_BASE))
        await session.commit()
    return portal


async def test_widening_waits_for_a_different_admin(admins: tuple[Admin, Admin], four_eyes: Gateway) -> None:
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    before = (await first.get(f"/clients/{portal.client_id}/grant")).json()
    wider = {**NARROW_BASE, "provinces": ["52", "79"]}

    requested = await first.put(f"/clients/{portal.client_id}/grant", wider)
    unchanged = (await first.get(f"/clients/{portal.client_id}/grant")).json()
    change_id = requested.json()["change_id"]
    self_approved = await first.post(f"/changes/{change_id}/approve")
    still_unchanged = (await first.get(f"/clients/{portal.client_id}/grant")).json()
    approved = await second.post(f"/changes/{change_id}/approve")
    again = await second.post(f"/changes/{change_id}/approve")
    rejected_after = await second.post(f"/changes/{change_id}/reject")
    change = (await second.get(f"/changes/{change_id}")).json()

    assert requested.status_code == 202
    assert requested.json()["status"] == "pending"
    assert requested.json()["widens"] == ["provinces"]
    assert requested.json()["requested_by"] == first.client_id
    assert unchanged == before
    assert self_approved.status_code == 403
    assert self_approved.json()["code"] == "self_approval"
    assert still_unchanged == before
    assert approved.status_code == 200
    assert approved.json()["provinces"] == ["52", "79"]
    assert (await first.get(f"/clients/{portal.client_id}/grant")).json()["provinces"] == ["52", "79"]
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert rejected_after.status_code == 409
    assert change["status"] == "approved"
    assert change["decided_by"] == second.client_id
    assert change["decided_at"] is not None

    events = [
        e for e in await four_eyes.events("admin.") if e.actor != "cli" and e.action != "admin.purpose.create"
    ]
    assert [(e.action, e.actor, e.status_code) for e in events if e.action != "admin.client.create"] == [
        ("admin.change.request", first.client_id, 202),
        ("admin.change.approve", second.client_id, 200),
        ("admin.grant.replace", second.client_id, 200),
    ]
    request_event, approve_event, replace_event = events[-3:]
    assert request_event.detail is not None
    assert request_event.detail["change_id"] == change_id
    assert request_event.detail["before"]["provinces"] == ["52"]
    assert request_event.detail["after"]["provinces"] == ["52", "79"]
    assert approve_event.detail is not None
    assert approve_event.detail["before"]["status"] == "pending"
    assert approve_event.detail["after"] == {"status": "approved", "decided_by": second.client_id}
    assert replace_event.detail is not None
    assert replace_event.detail["before"]["provinces"] == ["52"]
    assert replace_event.detail["after"]["provinces"] == ["52", "79"]
    assert replace_event.client_id == portal.client_id


async def test_narrowing_and_suspension_apply_at_once(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    first, _ = admins
    portal = await portal_with_narrow_grant(first)

    narrowed = await first.put(
        f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "scopes": ["citizen.verify"]}
    )
    suspended = await first.patch(f"/clients/{portal.client_id}", {"status": "suspended"})
    renamed = await first.patch(f"/clients/{portal.client_id}", {"name": "Tên mới"})
    rotated = await first.post(
        f"/clients/{first.client_id}/secret"
    )  # its own; another's waits (test_security)
    created = await first.post("/clients", {"name": "Khác"})
    purpose = await first.post("/purposes", {"code": "NEW", "title": "T", "legal_basis": "L"})

    assert narrowed.status_code == 200
    assert narrowed.json()["scopes"] == ["citizen.verify"]
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    assert renamed.status_code == 200
    assert rotated.status_code == 200
    assert created.status_code == 201
    assert purpose.status_code == 201
    assert (await first.get("/changes")).json() == {"items": [], "next_cursor": None}


async def test_require_end_user_on_at_once_off_after_approval(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    """Turning ``require_end_user`` on narrows (applies at once); turning it off widens (waits for another
    administrator), as docs/admin.md says."""
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    url = f"/clients/{portal.client_id}/grant"

    strict = await first.put(url, {**NARROW_BASE, "require_end_user": True})
    loosened = await first.put(url, NARROW_BASE)
    meanwhile = (await first.get(url)).json()
    approved = await second.post(f"/changes/{loosened.json()['change_id']}/approve")

    assert strict.status_code == 200
    assert strict.json()["require_end_user"] is True
    assert loosened.status_code == 202
    assert loosened.json()["widens"] == ["require_end_user"]
    assert meanwhile["require_end_user"] is True
    assert approved.status_code == 200
    assert approved.json()["require_end_user"] is False


async def test_a_change_pending_from_before_require_end_user_still_applies(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    """A grant change requested before the member existed recorded a ``base`` without it: approving it is
    not refused as outdated (every grant then had ``require_end_user`` false)."""
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    requested = await first.put(
        f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "provinces": ["52", "79"]}
    )
    change_id = requested.json()["change_id"]
    async with four_eyes.state.sessionmaker() as session:
        change = await session.get(AdminChange, change_id)
        assert change is not None
        assert change.base is not None
        change.base = {k: v for k, v in change.base.items() if k != "require_end_user"}
        change.payload = {k: v for k, v in (change.payload or {}).items() if k != "require_end_user"}
        await session.commit()

    approved = await second.post(f"/changes/{change_id}/approve")

    assert approved.status_code == 200
    assert approved.json()["provinces"] == ["52", "79"]
    assert approved.json()["require_end_user"] is False


async def test_reinstatement_waits_and_a_mixed_patch_waits_whole(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    await first.patch(f"/clients/{portal.client_id}", {"status": "suspended"})

    requested = await first.patch(f"/clients/{portal.client_id}", {"status": "active", "name": "Cổng mới"})
    while_pending = (await first.get(f"/clients/{portal.client_id}")).json()
    token_while_pending = await four_eyes.token_response(portal)
    approved = await second.post(f"/changes/{requested.json()['change_id']}/approve")

    assert requested.status_code == 202
    assert requested.json()["widens"] == ["status"]
    assert requested.json()["action"] == "admin.client.update"
    assert (while_pending["status"], while_pending["name"]) == ("suspended", "Cổng DVC tỉnh Gia Lai")
    assert token_while_pending.status_code == 401
    assert approved.status_code == 200
    assert (approved.json()["status"], approved.json()["name"]) == ("active", "Cổng mới")
    assert (await four_eyes.token_response(portal)).status_code == 200


async def test_reject_and_withdraw(admins: tuple[Admin, Admin], four_eyes: Gateway) -> None:
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    wider = {**NARROW_BASE, "purposes": [PURPOSE, "OTHER"]}
    one = (await first.put(f"/clients/{portal.client_id}/grant", wider)).json()["change_id"]
    two = (await first.put(f"/clients/{portal.client_id}/grant", wider)).json()["change_id"]

    rejected = await second.post(f"/changes/{one}/reject")
    withdrawn = await first.post(f"/changes/{two}/reject")
    approve_rejected = await second.post(f"/changes/{one}/approve")

    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decided_by"] == second.client_id
    assert withdrawn.json()["status"] == "rejected"
    assert approve_rejected.status_code == 409
    assert (await first.get(f"/clients/{portal.client_id}/grant")).json()["purposes"] == [PURPOSE]
    actions = [(e.action, e.actor) for e in await four_eyes.events("admin.change.")]
    assert actions == [
        ("admin.change.request", first.client_id),
        ("admin.change.request", first.client_id),
        ("admin.change.reject", second.client_id),
        ("admin.change.reject", first.client_id),
    ]


async def test_an_approval_cannot_undo_what_happened_since(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    change_id = (
        await first.put(f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "provinces": ["52", "79"]})
    ).json()["change_id"]
    await second.put(f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "scopes": ["citizen.verify"]})

    approved = await second.post(f"/changes/{change_id}/approve")

    assert approved.status_code == 409
    assert approved.json()["code"] == "conflict"
    grant = (await first.get(f"/clients/{portal.client_id}/grant")).json()
    assert (grant["scopes"], grant["provinces"]) == (["citizen.verify"], ["52"])
    assert (await first.get(f"/changes/{change_id}")).json()["status"] == "pending"


async def test_an_invalid_widening_is_422_and_never_pending(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    first, _ = admins
    portal = await portal_with_narrow_grant(first)

    response = await first.put(
        f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "scopes": ["citizen.verify", "admin"]}
    )
    unknown = await first.put(
        f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "provinces": ["52", "079"]}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "separation_of_duties"
    assert unknown.status_code == 422
    assert (await first.get("/changes")).json()["items"] == []


async def test_a_second_admin_made_over_rest_needs_approval(
    admins: tuple[Admin, Admin], four_eyes: Gateway
) -> None:
    first, second = admins
    candidate = await first.new_client("Quản trị 3")

    requested = await first.put(f"/clients/{candidate.client_id}/grant", {"scopes": ["admin"]})
    token_before = await four_eyes.token_response(candidate)
    await second.post(f"/changes/{requested.json()['change_id']}/approve")
    third = await admin_for(four_eyes, candidate)

    assert requested.status_code == 202
    assert token_before.status_code == 400  # a grant that allows nothing: invalid_scope
    assert (await third.get("/changes")).status_code == 200


async def test_unknown_changes_and_listing(admins: tuple[Admin, Admin], four_eyes: Gateway) -> None:
    first, second = admins
    portal = await portal_with_narrow_grant(first)
    ids = []
    for limit in (601, 602, 603):
        response = await first.put(
            f"/clients/{portal.client_id}/grant", {**NARROW_BASE, "rate_limit_per_minute": limit}
        )
        ids.append(response.json()["change_id"])
    await second.post(f"/changes/{ids[0]}/reject")

    page_one = (await second.get("/changes", limit=2)).json()
    page_two = (await second.get("/changes", limit=2, cursor=page_one["next_cursor"])).json()
    pending = (await second.get("/changes", status="pending")).json()
    bad_status = await second.get("/changes", status="maybe")

    assert [c["change_id"] for c in page_one["items"] + page_two["items"]] == ids
    assert page_two["next_cursor"] is None
    assert [c["change_id"] for c in pending["items"]] == ids[1:]
    assert bad_status.status_code == 422
    for method in ("approve", "reject"):
        missing = await second.post(f"/changes/00000000-0000-4000-8000-000000000000/{method}")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
    assert (await second.get("/changes/nope")).status_code == 404
    assert (await second.get("/changes/" + "x" * 37)).status_code == 422


async def test_without_require_approval_everything_applies_at_once(admin: Admin, gateway: Gateway) -> None:
    portal = await admin.new_client()

    response = await admin.put_grant(portal.client_id, scopes=["citizen.verify"], provinces=["*"])

    assert response.status_code == 200
    assert (await admin.get("/changes")).json()["items"] == []


# --- concurrent decisions on PostgreSQL -----------------------------------------------------------------------


@pytest.fixture
async def four_eyes_pg(postgres_database_url: str) -> AsyncIterator[Gateway]:
    async with running(
        gateway_settings(postgres_database_url, issuer=ISSUER, admin={"require_approval": True})
    ) as gw:
        yield gw


@pytest.mark.postgres
async def test_concurrent_decisions_take_turns(four_eyes_pg: Gateway) -> None:
    first, second = await two_admins(four_eyes_pg)
    third = await admin_for(four_eyes_pg, await four_eyes_pg.operator_client("Quản trị 3", scopes=["admin"]))
    portal = await first.new_client()
    change_id = (await first.put_grant(portal.client_id, scopes=["citizen.verify"])).json()["change_id"]

    verbs = ("approve", "approve", "reject")
    answers: tuple[httpx.Response, ...] = await asyncio.gather(
        second.post(f"/changes/{change_id}/{verbs[0]}"),
        third.post(f"/changes/{change_id}/{verbs[1]}"),
        third.post(f"/changes/{change_id}/{verbs[2]}"),
    )

    # Which decision comes first is the scheduler's choice; exactly one is taken, and it is the one stored.
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    (taken,) = [verb for verb, answer in zip(verbs, answers, strict=True) if answer.status_code == 200]
    async with four_eyes_pg.state.sessionmaker() as session:
        change = await session.scalar(select(AdminChange).where(AdminChange.change_id == change_id))
    assert change is not None
    assert change.status == {"approve": "approved", "reject": "rejected"}[taken]
    decisions = [e.action for e in await four_eyes_pg.events("admin.change.")]
    assert [d for d in decisions if d in ("admin.change.approve", "admin.change.reject")] == [
        f"admin.change.{taken}"
    ]
