"""Retiring a purpose (docs/contract.md, sections 5 and 7): kept for the log, refused from then on in grants;
409 while a grant names it; the same use case in the console (actor ``op:<username>``)."""

from __future__ import annotations

from tests.admin.conftest import Admin
from tests.harness import Gateway

CODE = "1.000046.000.00.00.H12"


async def test_a_purpose_in_a_grant_cannot_be_retired_then_can_and_is_refused_in_grants(
    admin: Admin, gateway: Gateway
) -> None:
    await admin.add_purpose(CODE)
    portal = await admin.new_client()
    granted = await admin.put_grant(
        portal.client_id, scopes=["citizen.verify"], provinces=["52"], purposes=[CODE]
    )
    assert granted.status_code == 200, granted.text

    in_use = await admin.request("DELETE", f"/purposes/{CODE}")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "conflict"

    narrowed = await admin.put_grant(portal.client_id, scopes=["citizen.verify"], provinces=["52"])
    assert narrowed.status_code == 200, narrowed.text
    retired = await admin.request("DELETE", f"/purposes/{CODE}")
    assert retired.status_code == 200, retired.text
    assert retired.json()["retired_at"] is not None
    listed = {p["code"]: p for p in (await admin.get("/purposes")).json()["items"]}
    assert listed[CODE]["retired_at"] == retired.json()["retired_at"]

    again = await admin.put_grant(
        portal.client_id, scopes=["citizen.verify"], provinces=["52"], purposes=[CODE]
    )
    assert again.status_code == 422
    assert again.json()["errors"][0]["code"] == "unknown_purpose"
    twice = await admin.request("DELETE", f"/purposes/{CODE}")
    assert twice.json() == retired.json()  # unchanged, and no second event
    events = await gateway.events("admin.purpose.retire")
    assert len(events) == 1
    assert events[0].actor == admin.client_id
    assert events[0].detail is not None
    assert events[0].detail["before"] == {"code": CODE, "retired_at": None}

    unknown = await admin.request("DELETE", "/purposes/no-such-purpose")
    assert unknown.status_code == 404
