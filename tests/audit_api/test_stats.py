"""Counts by client, purpose, outcome, action and UTC day; ``since`` inclusive, ``until`` exclusive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.audit import writer as audit_writer
from app.audit.dependencies import AUDIT
from app.audit.writer import AuditEvent, Outcome
from tests.audit_api.conftest import Auditor, auditor
from tests.harness import Gateway

STATS = "/v1/audit/stats"
WINDOW = {"since": "2001-03-01T00:00:00Z", "until": "2001-03-04T00:00:00Z"}


async def write_at(
    gw: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    at: datetime,
    *events: tuple[str, str | None, Outcome, str],
) -> None:
    """Events stored with ``at`` as their time (the writer stamps the time itself)."""
    monkeypatch.setattr(audit_writer, "utcnow", lambda: at)
    await gw.state[AUDIT].write(
        [
            AuditEvent(
                action=action,
                outcome=outcome,
                status_code=200,
                actor=client,
                client_id=client,
                purpose=purpose,
            )
            for client, purpose, outcome, action in events
        ]
    )
    monkeypatch.undo()


async def stats(audit: Auditor, **params: str) -> dict[str | None, int]:
    response = await audit.get(STATS, **params)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return {item["key"]: item["count"] for item in items}


async def test_counts_for_every_grouping_in_a_window(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = await auditor(gw)
    await write_at(
        gw, monkeypatch, datetime(2001, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        ("c-a", "P", "allowed", "citizen.read"),
        ("c-a", "P", "allowed", "citizen.read"),
    )  # fmt: skip
    await write_at(
        gw, monkeypatch, datetime(2001, 3, 2, tzinfo=UTC),
        ("c-b", "P", "denied", "citizen.verify"),
        ("c-a", "Q", "allowed", "citizen.read"),
        ("c-b", None, "error", "household.read"),
    )  # fmt: skip
    await write_at(
        gw, monkeypatch, datetime(2001, 3, 3, 12, tzinfo=UTC), ("c-c", "P", "allowed", "citizen.verify")
    )
    await write_at(
        gw, monkeypatch, datetime(2001, 3, 4, tzinfo=UTC), ("c-d", "P", "allowed", "citizen.verify")
    )

    assert await stats(audit, group_by="day", **WINDOW) == {"2001-03-01": 2, "2001-03-02": 3, "2001-03-03": 1}
    assert await stats(audit, group_by="client", **WINDOW) == {"c-a": 3, "c-b": 2, "c-c": 1}
    assert await stats(audit, group_by="purpose", **WINDOW) == {"P": 4, "Q": 1, None: 1}
    assert await stats(audit, group_by="outcome", **WINDOW) == {"allowed": 4, "denied": 1, "error": 1}
    assert await stats(audit, group_by="action", **WINDOW) == {
        "citizen.read": 3,
        "citizen.verify": 2,
        "household.read": 1,
    }
    # since inclusive, until exclusive, any offset
    assert await stats(audit, group_by="day", since="2001-03-02T00:00:00Z", until="2001-03-03T12:00:00Z") == {
        "2001-03-02": 3
    }
    assert await stats(
        audit, group_by="day", since="2001-03-02T06:59:59.999999+07:00", until="2001-03-02T07:00:00+07:00"
    ) == {"2001-03-01": 2}
    assert await stats(audit, group_by="outcome", until="2001-03-02T00:00:00Z") == {"allowed": 2}
    assert (await stats(audit, group_by="client", since="2001-03-04T00:00:00Z"))["c-d"] == 1

    response = await audit.get(STATS, group_by="purpose", **WINDOW)
    assert response.json()["items"][-1] == {"key": None, "count": 1}  # the group without a key comes last
    own = (await audit.search(action="audit.stats"))["items"]
    assert len(own) == 10
    assert {e["subject_ref"] for e in own} == {None}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "missing"),
        ({"group_by": "week"}, "literal_error"),
        ({"group_by": "day", "since": "2001-03-01T00:00:00"}, "timezone_aware"),
        ({"group_by": "day", "until": "yesterday"}, "datetime_parsing"),
    ],
)
async def test_bad_stats_queries_are_422(sqlite_gw: Gateway, params: dict[str, str], code: str) -> None:
    audit = await auditor(sqlite_gw)
    response = await audit.get(STATS, **params)
    assert response.status_code == 422, response.text
    assert [e["code"] for e in response.json()["errors"]] == [code]
