"""Four eyes between people (docs/contract.md, section 15): a console change that widens access waits for an
approver who is someone else; approving one's own change is 403 `self_approval` whatever roles one holds."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.admin.models import AdminChange
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.service import AuthService
from tests.console.conftest import Site, csrf_of, make_client


async def _grant(site: Site, client_id: str) -> int:
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor="test"))
        return (await service.get_grant(client_id)).rate_limit_per_minute


async def test_a_widening_waits_for_another_approver(four_eyes_site: Site) -> None:
    site = four_eyes_site
    client_id = await make_client(site)
    quantri, _ = await site.signed_in("quantri", "admin,approver")
    duyet, _ = await site.signed_in("duyet", "approver")

    page = await quantri.get(f"/console/clients/{client_id}/grant")
    assert page.status_code == 200
    form = {
        "csrf_token": csrf_of(page.text),
        "scopes": "citizen.verify",
        "fields": "",
        "provinces": "52",
        "purposes": "",
        "rate_limit_per_minute": "600",
        "distinct_subjects_per_day": "5000",
    }
    held = await quantri.post(f"/console/clients/{client_id}/grant", data=form)
    assert held.status_code == 202
    assert 'data-testid="grant-pending"' in held.text
    assert await _grant(site, client_id) == 60

    listed = await quantri.get("/console/approvals")
    assert listed.text.count('data-testid="approval-row"') == 1
    change_id = re.search(r'data-change-id="([^"]+)"', listed.text)
    assert change_id
    own = await quantri.post(
        f"/console/approvals/{change_id.group(1)}",
        data={"csrf_token": csrf_of(listed.text), "decision": "approve"},
    )
    assert own.status_code == 403
    assert "self_approval" in own.text
    assert await _grant(site, client_id) == 60

    other_page = await duyet.get("/console/approvals")
    approved = await duyet.post(
        f"/console/approvals/{change_id.group(1)}",
        data={"csrf_token": csrf_of(other_page.text), "decision": "approve", "reason": "Đúng công văn 12/CV"},
    )
    assert approved.status_code == 303
    assert await _grant(site, client_id) == 600
    async with site.state.sessionmaker() as session:
        change = await session.scalar(select(AdminChange))
        assert change is not None
        assert (change.status, change.requested_by, change.decided_by) == (
            "approved",
            "op:quantri",
            "op:duyet",
        )
    actions = [(e.action, e.actor) for e in await site.events("admin.")]
    assert actions == [
        ("admin.client.create", "cli"),
        ("admin.grant.replace", "cli"),
        ("admin.change.request", "op:quantri"),
        ("admin.change.approve", "op:duyet"),
        ("admin.grant.replace", "op:duyet"),
    ]


async def test_a_narrowing_applies_at_once_and_pages_follow_the_roles(four_eyes_site: Site) -> None:
    site = four_eyes_site
    client_id = await make_client(site)
    quantri, _ = await site.signed_in("quantri", "admin")
    page = await quantri.get("/console/clients")
    assert 'data-testid="client-row"' in page.text
    assert (await quantri.get("/console/approvals")).status_code == 403
    grant = await quantri.get(f"/console/clients/{client_id}/grant")
    narrowed = await quantri.post(
        f"/console/clients/{client_id}/grant",
        data={"csrf_token": csrf_of(grant.text), "rate_limit_per_minute": "30"},
    )
    assert narrowed.status_code == 303
    assert await _grant(site, client_id) == 30
    bad = await quantri.post(
        f"/console/clients/{client_id}/grant",
        data={"csrf_token": csrf_of(grant.text), "rate_limit_per_minute": "lots"},
    )
    assert bad.status_code == 422
    assert await _grant(site, client_id) == 30
