"""The auditor's journey in a real browser (docs/contract.md, section 15; docs/console.md): a client's call
through the REST API, then an auditor finds it by personal ID, opens the event, exports the search as CSV
and NDJSON, and both exports parse back to the events the database holds for that resident.

The browser, the gateway and the helpers are those of ``test_browser.py`` (imported, so the fixtures are
this module's too: one Chromium for this module).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.auth.schemas import GrantIn, PurposeIn
from tests.console.test_browser import (  # noqa: F401 - fixtures used by name
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


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, console_template: Path) -> Iterator[Console]:
    """The gateway of ``test_browser.py``'s fixture, with a seeded mock register so a call is answered."""
    folder = tmp_path_factory.mktemp("console-audit-browser")
    settings = browser_settings(
        folder,
        sqlite_copy(folder, console_template),
        MOCK_CSDLQG_DATABASE_URL=seeded_mock(tmp_path_factory, "console-audit-mock"),
    )
    with served(settings, "console-audit-browser") as console:
        yield console


def client_with_secret(console: Console) -> tuple[str, str]:
    return console.portal(
        "Cổng dịch vụ công tỉnh Gia Lai",
        GrantIn(scopes=["citizen.verify"], provinces=["52"], purposes=[PURPOSE], rate_limit_per_minute=60),
        PurposeIn(code=PURPOSE, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 20"),
    )


def call_the_api(console: Console) -> str:
    """A verification of RESIDENT through the REST API, as a calling system makes it; its client_id."""
    client_id, secret = client_with_secret(console)
    with httpx.Client(base_url=console.url, timeout=60) as http:
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "citizen.verify"},
            auth=(client_id, secret),
        )
        assert token.status_code == 200, token.text
        answer = http.post(
            "/v1/citizens/verify",
            json={"personal_id": RESIDENT, "gender": "male"},
            headers={"Authorization": f"Bearer {token.json()['access_token']}", "X-Purpose": PURPOSE},
        )
        assert answer.status_code == 200, answer.text
    return client_id


def resident_events(console: Console, client_id: str) -> list[AuditEventRow]:
    """Every event naming RESIDENT (found through the client's call, whose subject_ref is RESIDENT's)."""

    async def read(session: Any) -> list[AuditEventRow]:
        call = await session.scalar(
            select(AuditEventRow).where(
                AuditEventRow.client_id == client_id, AuditEventRow.action == "citizen.verify"
            )
        )
        assert call is not None
        assert call.subject_ref
        found = await session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.subject_ref == call.subject_ref)
            .order_by(AuditEventRow.seq.desc())
        )
        return list(found)

    return list(console.run(read))


def downloaded(page: Any, testid: str) -> str:  # noqa: F811 - the fixture's name
    with page.expect_download() as download:
        page.get_by_test_id(testid).click()
    return Path(download.value.path()).read_text(encoding="utf-8")


def test_an_auditor_finds_an_access_by_personal_id_and_exports_it(
    console: Console,
    page: Any,  # noqa: F811 - the fixture's name
) -> None:
    client_id = call_the_api(console)
    username = first_login(page, console, "auditor", "kiemtoan")
    page.get_by_test_id("nav-audit").click()
    page.wait_for_url(re.compile(r"/console/audit$"))

    # A wrong ID first: refused beside its field, in Vietnamese, and nowhere in the address or the title.
    page.get_by_test_id("audit-personal-id").fill("05209900012X")
    page.get_by_test_id("audit-submit").click()
    page.wait_for_url(re.compile(r"/console/audit/r/[A-Za-z0-9_=-]+$"))
    assert "Số định danh cá nhân không hợp lệ" in page.get_by_test_id("audit-error-personal-id").inner_text()
    assert "05209900012X" not in page.url
    assert "05209900012X" not in page.title()
    shot(page, "31-audit-invalid-id")

    page.get_by_test_id("audit-personal-id").fill(RESIDENT)
    page.get_by_test_id("audit-submit").click()
    page.wait_for_url(re.compile(r"/console/audit/r/[A-Za-z0-9_=-]+$"))
    assert RESIDENT not in page.url
    assert RESIDENT not in page.title()
    rows = page.get_by_test_id("audit-row")
    assert rows.count() >= 1
    assert rows.filter(has_text=client_id).count() == 1
    history = page.evaluate("() => [location.href, document.title, history.length]")
    assert RESIDENT not in json.dumps(history)
    shot(page, "30-audit-search")

    # What the page shows is what the database holds for the resident (the console's reads name it too).
    stored = resident_events(console, client_id)
    shown = [int(seq) for seq in rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]
    assert shown == [row.seq for row in stored if row.seq in shown]
    assert shown[-1] == min(row.seq for row in stored)
    assert all(row.actor == f"op:{username}" for row in stored if row.action == "audit.search")

    csv_text = downloaded(page, "audit-export-csv")
    expected = [row for row in resident_events(console, client_id) if row.action != "audit.export"]
    exported_csv = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
    ndjson_text = downloaded(page, "audit-export-ndjson")
    exported_ndjson = [json.loads(line) for line in ndjson_text.splitlines()]
    # Each export holds the resident's events as they stood when it was asked, newest first.
    for exported in (exported_csv, exported_ndjson):
        by_seq = {row.seq: row for row in resident_events(console, client_id)}
        seqs = [int(event["seq"]) for event in exported]
        assert seqs == sorted(seqs, reverse=True)
        assert {row.seq for row in expected} <= set(seqs)
        for event in exported:
            row = by_seq[int(event["seq"])]
            assert (event["event_id"], event["hash"], event["prev_hash"]) == (
                row.event_id,
                row.hash,
                row.prev_hash,
            )
            assert RESIDENT not in json.dumps(event)
    assert [e["hash"] for e in exported_csv] == [
        e["hash"] for e in exported_ndjson[len(exported_ndjson) - len(exported_csv) :]
    ]
    exports = [row for row in resident_events(console, client_id) if row.action == "audit.export"]
    assert [(row.actor, row.outcome) for row in exports] == [(f"op:{username}", "allowed")] * 2

    # The client's event, opened: all its members and its place in the chain.
    rows.filter(has_text=client_id).get_by_test_id("audit-detail").click()
    page.wait_for_url(re.compile(r"/console/audit/events/[0-9a-f-]+$"))
    call = next(row for row in stored if row.client_id == client_id)
    assert page.get_by_test_id("audit-event-seq").inner_text() == str(call.seq)
    assert page.get_by_test_id("audit-event-hash").inner_text() == call.hash
    assert page.get_by_test_id("audit-event-prev-hash").inner_text() == call.prev_hash
    shot(page, "32-audit-event")

    # 1366x768 and a phone: the page never scrolls sideways (the results table scrolls inside its box).
    page.go_back()
    page.wait_for_url(re.compile(r"/console/audit/r/[A-Za-z0-9_=-]+$"))
    for width, height in ((1366, 768), (390, 800)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.get_by_test_id("audit-submit").is_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), width
    shot(page, "33-audit-search-narrow")

    # By keyboard: the personal ID field, then Enter, searches.
    before = page.url
    page.get_by_test_id("audit-personal-id").focus()
    with page.expect_navigation(url=re.compile(r"/console/audit/r/[A-Za-z0-9_=-]+$")):
        page.keyboard.press("Enter")
    assert page.url != before  # a new search, a new token
    assert page.get_by_test_id("audit-row").count() >= 1
