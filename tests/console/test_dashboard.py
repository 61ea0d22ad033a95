"""The dashboard's figures (docs/contract.md, section 15): accesses today and over 30 Vietnam days, the denial
rate, the busiest clients, pending changes; each event counted once, incrementally, into ``console_access_days``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from app.audit.chain import append
from app.audit.models import AuditEventRow
from app.console.dashboard import VIETNAM
from app.console.models import AccessDay
from tests.console.conftest import Site, make_client


def _event(at: datetime, client_id: str | None, action: str, outcome: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "at": at,
        "request_id": None,
        "client_id": client_id,
        "actor": client_id or "op:x",
        "action": action,
        "purpose": None,
        "dossier_id": None,
        "subject_ref": None,
        "fields": [],
        "sensitive_fields": [],
        "outcome": outcome,
        "status_code": 200 if outcome == "allowed" else 403,
        "reason": None if outcome == "allowed" else "scope_missing",
        "detail": None,
        "end_user": None,
        "client_ip": None,
        "job_id": None,
    }


async def _append(site: Site, events: list[dict[str, Any]]) -> None:
    async with site.state.sessionmaker() as session:
        await append(session, events)
        await session.commit()


def _figure(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">.*?<span class="value">([^<]*)<', html, re.S)
    assert found, testid
    return found.group(1)


async def test_the_figures_count_thirty_vietnam_days_and_the_busiest_clients(site: Site) -> None:
    busy = await make_client(site, "Cổng DVC tỉnh Gia Lai")
    quiet = await make_client(site, "Cổng DVC Hà Nội")
    noon_today = datetime.now(VIETNAM).replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC)
    events = [
        _event(noon_today - timedelta(days=40), busy, "citizen.read", "allowed"),  # outside the 30 days
        _event(noon_today - timedelta(days=20), busy, "citizen.verify", "allowed"),
        _event(noon_today - timedelta(days=20), busy, "citizen.verify", "denied"),
        _event(noon_today - timedelta(days=5), quiet, "household.read", "allowed"),
        _event(noon_today - timedelta(days=5), busy, "audit.search", "allowed"),  # not an access
        _event(noon_today - timedelta(days=1), busy, "citizen.read", "error"),
        _event(noon_today - timedelta(hours=1), busy, "citizen.read", "allowed"),
        _event(noon_today - timedelta(hours=1), None, "citizen.read", "denied"),
    ]
    await _append(site, events)
    admin, _ = await site.signed_in("quantri", "admin,approver")
    page = await admin.get("/console/")
    assert page.status_code == 200
    assert _figure(page.text, "dash-today") == "2"
    assert _figure(page.text, "dash-30days") == "6"
    assert _figure(page.text, "dash-denial-rate") == "33.3 %"
    assert _figure(page.text, "dash-pending") == "0"
    assert "dash-alerts" in page.text  # a marked placeholder (issue 19)
    busiest = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", page.text)
    assert busiest == [("Cổng DVC tỉnh Gia Lai", "4"), ("Cổng DVC Hà Nội", "1")]

    async with site.state.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(AccessDay))
        mark = await session.scalar(select(AccessDay.count).where(AccessDay.day == "seq"))
        head = await session.scalar(select(func.max(AuditEventRow.seq)))
    assert mark == head  # every event counted, once
    assert stored == 1 + 7  # the mark, and one row per (day, client, outcome) found (the 40-day-old one too)

    again = await admin.get("/console/")  # from the counted rows: the same figures
    assert _figure(again.text, "dash-30days") == "6"
    await _append(site, [_event(noon_today, busy, "citizen.verify", "denied")])  # counted at the next view
    again = await admin.get("/console/")
    assert _figure(again.text, "dash-30days") == "7"
    assert _figure(again.text, "dash-denial-rate") == "42.9 %"
    async with site.state.sessionmaker() as session:
        await session.execute(delete(AccessDay))  # a cache: counted again when gone
        await session.commit()
    third = await admin.get("/console/")
    assert _figure(third.text, "dash-30days") == "7"
    assert _figure(third.text, "dash-denial-rate") == "42.9 %"


async def test_an_analyst_sees_no_pending_figure(site: Site) -> None:
    analyst, _ = await site.signed_in("thongke", "analyst")
    page = await analyst.get("/console/")
    assert _figure(page.text, "dash-pending") == "–"
    assert _figure(page.text, "dash-30days") == "0"
