"""Purposes, signing keys and approvals in the console (docs/contract.md, sections 7 and 15): the same
service, validation and audit as the REST API, with the operator as actor."""

from __future__ import annotations

import re

from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.schemas import GrantIn, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from tests.console.conftest import Site, csrf_of, make_client

PURPOSE = "1.001234.000.00.00.H12"
PURPOSE_TITLE = "Đăng ký thường trú"


async def _add_purpose(site: Site, code: str, title: str) -> None:
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        await service.add_purpose(PurposeIn(code=code, title=title, legal_basis="Luật Cư trú 2020, Điều 21"))
        await session.commit()


async def test_an_admin_registers_a_purpose_and_its_refusals_stand_beside_the_field(site: Site) -> None:
    admin, _ = await site.signed_in("quantri", "admin")
    page = await admin.get("/console/purposes")
    assert page.status_code == 200
    assert 'data-testid="nav-purposes"' in page.text
    assert 'data-testid="purposes-empty"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "code": PURPOSE,
        "title": PURPOSE_TITLE,
        "legal_basis": "Luật Cư trú 2020, Điều 21",
    }
    added = await admin.post("/console/purposes", data=form)
    assert added.status_code == 303
    listed = await admin.get(added.headers["location"])
    assert listed.text.count('data-testid="purpose-row"') == 1
    assert PURPOSE_TITLE in listed.text

    again = await admin.post("/console/purposes", data={**form, "code": PURPOSE.lower()})
    assert again.status_code == 409
    assert 'data-testid="purpose-code-error"' in again.text
    assert "đã được đăng ký" in again.text

    bad = await admin.post("/console/purposes", data={**form, "code": "mã có dấu", "title": " "})
    assert bad.status_code == 422
    assert 'data-testid="purpose-code-error"' in bad.text
    assert 'data-testid="purpose-title-error"' in bad.text
    assert 'value="mã có dấu"' in bad.text  # what was typed stays in the form

    events = await site.events("admin.purpose")
    assert [(e.action, e.actor) for e in events] == [("admin.purpose.create", "op:quantri")]


async def test_an_admin_lists_and_rotates_the_signing_keys(site: Site) -> None:
    admin, _ = await site.signed_in("quantri", "admin")
    page = await admin.get("/console/keys")
    assert page.status_code == 200
    before = re.findall(r'data-testid="key-row" data-kid="([^"]+)"', page.text)
    assert len(before) <= 1  # made at the first token or rotation
    no_csrf = await admin.post("/console/keys/rotate", data={})
    assert no_csrf.status_code == 403
    rotated = await admin.post("/console/keys/rotate", data={"csrf_token": csrf_of(page.text)})
    assert rotated.status_code == 303
    after_page = await admin.get(rotated.headers["location"])
    after = re.findall(r'data-testid="key-row" data-kid="([^"]+)"', after_page.text)
    assert len(after) >= len(before) + 1  # (the first key is made on demand, then replaced)
    assert set(before) < set(after)
    assert after_page.text.count('data-active="true"') == 1
    assert 'data-testid="notice"' in after_page.text
    events = await site.events("admin.key")
    assert [(e.action, e.actor) for e in events] == [("admin.key.rotate", "op:quantri")]


async def test_the_pages_follow_the_roles(site: Site) -> None:
    approver, _ = await site.signed_in("duyet", "approver")
    for path in ("/console/purposes", "/console/keys"):
        assert (await approver.get(path)).status_code == 403
    home = await approver.get("/console/")
    assert 'data-testid="nav-purposes"' not in home.text
    admin, _ = await site.signed_in("quantri", "admin")
    assert (await admin.get("/console/approvals")).status_code == 403


async def test_the_comparison_names_provinces_purposes_and_fields(four_eyes_site: Site) -> None:
    site = four_eyes_site
    await _add_purpose(site, PURPOSE, PURPOSE_TITLE)
    client_id = await make_client(site)
    quantri, _ = await site.signed_in("quantri", "admin,approver")
    duyet, _ = await site.signed_in("duyet", "approver")
    page = await quantri.get(f"/console/clients/{client_id}/grant")
    held = await quantri.post(
        f"/console/clients/{client_id}/grant",
        data={
            "csrf_token": csrf_of(page.text),
            "scopes": "citizen.verify,citizen.read",
            "fields": "full_name,religion",
            "provinces": "01",  # Gia Lai (52) removed, Hà Nội added
            "purposes": PURPOSE,
            "rate_limit_per_minute": "600",
        },
    )
    assert held.status_code == 202, held.text

    listed = await duyet.get("/console/approvals")
    assert listed.text.count('data-testid="approval-row"') == 1
    added = re.findall(r'data-testid="approval-added">(.*?)</ins>', listed.text, re.S)
    removed = re.findall(r'data-testid="approval-removed">(.*?)</del>', listed.text, re.S)
    assert any("Hà Nội" in a for a in added), added
    assert any(PURPOSE_TITLE in a for a in added), added
    assert any("Tôn giáo" in a and "nhạy cảm" in a for a in added), added
    assert any("Tra cứu thông tin công dân" in a for a in added), added
    assert any("Gia Lai" in r for r in removed), removed
    assert "Số yêu cầu mỗi phút" in listed.text
    assert "Cổng DVC tỉnh Gia Lai" in listed.text  # the client by name
    assert 'data-testid="approval-own"' not in listed.text

    own_page = await quantri.get("/console/approvals")
    assert 'data-testid="approval-own"' in own_page.text
    change_id = re.search(r'data-change-id="([^"]+)"', own_page.text)
    assert change_id
    own = await quantri.post(
        f"/console/approvals/{change_id.group(1)}",
        data={"csrf_token": csrf_of(own_page.text), "decision": "approve"},
    )
    assert own.status_code == 403
    assert "Không được tự phê duyệt" in own.text

    approved = await duyet.post(
        f"/console/approvals/{change_id.group(1)}",
        data={"csrf_token": csrf_of(listed.text), "decision": "approve", "reason": "Công văn 12/CV-UBND"},
    )
    assert approved.status_code == 303
    after = await duyet.get(approved.headers["location"])
    assert 'data-testid="approvals-empty"' in after.text
    assert "Đã phê duyệt" in after.text
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor="test"))
        grant = await service.get_grant(client_id)
    assert (grant.provinces, grant.purposes, grant.rate_limit_per_minute) == (["01"], [PURPOSE], 600)
    events = [(e.action, e.actor, (e.detail or {}).get("reason")) for e in await site.events("admin.change")]
    assert events == [
        ("admin.change.request", "op:quantri", None),
        ("admin.change.approve", "op:duyet", "Công văn 12/CV-UBND"),
    ]


async def test_a_rejection_with_a_reason(four_eyes_site: Site) -> None:
    site = four_eyes_site
    client_id = await make_client(site)
    async with site.state.sessionmaker() as session:
        from app.admin.service import AdminService

        service = AdminService(session, site.state[KEYS], actor="op:quantri", require_approval=True)
        await service.replace_grant(client_id, GrantIn(scopes=["citizen.verify"], provinces=["*"]))
        await session.commit()
    duyet, _ = await site.signed_in("duyet", "approver")
    listed = await duyet.get("/console/approvals")
    assert "Tất cả tỉnh, thành phố" in listed.text
    change_id = re.search(r'data-change-id="([^"]+)"', listed.text)
    assert change_id
    rejected = await duyet.post(
        f"/console/approvals/{change_id.group(1)}",
        data={"csrf_token": csrf_of(listed.text), "decision": "reject", "reason": "Chưa có công văn"},
    )
    assert rejected.status_code == 303
    events = [
        (e.action, e.actor, (e.detail or {}).get("reason")) for e in await site.events("admin.change.r")
    ]
    assert events[-1] == ("admin.change.reject", "op:duyet", "Chưa có công văn")


async def test_an_admin_retires_a_purpose_once_no_grant_names_it(site: Site) -> None:
    await _add_purpose(site, PURPOSE, PURPOSE_TITLE)
    client_id = await make_client(site)
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        await service.replace_grant(
            client_id, GrantIn(scopes=["citizen.verify"], provinces=["52"], purposes=[PURPOSE])
        )
        await session.commit()
    admin, _ = await site.signed_in("quantri", "admin")
    page = await admin.get("/console/purposes")
    assert page.text.count('data-testid="purpose-retire"') == 1
    in_use = await admin.post(f"/console/purposes/{PURPOSE}/retire", data={"csrf_token": csrf_of(page.text)})
    assert in_use.status_code == 409
    assert 'data-testid="purpose-retire-error"' in in_use.text
    assert "hãy bỏ nó khỏi mọi quyền được cấp" in in_use.text
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        await service.replace_grant(client_id, GrantIn(scopes=["citizen.verify"], provinces=["52"]))
        await session.commit()
    retired = await admin.post(f"/console/purposes/{PURPOSE}/retire", data={"csrf_token": csrf_of(page.text)})
    assert retired.status_code == 303
    after = await admin.get(retired.headers["location"])
    assert 'data-retired="true"' in after.text
    assert 'data-testid="purpose-retire"' not in after.text
    assert "Đã ngừng sử dụng mục đích." in after.text
    events = await site.events("admin.purpose.retire")
    assert [(e.action, e.actor) for e in events] == [("admin.purpose.retire", "op:quantri")]


async def test_the_pages_follow_the_language_switch(site: Site) -> None:
    admin, _ = await site.signed_in("quantri", "admin,approver")
    admin.cookies.set("dancu_lang", "en", path="/console")
    for path, title in (
        ("/console/purposes", "Purposes of use"),
        ("/console/keys", "The gateway's signing keys"),
        ("/console/approvals", "Pending changes"),
    ):
        page = await admin.get(path)
        assert f"<h1>{title}</h1>" in page.text.replace("&#39;", "'"), path
