"""The auditor API's holes from the security review (docs/security.md): timestamps outside the years
1900-9999 are 422 (never 500) in search, export and stats; a cursor whose tag was recomputed by the caller is
422; control characters in a filter are 422. On SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest

from tests.audit_api.conftest import auditor
from tests.harness import Gateway

EXTREMES = (
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
)


@pytest.mark.parametrize("member", ["since", "until"])
@pytest.mark.parametrize("value", EXTREMES)
async def test_timestamps_out_of_range_are_422_in_search_export_and_stats(
    gw: Gateway, member: str, value: str
) -> None:
    reader = await auditor(gw)

    searched = await reader.post("/v1/audit/events/search", {member: value})
    exported = await reader.post("/v1/audit/export", {member: value})
    counted = await reader.get("/v1/audit/stats", group_by="day", **{member: value})

    for response, where in ((searched, "body"), (exported, "body"), (counted, "query")):
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "loc": [where, member],
                "code": "datetime_out_of_range",
                "message": "Must lie between the years 1900 and 9999.",
            }
        ]


async def test_the_edges_of_the_range_are_answered(gw: Gateway) -> None:
    reader = await auditor(gw)
    window = {"since": "1900-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}

    searched = await reader.post("/v1/audit/events/search", window)
    counted = await reader.get("/v1/audit/stats", group_by="outcome", **window)

    assert searched.status_code == 200
    assert counted.status_code == 200


def _unkeyed_tag(seq: int, binding: dict[str, Any], version: int) -> str:
    """The tag as an unkeyed hash would make it: what anyone who has read the gateway's code can compute."""
    text = orjson.dumps(["dancu.audit.cursor", version, seq, binding], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:24]


async def test_a_cursor_with_a_recomputed_tag_is_422(gw: Gateway) -> None:
    reader = await auditor(gw)
    for _ in range(4):  # each search is itself an event: enough to page through
        await reader.search(limit=1)
    genuine = (await reader.search(limit=1))["next_cursor"]
    data = orjson.loads(base64.urlsafe_b64decode(genuine + "=" * (-len(genuine) % 4)))
    binding = {
        "kind": "events",
        "client_id": None,
        "subject": None,
        "purpose": None,
        "action": None,
        "outcome": None,
        "since": None,
        "until": None,
        "order": "asc",
    }
    forged_data = {"v": data["v"], "seq": 3, "tag": _unkeyed_tag(3, binding, data["v"])}
    forged = base64.urlsafe_b64encode(orjson.dumps(forged_data)).rstrip(b"=").decode()

    followed = await reader.post("/v1/audit/events/search", {"limit": 1, "cursor": genuine})
    refused = await reader.post("/v1/audit/events/search", {"limit": 1, "cursor": forged})

    assert followed.status_code == 200
    assert refused.status_code == 422
    assert [e["code"] for e in refused.json()["errors"]] == ["invalid_cursor"]


async def test_control_characters_in_a_filter_are_422(gw: Gateway) -> None:
    reader = await auditor(gw)

    response = await reader.post("/v1/audit/events/search", {"action": "citizen.read\x00"})

    assert response.status_code == 422
    assert [e["code"] for e in response.json()["errors"]] == ["control_character"]
