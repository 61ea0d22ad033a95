"""The auditor's integrity check and resident access report in a real browser (docs/contract.md, section 15;
docs/console.md): a client's calls through the REST API, then an auditor makes the resident's report, prints
it and downloads its PDF, whose text (read back with pypdf) names the client and the purpose in Vietnamese;
and an integrity check run from the console on a damaged copy of the database names the bad seq and the
damage.

The browser and the helpers are those of ``test_browser.py`` (imported, so the fixtures are this module's
too: one Chromium for this module).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from app.audit.checkpoints import Checkpointer, load_checkpoint_key
from app.audit.models import AuditEventRow, AuditIntegrityRun
from app.auth.schemas import GrantIn, PurposeIn
from app.db import create_engine, create_sessionmaker, utcnow
from tests.console.conftest import NEW_PASSWORD
from tests.console.test_browser import (  # noqa: F401 - fixtures used by name
    SHOTS,
    Console,
    browser,
    browser_settings,
    first_login,
    log_in,
    page,
    served,
    shot,
    sqlite_copy,
)
from tests.harness import HEAD, seeded_mock

RESIDENT = HEAD  # a persona of the seeded mock register, in Gia Lai (52)
PURPOSE = "1.000894.000.00.00.H12"
PURPOSE_TITLE = "Đăng ký thường trú"
CLIENT_NAME = "Cổng dịch vụ công tỉnh Gia Lai"


@pytest.fixture(scope="module")
def mock_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "console-report-mock")


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, console_template: Path, mock_url: str
) -> Iterator[Console]:
    """A gateway like ``test_browser.py``'s, with a seeded mock register so calls are answered."""
    folder = tmp_path_factory.mktemp("console-report-browser")
    settings = browser_settings(
        folder, sqlite_copy(folder, console_template), MOCK_CSDLQG_DATABASE_URL=mock_url
    )
    with served(settings, "console-report-browser") as console:
        yield console


def client_with_secret(console: Console) -> tuple[str, str]:
    return console.portal(
        CLIENT_NAME,
        GrantIn(
            scopes=["citizen.verify", "citizen.read"],
            fields=["full_name", "date_of_birth", "permanent_address"],
            provinces=["52"],
            purposes=[PURPOSE],
            rate_limit_per_minute=60,
        ),
        PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Cư trú 2020, Điều 20"),
    )


def call_the_api(console: Console) -> str:
    """A verification and a lookup of RESIDENT through the REST API, as a portal makes them; the client_id."""
    client_id, secret = client_with_secret(console)
    with httpx.Client(base_url=console.url, timeout=60) as http:
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "citizen.verify citizen.read"},
            auth=(client_id, secret),
        )
        assert token.status_code == 200, token.text
        headers = {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "X-Purpose": PURPOSE,
            "X-Dossier-Id": "HS-2026-000123",
        }
        verified = http.post(
            "/v1/citizens/verify", json={"personal_id": RESIDENT, "gender": "male"}, headers=headers
        )
        assert verified.status_code == 200, verified.text
        looked_up = http.post(
            "/v1/citizens/lookup",
            json={"personal_id": RESIDENT, "fields": ["full_name", "date_of_birth"]},
            headers=headers,
        )
        assert looked_up.status_code == 200, looked_up.text
    return client_id


def checkpoint(console: Console) -> None:
    """A signed checkpoint of the log as it is now, as the gateway makes them every N events or T seconds."""

    async def make() -> None:
        engine = create_engine(console.settings)
        try:
            checkpointer = Checkpointer(
                create_sessionmaker(engine), load_checkpoint_key(console.settings), console.settings.audit
            )
            await checkpointer.make()
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop on this thread
        pool.submit(asyncio.run, make()).result()


def events_of(console: Console, action: str) -> list[AuditEventRow]:
    async def read(session: Any) -> list[AuditEventRow]:
        rows = await session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == action).order_by(AuditEventRow.seq)
        )
        return list(rows)

    return list(console.run(read))


def test_a_resident_report_page_print_and_pdf(
    console: Console,
    page: Any,  # noqa: F811 - the fixture's name
    tmp_path: Path,
) -> None:
    call_the_api(console)
    username = first_login(page, console, "auditor", "kiemtoan")
    page.get_by_test_id("nav-report").click()
    page.wait_for_url(re.compile(r"/console/report$"))

    # A wrong ID first: refused beside its field, in Vietnamese.
    page.get_by_test_id("report-personal-id").fill("05206800010")
    page.get_by_test_id("report-submit").click()
    assert "Số định danh cá nhân không hợp lệ" in page.get_by_test_id("report-error").inner_text()
    assert page.get_by_test_id("report-personal-id").get_attribute("aria-invalid") == "true"
    shot(page, "40-report-invalid-id")

    # By keyboard, through the field's label: type the ID and press Enter.
    field = page.get_by_label("Số định danh cá nhân (12 chữ số)")
    assert field.get_attribute("data-testid") == "report-personal-id"
    field.fill("")
    field.focus()
    page.keyboard.type(RESIDENT)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/report/[A-Za-z0-9_-]{32}$"))
    history = page.evaluate("() => [location.href, document.title, history.length]")
    assert RESIDENT not in json.dumps(history)
    rows = page.get_by_test_id("report-row")
    assert rows.count() == 2
    assert rows.filter(has_text=CLIENT_NAME).count() == 2
    assert rows.filter(has_text=PURPOSE_TITLE).count() == 2
    assert rows.filter(has_text="Họ, chữ đệm và tên").count() == 1  # the lookup's fields, by name
    shot(page, "41-report")
    reads = events_of(console, "audit.subject_report")
    assert [(e.actor, e.client_id, e.outcome) for e in reads][-1] == (f"op:{username}", None, "allowed")

    # The printed page: no navigation, the table whole.
    page.emulate_media(media="print")
    assert not page.get_by_test_id("nav-report").is_visible()
    assert not page.get_by_test_id("report-pdf").is_visible()
    shot(page, "42-report-print")
    page.emulate_media(media="screen")

    with page.expect_download() as download:
        page.get_by_test_id("report-pdf").click()
    assert RESIDENT not in download.value.suggested_filename
    pdf_path = tmp_path / "report.pdf"
    download.value.save_as(pdf_path)
    reader = PdfReader(pdf_path)
    text = "".join(p.extract_text() for p in reader.pages)
    assert CLIENT_NAME in text
    assert PURPOSE_TITLE in text
    assert RESIDENT in text  # the report is the resident's: their ID is printed on it
    resources: list[Any] = [p["/Resources"] for p in reader.pages]
    fonts = [font.get_object() for found in resources for font in found["/Font"].values()]
    descriptors = [f["/DescendantFonts"][0].get_object()["/FontDescriptor"] for f in fonts]
    assert descriptors
    assert all("/FontFile2" in d for d in descriptors)  # every font embedded
    if os.environ.get("DANCU_TEST_SCREENSHOTS") == "1":  # the example PDF of docs/console.md
        shutil.copyfile(pdf_path, SHOTS / "43-report.pdf")
    assert len(events_of(console, "audit.subject_report")) == len(reads) + 1  # the PDF is a read too

    # A narrow screen: the report still reads (its table scrolls in its box).
    page.set_viewport_size({"width": 390, "height": 800})
    page.reload()
    assert page.get_by_test_id("report-pdf").is_visible()
    shot(page, "44-report-narrow")


def damaged_copy(console: Console, folder: Path) -> tuple[str, int]:
    """A consistent copy of the gateway's database with one event's member changed, as someone with the file
    could do; its URL and the changed event's seq."""
    source = console.database_url.removeprefix("sqlite:///")
    copy = folder / "damaged.db"
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(copy)) as target:
        live.backup(target)
    with closing(sqlite3.connect(copy)) as db:
        (seq,) = db.execute(
            "SELECT seq FROM audit_events WHERE action = 'citizen.read' ORDER BY seq LIMIT 1"
        ).fetchone()
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("UPDATE audit_events SET outcome = 'denied' WHERE seq = ?", (seq,))
        db.commit()
    return f"sqlite:///{copy}", int(seq)


def test_an_integrity_check_on_a_damaged_copy_names_the_damage(
    console: Console,
    page: Any,  # noqa: F811 - the fixture's name
    mock_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    call_the_api(console)
    checkpoint(console)
    username = first_login(page, console, "auditor", "kiemtoan")
    page.get_by_test_id("nav-integrity").click()
    page.wait_for_url(re.compile(r"/console/integrity$"))
    page.get_by_test_id("integrity-run").click()
    result = page.get_by_test_id("integrity-result")
    page.wait_for_selector('[data-testid="integrity-result"][data-status="ok"]')
    assert "Nguyên vẹn" in result.inner_text()
    shot(page, "45-integrity-ok")
    runs = events_of(console, "audit.integrity")
    assert [(e.actor, e.client_id, e.outcome) for e in runs] == [(f"op:{username}", None, "allowed")]

    # While a check runs the result box follows it (htmx polls it every second), until it ends.
    console.execute(update(AuditIntegrityRun).values(status="running", finished_at=None, checked=1))
    page.reload()
    assert result.get_attribute("data-status") == "running"
    assert page.locator("progress").is_visible()
    shot(page, "47-integrity-running")
    console.execute(update(AuditIntegrityRun).values(status="done", finished_at=utcnow()))
    page.wait_for_selector('[data-testid="integrity-result"][data-status="ok"]')

    folder = tmp_path_factory.mktemp("console-report-damaged")
    shutil.copyfile(Path(console.settings.audit.checkpoint_key_file), folder / "checkpoint.pem")
    shutil.copytree(Path(console.settings.audit.checkpoint_dir), folder / "checkpoints")
    database_url, seq = damaged_copy(console, folder)
    settings = browser_settings(folder, database_url, MOCK_CSDLQG_DATABASE_URL=mock_url)
    with served(settings, "console-report-damaged") as damaged:
        log_in(page, damaged, username, NEW_PASSWORD)
        page.wait_for_url(re.compile(r"/console/$"))
        page.get_by_test_id("nav-integrity").click()
        page.wait_for_url(re.compile(r"/console/integrity$"))
        assert page.get_by_test_id("integrity-result").get_attribute("data-status") == "ok"  # the last one
        page.get_by_test_id("integrity-run").focus()  # by keyboard
        page.keyboard.press("Enter")
        page.wait_for_selector('[data-testid="integrity-result"][data-status="damaged"]')
        assert page.get_by_test_id("integrity-first-bad-seq").inner_text() == str(seq)
        assert page.get_by_test_id("integrity-problem").inner_text() == "modified"
        assert f"tại seq {seq}" in page.get_by_test_id("integrity-result").inner_text()
        assert page.get_by_test_id("integrity-checkpoint-seq").is_visible()
        shot(page, "46-integrity-damaged")
