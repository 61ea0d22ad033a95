"""Search and single events: every filter, personal IDs through every subject key, keyset pages."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest

from app.audit.dependencies import AUDIT, AUDIT_READS
from app.audit.models import AuditEventRow
from app.audit.repository import AuditRepository
from app.audit.schemas import rfc3339
from app.lifespan import AUDIT_READ_CONCURRENCY
from tests.audit_api.conftest import K1, K2, OTHER_PURPOSE, Site, all_rows, auditor
from tests.harness import HEAD, JRAI, NAME_D, PURPOSE, UNKNOWN, Gateway

EVENT_MEMBERS = {
    "event_id", "seq", "at", "request_id", "client_id", "actor", "action", "purpose", "dossier_id",
    "subject_ref", "fields", "sensitive_fields", "outcome", "status_code", "reason", "detail", "end_user",
    "client_ip", "job_id", "format", "prev_hash", "hash",
}  # fmt: skip
SEARCH = "/v1/audit/events/search"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def unpaged_ids(count: int) -> list[str]:
    """Well-formed IDs never on record (male, born 1999, Gia Lai's legacy code)."""
    return [f"052099{i:06d}" for i in range(count)]


async def test_each_filter_alone_and_combined(gw: Gateway) -> None:
    portal = await gw.register(purposes=(PURPOSE, OTHER_PURPOSE))
    other = await gw.register()
    audit = await auditor(gw)
    await gw.call(
        portal,
        "/v1/citizens/verify",
        {"personal_id": HEAD, "gender": "male"},
        dossier="HS-1",
        headers={"X-End-User": "lan@gialai.gov.vn"},
    )
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": NAME_D}, purpose=OTHER_PURPOSE)
    await gw.call(other, "/v1/citizens/household", {"personal_id": HEAD})
    await gw.call(other, "/v1/citizens/lookup", {"personal_id": NAME_D}, purpose="CHUA-DANG-KY")
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": UNKNOWN})
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": JRAI})  # out of province: denied
    citizen = [r for r in await all_rows(gw) if r.action.startswith(("citizen.", "household."))]
    assert len({r.at for r in citizen}) >= 4
    since, until = citizen[1].at, citizen[-1].at
    plus7 = timezone(timedelta(hours=7))
    refs = gw.state[AUDIT].hasher.refs

    cases: list[tuple[dict[str, Any], Callable[[AuditEventRow], bool]]] = [
        ({"client_id": portal.client_id}, lambda r: r.client_id == portal.client_id),
        ({"personal_id": HEAD}, lambda r: r.subject_ref in refs(HEAD)),
        ({"purpose": OTHER_PURPOSE}, lambda r: r.purpose == OTHER_PURPOSE),
        ({"action": "household.read"}, lambda r: r.action == "household.read"),
        ({"outcome": "denied"}, lambda r: r.outcome == "denied"),
        ({"dossier_id": "HS-1"}, lambda r: r.dossier_id == "HS-1"),
        ({"actor": portal.client_id}, lambda r: r.actor == portal.client_id),
        ({"end_user": "lan@gialai.gov.vn"}, lambda r: r.end_user == "lan@gialai.gov.vn"),
        ({"client_ip": "127.0.0.1"}, lambda r: r.client_ip == "127.0.0.1"),
        ({"since": rfc3339(since)}, lambda r: r.at >= since),
        ({"until": until.astimezone(plus7).isoformat()}, lambda r: r.at < until),
        (
            {"client_id": other.client_id, "action": "citizen.read"},
            lambda r: r.client_id == other.client_id and r.action == "citizen.read",
        ),
        (
            {"personal_id": NAME_D, "purpose": OTHER_PURPOSE, "outcome": "allowed"},
            lambda r: r.subject_ref in refs(NAME_D) and r.purpose == OTHER_PURPOSE and r.outcome == "allowed",
        ),
        (
            {"since": rfc3339(since), "until": rfc3339(until), "client_id": portal.client_id},
            lambda r: since <= r.at < until and r.client_id == portal.client_id,
        ),
        (
            {
                "client_id": portal.client_id,
                "personal_id": HEAD,
                "purpose": PURPOSE,
                "action": "citizen.verify",
                "outcome": "allowed",
                "since": rfc3339(citizen[0].at),
                "until": rfc3339(until),
            },
            lambda r: r.client_id == portal.client_id and r.subject_ref in refs(HEAD),
        ),
    ]
    for body, wanted in cases:
        # The search reads before writing its own event: what it must find is the log as it stands now.
        expected = [r.seq for r in await all_rows(gw) if wanted(r)]
        page = await audit.search(**body, limit=1000)
        assert [e["seq"] for e in page["items"]] == expected, body
        assert expected, body
        assert page["next_cursor"] is None

    verify = (await audit.search(action="citizen.verify"))["items"][0]
    assert verify.keys() == EVENT_MEMBERS
    assert verify["at"].endswith("Z")
    assert verify["subject_ref"] in refs(HEAD)
    assert verify["dossier_id"] == "HS-1"
    assert verify["end_user"] == "lan@gialai.gov.vn"
    assert verify["client_ip"] == "127.0.0.1"
    assert verify["fields"] == ["gender"]
    assert HEAD not in json.dumps(verify)


async def test_personal_id_search_finds_events_under_every_subject_key(site: Site) -> None:
    async with site.start(subject_keys=K1) as gw:
        portal = await gw.register()
        await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
    async with site.start(subject_keys=f"{K2},{K1}") as gw:  # k2 now writes; k1 still searches
        portal = await gw.register()
        await gw.call(portal, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
        audit = await auditor(gw)
        found = (await audit.search(personal_id=HEAD, action="citizen.verify"))["items"]
        assert sorted(e["subject_ref"].split(":")[0] for e in found) == ["k1", "k2"]
        own = [r for r in await all_rows(gw) if r.action == "audit.search"]
        assert [r.subject_ref for r in own] == [gw.state[AUDIT].hasher.ref(HEAD)]
        assert own[0].subject_ref.startswith("k2:")  # type: ignore[union-attr]
    async with site.start(subject_keys=K2) as gw:  # k1 retired: what it hashed is out of reach
        audit = await auditor(gw)
        found = (await audit.search(personal_id=HEAD, action="citizen.verify"))["items"]
        assert [e["subject_ref"].split(":")[0] for e in found] == ["k2"]


async def test_pages_walk_every_event_once_in_both_orders(gw: Gateway) -> None:
    portal = await gw.register()
    audit = await auditor(gw)
    items = [{"personal_id": pid, "gender": "male"} for pid in unpaged_ids(23)]
    response = await gw.call(portal, "/v1/citizens/verify/batch", {"items": items})
    assert response.status_code == 200, response.text
    rows = await all_rows(gw)
    expected = [r.seq for r in rows if r.client_id == portal.client_id and r.action == "citizen.verify"]
    assert len(expected) == 23
    query = {"client_id": portal.client_id, "action": "citizen.verify"}

    found, sizes = await audit.walk(5, **query)
    assert [e["seq"] for e in found] == expected
    assert sizes == [5, 5, 5, 5, 3]
    found, sizes = await audit.walk(5, **query, order="desc")
    assert [e["seq"] for e in found] == expected[::-1]
    assert sizes == [5, 5, 5, 5, 3]
    found, sizes = await audit.walk(23, **query)  # exactly one full page: no cursor to an empty page
    assert sizes == [23]
    found, sizes = await audit.walk(1, **query, order="desc")
    assert [e["seq"] for e in found] == expected[::-1]
    assert (await audit.search(**query))["next_cursor"] is None  # default limit 50


async def test_one_event_by_id(gw: Gateway) -> None:
    portal = await gw.register()
    audit = await auditor(gw)
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name"]})
    listed = (await audit.search(action="citizen.read"))["items"][0]

    response = await audit.get(f"/v1/audit/events/{listed['event_id']}")
    assert response.status_code == 200, response.text
    assert response.json() == listed
    assert listed["fields"] == ["full_name"]

    body = problem(await audit.get("/v1/audit/events/00000000-0000-4000-8000-000000000000"), 404, "not_found")
    assert "00000000" not in json.dumps(body)
    reads = [r for r in await all_rows(gw) if r.action == "audit.event"]
    assert [(r.outcome, r.status_code, r.reason) for r in reads] == [
        ("allowed", 200, None),
        ("allowed", 404, "not_found"),
    ]


def _cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


def _payload(cursor: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return decoded


async def test_bad_requests_are_422(sqlite_gw: Gateway) -> None:
    gw = sqlite_gw
    portal = await gw.register()
    audit = await auditor(gw)
    await gw.call(
        portal,
        "/v1/citizens/verify/batch",
        {"items": [{"personal_id": p, "gender": "male"} for p in unpaged_ids(4)]},
    )
    cursor = (await audit.search(limit=1, action="citizen.verify"))["next_cursor"]
    assert cursor is not None
    forged = {**_payload(cursor), "seq": _payload(cursor)["seq"] + 1}

    cases: list[tuple[dict[str, Any], str, list[Any]]] = [
        ({"limit": 1001}, "less_than_equal", ["body", "limit"]),
        ({"limit": 0}, "greater_than_equal", ["body", "limit"]),
        ({"order": "newest"}, "literal_error", ["body", "order"]),
        ({"outcome": "maybe"}, "literal_error", ["body", "outcome"]),
        ({"surname": "Nguyễn"}, "extra_forbidden", ["body", "surname"]),
        ({"since": "2026-01-01T00:00:00"}, "timezone_aware", ["body", "since"]),
        ({"until": "2026-01-01"}, "datetime_parsing", ["body", "until"]),
        ({"since": 1767225600}, "datetime_parsing", ["body", "since"]),
        ({"cursor": "!!!"}, "invalid_cursor", ["body", "cursor"]),
        ({"cursor": "bm90IGpzb24"}, "invalid_cursor", ["body", "cursor"]),
        ({"cursor": cursor + "A"}, "invalid_cursor", ["body", "cursor"]),
        ({"cursor": _cursor(forged)}, "invalid_cursor", ["body", "cursor"]),
        (
            {"cursor": cursor, "action": "citizen.verify", "order": "desc"},
            "invalid_cursor",
            ["body", "cursor"],
        ),
        ({"cursor": cursor, "action": "citizen.read"}, "invalid_cursor", ["body", "cursor"]),
        ({"cursor": cursor}, "invalid_cursor", ["body", "cursor"]),
    ]
    for body, code, loc in cases:
        error = problem(await audit.post(SEARCH, body), 422, "validation_failed")
        assert [(e["code"], e["loc"]) for e in error["errors"]] == [(code, loc)], body
    assert (await audit.search(cursor=cursor, limit=1, action="citizen.verify"))["items"]

    error = problem(await audit.post(SEARCH, {"personal_id": "05206800010X"}), 422, "invalid_personal_id")
    assert "05206800010X" not in json.dumps(error)
    last = (await all_rows(gw))[-1]
    assert (last.action, last.outcome, last.status_code, last.reason, last.subject_ref) == (
        "audit.search", "denied", 422, "invalid_personal_id", None,
    )  # fmt: skip


@pytest.mark.parametrize("path", [SEARCH, "/v1/audit/subject-report"])
async def test_no_answer_without_evidence(
    sqlite_gw: Gateway, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    from app.audit.errors import AuditUnavailable

    audit = await auditor(sqlite_gw)

    async def fail(events: Any) -> None:
        raise AuditUnavailable()

    monkeypatch.setattr(sqlite_gw.state[AUDIT], "write", fail)
    body = problem(await audit.post(path, {"personal_id": HEAD}), 503, "audit_unavailable")
    assert "items" not in body


async def test_auditor_reads_are_worked_on_a_few_at_a_time_and_all_answered(gw: Gateway) -> None:
    """Memory: each read holds its page of rows; at most AUDIT_READ_CONCURRENCY run at once, none is lost."""
    audit = await auditor(gw)
    slots = gw.state[AUDIT_READS]
    busiest = 0
    real = AuditRepository.events

    async def watched(self: AuditRepository, *args: Any, **kwargs: Any) -> Any:
        nonlocal busiest
        busiest = max(busiest, AUDIT_READ_CONCURRENCY - slots._value)
        await asyncio.sleep(0.01)
        return await real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AuditRepository, "events", watched)
        answers = await asyncio.gather(*(audit.post("/v1/audit/events/search", {}) for _ in range(12)))
    assert all(answer.status_code == 200 for answer in answers)
    assert busiest == AUDIT_READ_CONCURRENCY
