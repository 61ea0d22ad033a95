"""The auditor's console pages over HTTP (docs/contract.md, section 15; docs/console.md): audit search by
personal ID behind an opaque token, paging, event detail, export, and each read audited as the operator
exactly like the REST API's."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.dependencies import AUDIT
from app.audit.models import AuditEventRow
from app.audit.writer import AuditContext
from app.console.dashboard import VIETNAM
from tests.console.conftest import Site, csrf_of
from tests.harness import HEAD, JRAI

_ROW = re.compile(r'data-testid="audit-row" data-seq="(\d+)"')
_NEXT = re.compile(r'data-testid="audit-next"|href="(/console/audit/r/[^"?]+\?cursor=[^"]+)"')
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


async def accesses(site: Site, personal_id: str, count: int, client_id: str = "c_gialai") -> None:
    """``count`` citizen reads of one resident by a client, written as the citizen API writes them."""
    call = AuditContext.of_client(client_id, "req-test", purpose="1.001234.000.00.00.H12", dossier_id="HS-1")
    events = [call.event("citizen.read", "allowed", 200, subject=personal_id, fields=["full_name"])] * count
    for start in range(0, count, 50):
        await site.state[AUDIT].write(events[start : start + 50])


async def rows(site: Site, **where: Any) -> list[AuditEventRow]:
    async with site.state.sessionmaker() as session:
        statement = select(AuditEventRow).order_by(AuditEventRow.seq)
        for name, value in where.items():
            statement = statement.where(getattr(AuditEventRow, name) == value)
        return list(await session.scalars(statement))


async def search(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/console/audit")
    assert page.status_code == 200, page.text
    return await client.post("/console/audit", data={"csrf_token": csrf_of(page.text), **fields})


def seqs(html: str) -> list[int]:
    return [int(seq) for seq in _ROW.findall(html)]


def next_link(html: str) -> str | None:
    found = re.search(r'href="(/console/audit/r/[^"?]+\?cursor=[^"]+)" data-testid="audit-next"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def no_personal_id(response: httpx.Response, personal_id: str) -> None:
    assert personal_id not in str(response.url)
    assert personal_id not in response.headers.get("location", "")
    title = _TITLE.search(response.text)
    assert title is None or personal_id not in title.group(1)
    for link in re.findall(r'href="([^"]+)"', response.text):
        assert personal_id not in link
    for action in re.findall(r'action="([^"]+)"', response.text):
        assert personal_id not in action


async def test_only_an_auditor_opens_the_audit_pages(site: Site) -> None:
    client, _ = await site.signed_in("quantri", "admin,approver,analyst")
    assert (await client.get("/console/audit")).status_code == 403
    page = await client.get("/console/")
    answer = await client.post("/console/audit", data={"csrf_token": csrf_of(page.text), "personal_id": HEAD})
    assert answer.status_code == 403
    assert (await client.get("/console/audit/events/0")).status_code == 403
    assert not await rows(site, action="audit.search")


async def test_a_search_without_the_csrf_token_is_403_and_reads_nothing(site: Site) -> None:
    client, _ = await site.signed_in("kiemtoan", "auditor")
    for data in ({}, {"csrf_token": "forged"}):
        refused = await client.post("/console/audit", data={**data, "personal_id": HEAD})
        assert refused.status_code == 403
        assert HEAD not in refused.text
    assert not await rows(site, action="audit.search")


async def test_search_by_personal_id_behind_a_token_audited_as_the_operator(site: Site) -> None:
    await accesses(site, HEAD, 3)
    await accesses(site, JRAI, 2)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    posted = await search(client, personal_id=HEAD)
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert location.startswith("/console/audit/r/")
    no_personal_id(posted, HEAD)
    shown = await client.get(location)
    assert shown.status_code == 200, shown.text
    no_personal_id(shown, HEAD)
    stored = await rows(site, action="citizen.read")
    head_ref = stored[0].subject_ref
    assert seqs(shown.text) == [row.seq for row in reversed(stored) if row.subject_ref == head_ref]
    for testid in ("audit-personal-id", "audit-submit", "audit-export-csv", "audit-export-ndjson"):
        assert f'data-testid="{testid}"' in shown.text
    (read,) = await rows(site, action="audit.search")
    assert read.actor == "op:kiemtoan"
    assert read.client_id is None
    assert read.outcome == "allowed"
    assert read.subject_ref == head_ref
    # The token is this session's: another auditor's session cannot open it.
    other, _ = await site.signed_in("kiemtoan2", "auditor")
    assert (await other.get(location)).status_code == 404
    middle = len(location) // 2
    forged = location[:middle] + ("A" if location[middle] != "A" else "B") + location[middle + 1 :]
    assert (await client.get(forged)).status_code == 404


async def test_bad_input_is_shown_in_vietnamese_beside_its_field(site: Site) -> None:
    client, _ = await site.signed_in("kiemtoan", "auditor")
    wrong_time = await search(client, since="hôm qua", client_id="c_gialai")
    assert wrong_time.status_code == 422
    assert 'data-testid="audit-error-since"' in wrong_time.text
    assert "Thời gian không hợp lệ" in wrong_time.text
    assert not await rows(site, action="audit.search")

    posted = await search(client, personal_id="05206800010X")
    assert posted.status_code == 303
    no_personal_id(posted, "05206800010X")
    refused = await client.get(posted.headers["location"])
    assert refused.status_code == 422
    assert 'data-testid="audit-error-personal-id"' in refused.text
    assert "Số định danh cá nhân không hợp lệ" in refused.text
    assert "Traceback" not in refused.text
    # Refused and audited as the API refuses it: denied, invalid_personal_id, no subject.
    (read,) = await rows(site, action="audit.search")
    assert (read.actor, read.outcome, read.reason, read.subject_ref) == (
        "op:kiemtoan",
        "denied",
        "invalid_personal_id",
        None,
    )
    too_long = await search(client, dossier_id="x" * 65)
    assert too_long.status_code == 422
    assert "Giá trị quá dài" in too_long.text


async def test_paging_never_skips_or_repeats_while_events_arrive(site: Site) -> None:
    await accesses(site, HEAD, 120)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    posted = await search(client, personal_id=HEAD, order="asc")
    page = await client.get(posted.headers["location"])
    seen: list[int] = []
    pages = 0
    while True:
        assert page.status_code == 200, page.text
        seen += seqs(page.text)
        pages += 1
        await accesses(site, HEAD, 1)  # arrives while the auditor pages (after the search's last seq)
        link = next_link(page.text)
        if link is None:
            break
        assert HEAD not in link
        page = await client.get(link)
    assert pages >= 3
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    # Every event naming the resident, in order: the accesses, those that arrived meanwhile, and the
    # console's own audit.search events (a search by personal ID records its subject, as the API's does).
    head_ref = (await rows(site, action="citizen.read"))[0].subject_ref
    stored = [row.seq for row in await rows(site, subject_ref=head_ref)]
    assert seen == stored[: len(seen)]
    assert len(seen) >= 120
    tampered = await client.get(posted.headers["location"] + "?cursor=eyJ2IjoyLCJzZXEiOjEsInRhZyI6IngifQ")
    assert tampered.status_code == 422
    assert "Liên kết trang không hợp lệ" in tampered.text


async def test_time_range_in_vietnam_time(site: Site) -> None:
    await accesses(site, HEAD, 2)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    now_vn = datetime.now(UTC).astimezone(VIETNAM)
    window = {
        "since": (now_vn - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now_vn + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    inside = await client.get((await search(client, personal_id=HEAD, **window)).headers["location"])
    assert len(seqs(inside.text)) == 2
    # One hour later in UTC would still include them if the times were read as UTC: they must not be.
    later = {"since": (now_vn + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")}
    after = await client.get((await search(client, personal_id=HEAD, **later)).headers["location"])
    assert seqs(after.text) == []
    assert 'data-testid="audit-none"' in after.text


async def test_export_csv_and_ndjson_are_the_searched_events_and_audited(site: Site) -> None:
    await accesses(site, HEAD, 3)
    await accesses(site, JRAI, 1)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    location = (await search(client, personal_id=HEAD)).headers["location"]
    page = await client.get(location)
    head_ref = (await rows(site, action="citizen.read"))[0].subject_ref
    exported: dict[str, list[dict[str, Any]]] = {}
    for chosen in ("csv", "ndjson"):
        # Every event naming the resident as the log stands (the console's own reads name it too), newest
        # first as the search was ordered; the export's own event is not in it.
        expected = [row.seq for row in reversed(await rows(site, subject_ref=head_ref))]
        answer = await client.post(
            f"{location}/export", data={"csrf_token": csrf_of(page.text), "format": chosen}
        )
        assert answer.status_code == 200, answer.text
        assert "attachment" in answer.headers["content-disposition"]
        assert HEAD not in answer.text
        if chosen == "csv":
            exported[chosen] = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
            assert [int(e["seq"]) for e in exported[chosen]] == expected
        else:
            exported[chosen] = [json.loads(line) for line in answer.text.splitlines()]
            assert [e["seq"] for e in exported[chosen]] == expected
    by_seq = {row.seq: row for row in await rows(site)}
    for event in exported["ndjson"]:
        assert event["hash"] == by_seq[event["seq"]].hash
        assert event["event_id"] == by_seq[event["seq"]].event_id
    assert {e["hash"] for e in exported["csv"]} <= {e["hash"] for e in exported["ndjson"]}
    events = await rows(site, action="audit.export")
    assert [(e.actor, e.outcome, e.client_id) for e in events] == [("op:kiemtoan", "allowed", None)] * 2
    assert all(e.subject_ref == exported["ndjson"][0]["subject_ref"] for e in events)
    forged = await client.post(f"{location}/export", data={"csrf_token": "forged", "format": "csv"})
    assert forged.status_code == 403
    assert len(await rows(site, action="audit.export")) == 2


async def test_event_detail_shows_its_place_in_the_chain(site: Site) -> None:
    await accesses(site, HEAD, 2)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    second = (await rows(site, action="citizen.read"))[1]
    page = await client.get(f"/console/audit/events/{second.event_id}")
    assert page.status_code == 200, page.text
    assert f'data-testid="audit-event-seq">{second.seq}<' in page.text
    assert second.hash in page.text
    assert second.prev_hash in page.text
    assert second.at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S") in page.text
    for member in ("event_id", "subject_ref", "fields", "end_user", "client_ip", "job_id", "format"):
        assert f'data-member="{member}"' in page.text
    (read,) = await rows(site, action="audit.event")
    assert (read.actor, read.outcome) == ("op:kiemtoan", "allowed")
    missing = await client.get("/console/audit/events/nothing-here")
    assert missing.status_code == 404
    assert "Không có sự kiện nhật ký nào" in missing.text


async def test_the_language_switch_keeps_the_results_and_says_it_in_english(site: Site) -> None:
    await accesses(site, HEAD, 1)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    location = (await search(client, personal_id=HEAD)).headers["location"]
    switched = await client.get("/console/lang", params={"to": "en", "next": location})
    assert switched.status_code == 303
    english = await client.get(switched.headers["location"])
    assert english.status_code == 200, english.text
    assert "<title>Audit search" in english.text
    assert len(seqs(english.text)) == 1
    no_personal_id(english, HEAD)


async def test_no_log_line_names_the_personal_id(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    await accesses(site, HEAD, 2)
    client, _ = await site.signed_in("kiemtoan", "auditor")
    caplog.set_level(logging.DEBUG)
    location = (await search(client, personal_id=HEAD)).headers["location"]
    page = await client.get(location)
    await client.post(f"{location}/export", data={"csrf_token": csrf_of(page.text), "format": "csv"})
    await client.get(location)
    await client.get((await search(client, personal_id="05206800010X")).headers["location"])
    assert caplog.records
    for record in caplog.records:
        assert HEAD not in record.getMessage()
        assert "05206800010X" not in record.getMessage()
