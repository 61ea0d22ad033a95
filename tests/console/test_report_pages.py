"""The auditor's integrity page and resident access report, without a browser (docs/contract.md, section 15;
docs/console.md): roles, CSRF, the personal ID kept out of URLs and titles, and the audit events of each read
(actor ``op:<username>``, as the API records its own)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select, text, update

from app.audit.dependencies import AUDIT
from app.audit.integrity_runs import latest_run
from app.audit.models import AuditEventRow, AuditIntegrityRun
from app.audit.writer import AdminLog, AuditContext
from app.auth.dependencies import KEYS
from app.auth.schemas import PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from app.console.models import ConsoleResult
from tests.console.conftest import Site, csrf_of, make_client

PERSONAL_ID = "052068000108"
PURPOSE = "1.001234.000.00.00.H12"
PURPOSE_TITLE = "Đăng ký thường trú"
CLIENT_NAME = "Cổng dịch vụ công tỉnh Gia Lai"
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


async def accesses(site: Site, client_id: str, count: int = 2) -> None:
    """``count`` lookups of the persona by ``client_id`` for the purpose, and one refused verification."""
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        await service.add_purpose(
            PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Cư trú 2020, Điều 21")
        )
        await session.commit()
    call = AuditContext.of_client(client_id, None, purpose=PURPOSE, dossier_id="HS-0001")
    events = [
        call.event("citizen.read", "allowed", 200, subject=PERSONAL_ID, fields=["full_name", "date_of_birth"])
        for _ in range(count)
    ]
    events.append(
        call.event("citizen.verify", "denied", 403, subject=PERSONAL_ID, reason="purpose_not_granted")
    )
    await site.state[AUDIT].write(events)


async def read_events(site: Site, action: str) -> list[AuditEventRow]:
    async with site.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == action).order_by(AuditEventRow.seq)
        )
        return list(rows)


async def run_check(client: httpx.AsyncClient) -> str:
    """Press the run button; the page shown after it (the check of a small log ends within the wait)."""
    page = await client.get("/console/integrity")
    answer = await client.post("/console/integrity/run", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/integrity"
    for _ in range(100):
        page = await client.get("/console/integrity")
        if 'data-status="running"' not in page.text:
            return page.text
        await asyncio.sleep(0.1)
    raise AssertionError("the check did not end")


# --- integrity ---------------------------------------------------------------------------------------------


async def test_integrity_is_for_auditors_only(site: Site) -> None:
    analyst, _ = await site.signed_in("thongke", "analyst")
    assert (await analyst.get("/console/integrity")).status_code == 403
    assert (await analyst.get("/console/integrity/result")).status_code == 403
    page = await analyst.get("/console/")
    answer = await analyst.post("/console/integrity/run", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 403
    async with site.state.sessionmaker() as session:
        assert await latest_run(session) is None


async def test_the_run_button_needs_the_csrf_token(site: Site) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    page = await auditor.get("/console/integrity")
    assert page.status_code == 200
    assert 'data-testid="integrity-result"' in page.text
    assert "Chưa có lần kiểm tra nào" in page.text
    assert (await auditor.post("/console/integrity/run", data={})).status_code == 403
    forged = await auditor.post("/console/integrity/run", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    async with site.state.sessionmaker() as session:
        assert await latest_run(session) is None


async def test_a_run_checks_the_chain_keeps_its_result_and_is_audited(site: Site) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    page = await run_check(auditor)
    assert 'data-status="ok"' in page
    assert "Nguyên vẹn" in page
    async with site.state.sessionmaker() as session:
        run = await latest_run(session)
    assert run is not None
    assert run.status == "done"
    assert run.ok is True
    assert run.actor == "op:kiemtoan"
    assert run.checked > 0
    events = await read_events(site, "audit.integrity")
    assert [(e.actor, e.client_id, e.outcome) for e in events] == [("op:kiemtoan", None, "allowed")]
    # The last result is shown again without a new check (no new event).
    again = await auditor.get("/console/integrity")
    assert 'data-status="ok"' in again.text
    fragment = await auditor.get("/console/integrity/result")
    assert fragment.text.lstrip().startswith("<section")
    assert 'data-status="ok"' in fragment.text
    assert len(await read_events(site, "audit.integrity")) == 1
    dashboard = (await auditor.get("/console/")).text
    assert 'data-testid="dash-last-check"' in dashboard
    assert "✔ Nguyên vẹn" in dashboard
    assert 'href="/console/integrity"' in dashboard


async def test_a_damaged_log_names_the_first_bad_seq_and_the_problem(site: Site) -> None:
    client_id = await make_client(site)
    await accesses(site, client_id)
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    async with site.state.sessionmaker() as session:
        target = await session.scalar(
            select(AuditEventRow.seq).where(AuditEventRow.action == "citizen.read").limit(1)
        )
        # As someone with the database file would: the append-only trigger dropped first.
        await session.execute(text("DROP TRIGGER audit_events_no_update"))
        await session.execute(
            update(AuditEventRow).where(AuditEventRow.seq == target).values(outcome="denied")
        )
        await session.commit()
    page = await run_check(auditor)
    assert 'data-status="damaged"' in page
    assert f'data-testid="integrity-first-bad-seq">{target}<' in page
    assert "<code>modified</code>" in page
    assert f"tại seq {target}" in page


async def test_a_running_check_shows_its_progress_and_an_old_one_reads_as_interrupted(site: Site) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    await run_check(auditor)
    async with site.state.sessionmaker() as session:
        await session.execute(
            update(AuditIntegrityRun).values(status="running", finished_at=None, total=400, checked=100)
        )
        await session.commit()
    page = (await auditor.get("/console/integrity")).text
    assert 'data-status="running"' in page
    assert 'hx-get="/console/integrity/result"' in page
    assert 'value="25"' in page
    async with site.state.sessionmaker() as session:
        run = await session.scalar(select(AuditIntegrityRun))
        assert run is not None
        await session.execute(
            update(AuditIntegrityRun).values(heartbeat_at=run.heartbeat_at.replace(year=2020))
        )
        await session.commit()
    page = (await auditor.get("/console/integrity")).text
    assert 'data-status="interrupted"' in page


# --- the resident report -----------------------------------------------------------------------------------


async def open_report(client: httpx.AsyncClient, personal_id: str = PERSONAL_ID) -> httpx.Response:
    form = await client.get("/console/report")
    return await client.post(
        "/console/report", data={"csrf_token": csrf_of(form.text), "personal_id": personal_id}
    )


async def test_the_report_is_for_auditors_only(site: Site) -> None:
    admin, _ = await site.signed_in("quantri", "admin,approver")
    assert (await admin.get("/console/report")).status_code == 403
    page = await admin.get("/console/")
    refused = await admin.post(
        "/console/report", data={"csrf_token": csrf_of(page.text), "personal_id": PERSONAL_ID}
    )
    assert refused.status_code == 403
    assert PERSONAL_ID not in refused.text
    assert await read_events(site, "audit.subject_report") == []


async def test_the_report_needs_the_csrf_token(site: Site) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    refused = await auditor.post("/console/report", data={"personal_id": PERSONAL_ID})
    assert refused.status_code == 403
    async with site.state.sessionmaker() as session:
        assert list(await session.scalars(select(ConsoleResult))) == []
    assert await read_events(site, "audit.subject_report") == []


async def test_a_report_behind_an_opaque_token_audited_as_the_operator(site: Site) -> None:
    client_id = await make_client(site, CLIENT_NAME)
    await accesses(site, client_id, count=2)
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    answer = await open_report(auditor, "0520 6800 0108")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert re.fullmatch(r"/console/report/[A-Za-z0-9_-]{32}", location)
    assert PERSONAL_ID not in location
    page = await auditor.get(location)
    assert page.status_code == 200
    title = _TITLE.search(page.text)
    assert title is not None
    assert PERSONAL_ID not in title.group(1)
    assert page.text.count('data-testid="report-row"') == 3
    assert CLIENT_NAME in page.text
    assert PURPOSE_TITLE in page.text
    assert "Họ, chữ đệm và tên" in page.text  # the fields released, in Vietnamese
    assert "Từ chối" in page.text
    assert 'data-testid="report-pdf"' in page.text

    pdf = await auditor.get(location + "/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert PERSONAL_ID not in pdf.headers["content-disposition"]
    words = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert CLIENT_NAME in words
    assert PURPOSE_TITLE in words

    events = await read_events(site, "audit.subject_report")
    assert [(e.actor, e.client_id, e.outcome) for e in events] == [("op:kiemtoan", None, "allowed")] * 2
    hasher = site.state[AUDIT].hasher
    assert {e.subject_ref for e in events} == {hasher.ref(PERSONAL_ID)}

    # Another session (even of an auditor) cannot open the token.
    other, _ = await site.signed_in("kiemtoan2", "auditor")
    gone = await other.get(location)
    assert gone.status_code == 404
    assert PERSONAL_ID not in gone.text
    assert len(await read_events(site, "audit.subject_report")) == 2


async def test_a_wrong_personal_id_is_refused_beside_the_field_and_audited(site: Site) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    answer = await open_report(auditor, "12345")
    assert answer.status_code == 422
    assert 'data-testid="report-error"' in answer.text
    assert "Số định danh cá nhân không hợp lệ" in answer.text
    events = await read_events(site, "audit.subject_report")
    assert [(e.actor, e.outcome, e.reason) for e in events] == [
        ("op:kiemtoan", "denied", "invalid_personal_id")
    ]


@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_an_empty_report_and_both_languages(site: Site, lang: str) -> None:
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    auditor.cookies.set("dancu_lang", lang, path="/console")
    answer = await open_report(auditor)
    page = await auditor.get(answer.headers["location"])
    assert 'data-testid="report-empty"' in page.text
    assert ("Không có lượt truy cập nào" if lang == "vi" else "No access to this") in page.text
    pdf = await auditor.get(answer.headers["location"] + "/pdf")
    assert pdf.content.startswith(b"%PDF-")


async def test_a_result_older_than_any_session_is_removed_when_the_next_is_kept(site: Site) -> None:
    """A session that merely expired never logs out: what it kept goes once no session could still open it."""
    auditor, _ = await site.signed_in("kiemtoan", "auditor")
    first = (await open_report(auditor, PERSONAL_ID)).headers["location"]
    async with site.state.sessionmaker() as session:
        for row in await session.scalars(select(ConsoleResult)):
            row.created_at -= timedelta(hours=8, seconds=1)
        await session.commit()
    second = (await open_report(auditor, PERSONAL_ID)).headers["location"]
    async with site.state.sessionmaker() as session:
        assert len(list(await session.scalars(select(ConsoleResult)))) == 1
    assert (await auditor.get(first)).status_code == 404
    assert (await auditor.get(second)).status_code == 200
