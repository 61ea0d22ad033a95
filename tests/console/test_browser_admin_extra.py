"""Purposes, signing keys and four-eyes approval in a real browser (docs/contract.md, section 15; issue 16):
an admin registers a purpose and rotates the signing key; an approver approves a widening another operator made,
reading the comparison (provinces by name, purposes by title, added green, removed red), and the new grant is
checked in the database. Fixtures and helpers are those of ``test_browser.py`` (its own gateway per module).
"""

# ruff: noqa: F811 - the fixtures of test_browser.py, imported, are the tests' arguments

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.admin.models import AdminChange
from app.admin.service import AdminService
from app.audit.models import AuditEventRow
from app.auth.keys import KeyStore
from app.auth.schemas import GrantIn, PurposeIn
from tests.console.test_browser import (  # noqa: F401 - fixtures
    BROWSER_WAIT_MS,
    Console,
    browser,
    console,
    expect,
    first_login,
    page,
    shot,
)

PURPOSE = "1.000046.000.00.00.H12"
PURPOSE_TITLE = "Cấp Căn cước cho công dân từ đủ 14 tuổi trở lên"


def _keys(console: Console, session: Any) -> KeyStore:
    return KeyStore.from_settings(console.settings, async_sessionmaker(session.bind))


def _widen(console: Console, client_id: str, actor: str) -> None:
    """The widening a second administrator asked for (as the console's grant editor would record it)."""

    async def ask(session: Any) -> None:
        service = AdminService(session, _keys(console, session), actor=actor, require_approval=True)
        if PURPOSE not in {p.code for p in await service.auth.list_purposes()}:
            await service.add_purpose(
                PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Căn cước 2023")
            )
        await service.replace_grant(
            client_id,
            GrantIn(
                scopes=["citizen.verify", "citizen.read"],
                fields=["full_name", "date_of_birth", "religion"],
                provinces=["52", "56"],
                purposes=[PURPOSE],
                rate_limit_per_minute=60,
            ),
        )

    console.run(ask)


def _grant_and_events(console: Console, client_id: str) -> tuple[Any, list[tuple[str, str]], Any]:
    async def read(session: Any) -> tuple[Any, list[tuple[str, str]], Any]:
        service = AdminService(session, _keys(console, session), actor="test")
        grant = await service.get_grant(client_id)
        rows = await session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.action.startswith("admin."), AuditEventRow.client_id == client_id)
            .order_by(AuditEventRow.seq)
        )
        change = await session.scalar(select(AdminChange).where(AdminChange.target_client_id == client_id))
        return grant, [(e.action, e.actor) for e in rows], change

    found: tuple[Any, list[tuple[str, str]], Any] = console.run(read)
    return found


def test_an_admin_registers_a_purpose_and_rotates_the_signing_key(page: Any, console: Console) -> None:
    first_login(page, console, "admin", "quantri")
    page.get_by_test_id("nav-purposes").click()
    page.wait_for_url(re.compile(r"/console/purposes$"))
    page.get_by_test_id("purpose-code").fill("mã sai")
    page.get_by_test_id("purpose-title").fill(PURPOSE_TITLE)
    page.get_by_test_id("purpose-legal-basis").fill("Luật Căn cước 2023, Điều 19")
    page.get_by_test_id("purpose-submit").click()
    expect(page.get_by_test_id("purpose-code-error")).to_be_visible()
    page.get_by_test_id("purpose-code").fill(PURPOSE)
    page.get_by_test_id("purpose-submit").click()
    page.wait_for_url(re.compile(r"/console/purposes\?added=1$"))
    assert page.get_by_test_id("purpose-row").filter(has_text=PURPOSE_TITLE).count() == 1
    shot(page, "20-purposes")

    page.get_by_test_id("nav-keys").click()
    page.wait_for_url(re.compile(r"/console/keys$"))
    before = page.get_by_test_id("key-row").count()
    page.get_by_test_id("keys-rotate").click()
    page.wait_for_url(re.compile(r"/console/keys\?rotated=1$"))
    assert page.get_by_test_id("key-row").count() >= before + 1
    assert page.locator('[data-testid="key-row"][data-active="true"]').count() == 1
    shot(page, "21-signing-keys")


def test_an_approver_approves_a_widening_another_operator_made(
    page: Any, browser: Any, console: Console
) -> None:
    client_id = console.client()
    admin = first_login(page, console, "admin,approver", "quantri")
    _widen(console, client_id, f"op:{admin}")
    page.get_by_test_id("nav-approvals").click()  # the author, an approver too, cannot approve it
    own = page.get_by_test_id("approval-row").filter(has_text=client_id)
    expect(own.get_by_test_id("approval-own")).to_be_visible()
    own.get_by_test_id("approval-approve").click()
    refused = page.get_by_test_id("approval-row").filter(has_text=client_id).get_by_test_id("approval-error")
    refused.wait_for()
    assert "Không được tự phê duyệt" in refused.inner_text()
    shot(page, "25-self-approval-refused")

    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    context.set_default_timeout(BROWSER_WAIT_MS)
    try:
        approver_page = context.new_page()
        approver = first_login(approver_page, console, "approver", "duyet")
        approver_page.get_by_test_id("nav-approvals").click()
        row = approver_page.get_by_test_id("approval-row").filter(has_text=client_id)
        expect(row).to_have_count(1)
        added = row.get_by_test_id("approval-added").all_inner_texts()
        removed = row.get_by_test_id("approval-removed").all_inner_texts()
        assert any("Đắk Lắk" in text for text in added) or any("(56)" in text for text in added), added
        assert any(PURPOSE_TITLE in text for text in added), added
        assert any("Tôn giáo" in text and "nhạy cảm" in text for text in added), added
        assert removed == []
        green = row.get_by_test_id("approval-added").first.evaluate("e => getComputedStyle(e).color")
        assert green == "rgb(20, 83, 45)"
        shot(approver_page, "22-approval-comparison")
        row.get_by_test_id("approval-reason").fill("Theo Công văn số 125/UBND-NC ngày 02/12/2026")
        row.get_by_test_id("approval-approve").click()
        approver_page.wait_for_url(re.compile(r"/console/approvals\?done=approved$"))
        assert approver_page.get_by_test_id("approval-row").filter(has_text=client_id).count() == 0
        shot(approver_page, "23-approval-approved")
    finally:
        context.close()

    grant, events, change = _grant_and_events(console, client_id)
    assert grant.provinces == ["52", "56"]
    assert grant.purposes == [PURPOSE]
    assert "religion" in grant.fields
    assert (change.status, change.requested_by, change.decided_by) == (
        "approved",
        f"op:{admin}",
        f"op:{approver}",
    )
    assert events[-3:] == [
        ("admin.change.request", f"op:{admin}"),
        ("admin.change.approve", f"op:{approver}"),
        ("admin.grant.replace", f"op:{approver}"),
    ]


def test_the_approvals_page_on_a_narrow_screen(page: Any, browser: Any, console: Console) -> None:
    client_id = console.client()
    admin = first_login(page, console, "admin", "quantri")
    _widen(console, client_id, f"op:{admin}")
    context = browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    context.set_default_timeout(BROWSER_WAIT_MS)
    try:
        narrow = context.new_page()
        first_login(narrow, console, "approver", "duyet")
        narrow.get_by_test_id("nav-approvals").click()
        row = narrow.get_by_test_id("approval-row").filter(has_text=client_id)
        reject = row.get_by_test_id("approval-reject")
        assert reject.is_visible()
        width = narrow.evaluate("document.documentElement.scrollWidth")
        wide = narrow.evaluate(
            "[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 392)"
            ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"
        )
        assert width <= 400, (width, wide)  # nothing wider than the screen
        shot(narrow, "24-approvals-narrow")
        row.get_by_test_id("approval-reason").fill("Chưa có văn bản đề nghị")
        reject.click()
        narrow.wait_for_url(re.compile(r"/console/approvals\?done=rejected$"))
    finally:
        context.close()
    _grant, _events, change = _grant_and_events(console, client_id)
    assert change.status == "rejected"
