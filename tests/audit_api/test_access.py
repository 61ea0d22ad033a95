"""Who may read the audit log, and the evidence every read of it leaves."""

from __future__ import annotations

import json
from typing import Any

from app.audit.dependencies import AUDIT
from app.audit.models import AuditEventRow
from tests.audit_api.conftest import Auditor, all_rows, auditor
from tests.harness import HEAD, Gateway

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/audit/events/search", {}),
    ("GET", "/v1/audit/events/00000000-0000-4000-8000-000000000000", None),
    ("POST", "/v1/audit/export?format=csv", {}),
    ("GET", "/v1/audit/stats?group_by=day", None),
    ("POST", "/v1/audit/subject-report", {"personal_id": HEAD}),
]


async def call(gw: Gateway, method: str, path: str, body: Any, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await gw.http.request(method, path, json=body, headers=headers)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code


async def test_only_audit_scopes_open_the_audit_routes(sqlite_gw: Gateway) -> None:
    gw = sqlite_gw
    portal = await gw.register()  # every citizen scope
    reporter = await auditor(gw, scopes=("audit.subject_report",))
    audit = await auditor(gw)

    assert [await call(gw, m, p, b, None) for m, p, b in ROUTES] == [401] * 5
    assert [await call(gw, m, p, b, portal.token) for m, p, b in ROUTES] == [403] * 5
    assert [await call(gw, m, p, b, reporter.client.token) for m, p, b in ROUTES] == [403] * 4 + [200]
    assert [await call(gw, m, p, b, audit.client.token) for m, p, b in ROUTES] == [200, 404, 200, 200, 200]
    # refused by scope before anything is read: only the two admitted callers' reads are in the log
    readers = {r.client_id for r in await all_rows(gw) if r.action.startswith("audit.")}
    assert readers == {reporter.client.client_id, audit.client.client_id}


async def test_every_read_of_the_log_leaves_its_own_event(gw: Gateway) -> None:
    portal = await gw.register()
    await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
    audit = await auditor(gw)
    sent = {"X-Request-Id": "kiem-toan-001"}

    async def post(path: str, body: Any) -> None:
        response = await gw.http.post(path, json=body, headers={**audit.headers(), **sent})
        assert response.status_code == 200, response.text

    async def get(path: str, **params: str) -> None:
        response = await gw.http.get(path, params=params, headers={**audit.headers(), **sent})
        assert response.status_code == 200, response.text

    first = (await audit.search(limit=1))["items"][0]
    before = len(await all_rows(gw))
    await post("/v1/audit/events/search", {"personal_id": HEAD})
    await get(f"/v1/audit/events/{first['event_id']}")
    await post("/v1/audit/export?format=ndjson", {"client_id": portal.client_id})
    await get("/v1/audit/stats", group_by="client")
    await post("/v1/audit/subject-report", {"personal_id": HEAD})
    await _refused(audit)
    rows = (await all_rows(gw))[before:]

    ref = gw.state[AUDIT].hasher.ref(HEAD)
    assert [(r.action, r.outcome, r.status_code, r.subject_ref, r.reason) for r in rows] == [
        ("audit.search", "allowed", 200, ref, None),
        ("audit.event", "allowed", 200, None, None),
        ("audit.export", "allowed", 200, None, None),
        ("audit.stats", "allowed", 200, None, None),
        ("audit.subject_report", "allowed", 200, ref, None),
        ("audit.search", "denied", 422, None, "validation_failed"),
    ]
    assert all(r.actor == r.client_id == audit.client.client_id for r in rows)
    assert [r.request_id for r in rows[:5]] == ["kiem-toan-001"] * 5
    assert all(r.fields == [] and r.sensitive_fields == [] and r.detail is None for r in rows)
    assert HEAD not in json.dumps([_columns(r) for r in await all_rows(gw)], default=str)


async def _refused(audit: Auditor) -> None:
    response = await audit.post("/v1/audit/events/search", {"cursor": "eyJ2IjoxfQ"})
    assert response.status_code == 422


def _columns(row: AuditEventRow) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in AuditEventRow.__table__.columns}
