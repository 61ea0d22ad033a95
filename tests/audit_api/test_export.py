"""Streamed export: NDJSON and CSV (BOM, header, RFC 4180, Vietnamese intact), unpaged, audited first."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any

import pytest

from app.audit import service as audit_service
from app.audit.dependencies import AUDIT
from app.audit.export import ENCODERS
from app.audit.schemas import EVENT_COLUMNS, ExportRequest
from app.audit.service import AuditService, Reader
from app.auth.dependencies import KEYS
from tests.audit_api.conftest import all_rows, auditor
from tests.harness import HEAD, Gateway

EXPORT = "/v1/audit/export"
PORTAL_NAME = "Cổng DVC tỉnh Gia Lai"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several keyset batches even for a short log."""
    monkeypatch.setattr(audit_service, "EXPORT_BATCH_SIZE", 3)


async def test_ndjson_export_streams_every_matching_event(gw: Gateway) -> None:
    portal = await gw.register()
    audit = await auditor(gw)
    for _ in range(4):
        await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
    await gw.call(portal, "/v1/citizens/household", {"personal_id": HEAD})
    rows = await all_rows(gw)
    expected = [r.seq for r in rows if r.client_id == portal.client_id]
    about_head = [r.seq for r in rows if r.subject_ref == gw.state[AUDIT].hasher.ref(HEAD)]
    assert len(about_head) == 6  # four verifications, the household read, HEAD as a member

    response = await audit.post(EXPORT, {"client_id": portal.client_id}, format="ndjson")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"].startswith('attachment; filename="dancu-audit-')
    assert response.headers["content-disposition"].endswith('.ndjson"')
    assert response.text.endswith("\n")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["seq"] for e in events] == expected
    assert all(e.keys() == set(EVENT_COLUMNS) and e["at"].endswith("Z") for e in events)
    search = (await audit.search(client_id=portal.client_id, limit=1000))["items"]
    assert events == search

    desc = await audit.post(EXPORT, {"personal_id": HEAD, "order": "desc"})  # ndjson by default
    assert [json.loads(line)["seq"] for line in desc.text.splitlines()] == about_head[::-1]

    exports = [r for r in await all_rows(gw) if r.action == "audit.export"]
    assert [(r.outcome, r.status_code, r.client_id) for r in exports] == [
        ("allowed", 200, audit.client.client_id)
    ] * 2
    assert exports[0].subject_ref is None
    assert exports[1].subject_ref == gw.state[AUDIT].hasher.ref(HEAD)


async def test_csv_export_opens_in_a_spreadsheet_with_vietnamese_intact(gw: Gateway) -> None:
    portal = await gw.register()
    audit = await auditor(gw)
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD}, dossier="=HYPERLINK(1)")
    await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"}, dossier='HS "1", 2')
    before = await all_rows(gw)

    response = await audit.post(EXPORT, {}, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:].decode("utf-8")
    assert "\r\n" in text
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert table[0] == list(EVENT_COLUMNS)
    records = [dict(zip(table[0], line, strict=True)) for line in table[1:]]
    assert [int(r["seq"]) for r in records] == [r.seq for r in before]  # the log as asked, without itself

    created = next(r for r in records if r["action"] == "admin.client.create")
    detail = json.loads(created["detail"])
    assert detail["after"]["name"] == PORTAL_NAME
    assert unicodedata.is_normalized("NFC", detail["after"]["name"])
    purpose = next(r for r in records if r["action"] == "admin.purpose.create")
    assert json.loads(purpose["detail"])["after"]["title"] == "Đăng ký thường trú"

    read = next(r for r in records if r["action"] == "citizen.read")
    assert read["dossier_id"] == "'=HYPERLINK(1)"  # neutralised for spreadsheets
    assert read["request_id"]
    assert read["subject_ref"].startswith("k1:")
    assert isinstance(json.loads(read["fields"]), list)
    assert json.loads(read["sensitive_fields"]) == []
    assert read["detail"] == ""
    assert read["status_code"] == "200"
    verify = next(r for r in records if r["action"] == "citizen.verify")
    assert verify["dossier_id"] == 'HS "1", 2'
    assert json.loads(verify["fields"]) == ["gender"]

    exact = await audit.post(EXPORT, {"action": "citizen.read"})
    assert json.loads(exact.text)["dossier_id"] == "=HYPERLINK(1)"  # NDJSON is exact


async def test_export_event_is_committed_before_the_first_byte(sqlite_gw: Gateway) -> None:
    gw = sqlite_gw
    await auditor(gw)
    service = AuditService(
        gw.state.sessionmaker, gw.state[AUDIT], cursors=gw.state[KEYS].cursors, export_batch_size=2
    )
    stream = await service.export(Reader("c_auditor", "req-1"), ExportRequest(), ENCODERS["ndjson"])
    rows = await all_rows(gw)
    assert (rows[-1].action, rows[-1].client_id, rows[-1].request_id) == (
        "audit.export",
        "c_auditor",
        "req-1",
    )
    body = b"".join([chunk async for chunk in stream])
    assert [json.loads(line)["seq"] for line in body.splitlines()] == [r.seq for r in rows[:-1]]


@pytest.mark.parametrize(
    ("body", "params", "loc"),
    [
        ({"limit": 10}, {}, ["body", "limit"]),
        ({"cursor": "abc"}, {}, ["body", "cursor"]),
        ({"since": "2026-01-01T00:00:00"}, {}, ["body", "since"]),
        ({}, {"format": "xlsx"}, ["query", "format"]),
    ],
)
async def test_export_refuses_paging_and_bad_input(
    sqlite_gw: Gateway, body: dict[str, Any], params: dict[str, str], loc: list[str]
) -> None:
    audit = await auditor(sqlite_gw)
    response = await audit.post(EXPORT, body, **params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert [e["loc"] for e in response.json()["errors"]] == [loc]
    assert not [r for r in await all_rows(sqlite_gw) if r.action == "audit.export"]
