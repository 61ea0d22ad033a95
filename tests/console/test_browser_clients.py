"""The administrator's journey in a real browser (docs/contract.md, section 15; docs/console.md): an admin
creates a client (its secret shown once, with a copy button) and its grant in the console, a refusal of the
API stands beside the control that caused it, another operator approves the widening (four-eyes), and the new
client then gets a token at ``/oauth2/token`` and reads a resident through the REST API.

The browser, the gateway and the helpers are those of ``test_browser.py`` (imported, so the fixtures are this
module's too: one Chromium for this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog
from app.auth.schemas import PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from tests.console.test_browser import (  # noqa: F401 - fixtures used by name
    BROWSER_WAIT_MS,
    Console,
    browser,
    browser_settings,
    first_login,
    page,
    served,
    shot,
    sqlite_copy,
)
from tests.harness import HEAD, seeded_mock

RESIDENT = HEAD  # a persona of the seeded mock register, in Gia Lai (52)
PURPOSE = "1.001234.000.00.00.H12"
PURPOSE_TITLE = "Đăng ký thường trú"
NAME = "Cổng dịch vụ công tỉnh Gia Lai"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, console_template: Path) -> Iterator[Console]:
    """The gateway of ``test_browser.py``'s fixture (four-eyes on), with a seeded mock register and a
    registered purpose, so the new client's lookup is answered."""
    folder = tmp_path_factory.mktemp("console-clients-browser")
    settings = browser_settings(
        folder,
        sqlite_copy(folder, console_template),
        admin={"require_approval": True},
        MOCK_CSDLQG_DATABASE_URL=seeded_mock(tmp_path_factory, "console-clients-mock"),
    )
    with served(settings, "console-clients-browser") as gateway:

        async def purpose(session: Any) -> None:
            service = AuthService(session, gateway.secrets, AdminLog(session, actor=CLI_ACTOR))
            await service.add_purpose(
                PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Cư trú 2020, Điều 20")
            )

        gateway.run(purpose)
        yield gateway


def fits(page: Any) -> bool:  # noqa: F811 - a page, not the fixture
    """Nothing wider than the window (no sideways scrolling of the page itself)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_an_admin_creates_a_client_and_its_grant_and_the_client_reads_a_resident(
    console: Console,
    page: Any,  # noqa: F811 - the fixture's name
    browser: Any,  # noqa: F811 - the fixture's name
) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    admin = first_login(page, console, "admin", "quantri")
    page.get_by_test_id("nav-clients").click()
    page.wait_for_url(re.compile(r"/console/clients$"))
    page.get_by_test_id("client-new").click()
    page.wait_for_url(re.compile(r"/console/clients/new$"))
    # By keyboard: type the name, Enter submits.
    page.get_by_test_id("client-name").focus()
    page.keyboard.type(NAME)
    shot(page, "60-client-new")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/clients/new$"))
    secret = page.get_by_test_id("client-secret").inner_text().strip()
    client_id = page.get_by_test_id("client-id").inner_text().strip()
    assert len(secret) >= 32
    assert client_id.startswith("c_")
    copy = page.get_by_test_id("client-secret-copy")
    assert copy.is_visible()  # the script (a static file) showed it
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert fits(page)
    shot(page, "61-client-created-secret-once")

    page.goto(f"{console.url}/console/clients/{client_id}")
    assert page.get_by_test_id("client-secret").count() == 0  # shown once, never again
    assert secret not in page.content()
    page.get_by_test_id("grant-edit").click()
    page.wait_for_url(re.compile(r"/grant$"))
    # A refusal of the API, beside the control that caused it, in Vietnamese.
    page.get_by_test_id("grant-scope-admin").check()
    page.get_by_test_id("grant-scope-citizen.read").check()
    page.get_by_test_id("grant-submit").click()
    assert "Tách biệt nhiệm vụ" in page.get_by_test_id("error-scopes").inner_text()
    assert page.get_by_test_id("grant-scope-admin").is_checked()  # the choices are kept
    shot(page, "62-grant-refused-beside-the-scopes")
    page.get_by_test_id("grant-scope-admin").uncheck()
    page.get_by_test_id("grant-fields-all").check()
    page.get_by_test_id("grant-province-52").focus()
    page.keyboard.press("Space")  # a box ticks by keyboard
    assert page.get_by_test_id("grant-province-52").is_checked()
    assert not page.get_by_test_id("grant-field-ethnicity").is_checked()
    page.get_by_test_id(f"grant-purpose-{PURPOSE}").check()
    page.get_by_test_id("grant-rate").fill("120")
    shot(page, "63-grant-editor")
    # By keyboard (a full-page screenshot just before leaves Chromium's mouse coordinates off by the scroll).
    page.get_by_test_id("grant-submit").press("Enter")
    page.get_by_test_id("grant-pending").wait_for()  # four-eyes: it widens access
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{console.url}/console/clients/{client_id}/grant")
    assert fits(page)
    shot(page, "64-grant-editor-narrow")
    page.goto(f"{console.url}/console/clients/{client_id}")
    assert fits(page)
    shot(page, "65-client-narrow")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{console.url}/console/clients")
    assert page.get_by_test_id("client-row").filter(has_text=client_id).count() == 1
    shot(page, "66-clients")

    other = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    other.set_default_timeout(BROWSER_WAIT_MS)
    try:
        second = other.new_page()
        approver = first_login(second, console, "approver", "duyet")
        second.get_by_test_id("nav-approvals").click()
        row = second.get_by_test_id("approval-row").filter(has_text=client_id)
        row.get_by_test_id("approval-reason").fill("Theo công văn số 12/CV-UBND")
        row.get_by_test_id("approval-approve").click()
        second.wait_for_url(re.compile(r"/console/approvals\?done=approved$"))
        assert second.get_by_test_id("approval-row").filter(has_text=client_id).count() == 0
    finally:
        other.close()

    with httpx.Client(base_url=console.url, timeout=60) as http:
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "citizen.read"},
            auth=(client_id, secret),
        )
        assert token.status_code == 200, token.text
        answer = http.post(
            "/v1/citizens/lookup",
            json={"personal_id": RESIDENT, "fields": ["full_name", "date_of_birth"]},
            headers={"Authorization": f"Bearer {token.json()['access_token']}", "X-Purpose": PURPOSE},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["full_name"] == "Nguyễn Văn Thành"
        sensitive = http.post(
            "/v1/citizens/lookup",
            json={"personal_id": RESIDENT, "fields": ["ethnicity"]},
            headers={"Authorization": f"Bearer {token.json()['access_token']}", "X-Purpose": PURPOSE},
        )
        assert sensitive.status_code == 403  # "*" never reaches a sensitive field

    async def made(session: Any) -> list[tuple[str, str]]:
        rows = await session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.action.startswith("admin."), AuditEventRow.client_id == client_id)
            .order_by(AuditEventRow.seq)
        )
        return [(row.action, row.actor) for row in rows]

    assert console.run(made) == [
        ("admin.client.create", f"op:{admin}"),
        ("admin.change.request", f"op:{admin}"),
        ("admin.change.approve", f"op:{approver}"),
        ("admin.grant.replace", f"op:{approver}"),
    ]
