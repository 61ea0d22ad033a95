"""A resident's access report: citizen-data events only, newest first, with client names and purposes."""

from __future__ import annotations

import json

from app.audit.dependencies import AUDIT
from app.audit.writer import AuditEvent
from tests.audit_api.conftest import all_rows, auditor
from tests.harness import HEAD, JRAI, PURPOSE, Gateway

REPORT = "/v1/audit/subject-report"
ITEM = {
    "at", "client_id", "client_name", "action", "purpose", "purpose_title", "legal_basis", "fields",
    "dossier_id", "outcome",
}  # fmt: skip


async def test_report_newest_first_with_names_titles_and_legal_basis(gw: Gateway) -> None:
    portal = await gw.register()
    reporter = await auditor(gw, scopes=("audit.subject_report",))
    audit = await auditor(gw)
    await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"}, dossier="HS-1")
    await gw.call(
        portal, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name"]}, dossier="HS-2"
    )
    await gw.call(portal, "/v1/citizens/household", {"personal_id": HEAD}, dossier="HS-3")
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": JRAI})  # someone else
    await gw.state[AUDIT].write(  # a client and a purpose no longer (or never) registered
        [
            AuditEvent(
                action="citizen.read", outcome="allowed", status_code=200, actor="c_gone", client_id="c_gone",
                purpose="DA-XOA", subject=HEAD, fields=("full_name",),
            )
        ]
    )  # fmt: skip
    await audit.search(personal_id=HEAD)  # an audit read about HEAD is not a citizen-data event
    refs = gw.state[AUDIT].hasher.refs(HEAD)
    actions = {"citizen.verify", "citizen.read", "household.read"}
    expected = [r for r in await all_rows(gw) if r.subject_ref in refs and r.action in actions][::-1]
    assert len(expected) == 5

    report = await reporter.report(HEAD)
    items = report["items"]
    assert report["next_cursor"] is None
    assert all(item.keys() == ITEM for item in items)
    assert [(i["action"], i["dossier_id"]) for i in items] == [(r.action, r.dossier_id) for r in expected]
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    assert all(i["at"].endswith("Z") for i in items)
    gone, member, household, lookup, verify = items
    assert gone == {
        **gone,
        "client_name": None,
        "purpose": "DA-XOA",
        "purpose_title": None,
        "legal_basis": None,
    }
    assert lookup == {
        "at": lookup["at"],
        "client_id": portal.client_id,
        "client_name": "Cổng DVC tỉnh Gia Lai",
        "action": "citizen.read",
        "purpose": PURPOSE,
        "purpose_title": "Đăng ký thường trú",
        "legal_basis": "Luật Cư trú 2020, Điều 21",
        "fields": ["full_name"],
        "dossier_id": "HS-2",
        "outcome": "allowed",
    }
    assert member["fields"] == ["full_name", "relation_to_head"]
    assert (household["action"], verify["action"], verify["fields"]) == (
        "household.read",
        "citizen.verify",
        ["gender"],
    )
    assert HEAD not in json.dumps(report)

    walked, cursor = [], None
    while True:
        page = await reporter.report(HEAD, limit=2, **({"cursor": cursor} if cursor else {}))
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == items

    own = [r for r in await all_rows(gw) if r.action == "audit.subject_report"]
    assert {r.subject_ref for r in own} == {gw.state[AUDIT].hasher.ref(HEAD)}
    assert {r.client_id for r in own} == {reporter.client.client_id}


async def test_report_refuses_bad_ids_and_foreign_cursors(sqlite_gw: Gateway) -> None:
    gw = sqlite_gw
    portal = await gw.register()
    audit = await auditor(gw)
    for _ in range(3):
        await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
    search_cursor = (await audit.search(limit=1))["next_cursor"]
    report_cursor = (await audit.report(HEAD, limit=1))["next_cursor"]

    response = await audit.post(REPORT, {"personal_id": "1234"})
    assert (response.status_code, response.json()["code"]) == (422, "invalid_personal_id")
    assert "1234" not in response.text.replace(response.json()["request_id"], "")
    for body in (
        {"personal_id": HEAD, "cursor": search_cursor},
        {"personal_id": JRAI, "cursor": report_cursor},  # another resident's cursor
        {"personal_id": HEAD, "limit": 1001},
        {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"},
        {},
    ):
        response = await audit.post(REPORT, body)
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), body
    assert len((await audit.report(HEAD, cursor=report_cursor))["items"]) == 2
