"""``X-End-User`` on prefill and confirmation calls (docs/contract.md, 5. Purpose of use, "End user", and 18. Forms):
recorded in every event with ``client_ip``, in the receipt at the start; malformed is 422 with no event; a grant
with ``require_end_user`` refuses each step without one (400 ``end_user_required``), audited as denied and
naming the resident. On SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from app.audit.dependencies import AUDIT
from app.forms.defaults import CT01_PURPOSE
from tests.citizens.test_endpoints import problem
from tests.forms.conftest import install_defaults
from tests.forms.test_confirmations import complete, last_code, portal, resend, start
from tests.harness import HEAD, Gateway

PEER = "127.0.0.1"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Gateway:
    gateway: Gateway = request.getfixturevalue(
        "sqlite_gateway" if request.param == "sqlite" else "gateway_pg"
    )
    return gateway


async def events(gw: Gateway, prefix: str) -> list[Any]:
    return list(await gw.events(prefix))


async def test_the_end_user_is_in_every_step_and_the_receipt(any_db: Gateway) -> None:
    gw = any_db
    client = await portal(gw, require_end_user=True)
    officer = {"X-End-User": "can.bo@gialai.gov.vn"}

    started = await start(gw, client, headers=officer)
    assert started.status_code == 201, started.text
    confirmation_id = started.json()["confirmation_id"]
    code = await last_code(gw, HEAD)
    done = await gw.call(
        client, f"/v1/confirmations/{confirmation_id}/complete", {"code": code}, purpose=None, headers=officer
    )

    assert done.status_code == 200, done.text
    receipt = jwt.decode(done.json()["receipt"], options={"verify_signature": False})
    assert receipt["end_user"] == "can.bo@gialai.gov.vn"
    steps = await events(gw, "confirmation.")
    assert [(e.action, e.outcome) for e in steps] == [
        ("confirmation.start", "allowed"),
        ("confirmation.complete", "allowed"),
    ]
    assert {(e.end_user, e.client_ip) for e in steps} == {("can.bo@gialai.gov.vn", PEER)}


async def test_a_grant_requiring_the_end_user_refuses_each_step_without_one(any_db: Gateway) -> None:
    gw = any_db
    client = await portal(gw, require_end_user=True)
    ref = gw.state[AUDIT].hasher.ref(HEAD)

    refused_start = await start(gw, client)
    started = await start(gw, client, headers={"X-End-User": "lan"})
    confirmation_id = started.json()["confirmation_id"]
    refused_complete = await complete(gw, client, confirmation_id, "000000")
    refused_resend = await resend(gw, client, confirmation_id)

    problem(refused_start, 400, "end_user_required")
    assert started.status_code == 201, started.text
    problem(refused_complete, 400, "end_user_required")
    problem(refused_resend, 400, "end_user_required")
    denied = [e for e in await events(gw, "confirmation.") if e.outcome == "denied"]
    assert [(e.action, e.reason, e.status_code, e.subject_ref) for e in denied] == [
        ("confirmation.start", "end_user_required", 400, ref),
        ("confirmation.complete", "end_user_required", 400, ref),
        ("confirmation.resend", "end_user_required", 400, ref),
    ]
    assert denied[0].fields, "the start's refusal lists the fields the form reads"
    assert {e.client_ip for e in denied} == {PEER}


@pytest.mark.parametrize("end_user", ["", "Lan Nguyen", "u" * 129, "a,b"], ids=repr)
async def test_a_malformed_end_user_is_422_and_writes_no_event(
    sqlite_gateway: Gateway, end_user: str
) -> None:
    gw = sqlite_gateway
    client = await portal(gw)

    response = await start(gw, client, headers={"X-End-User": end_user})

    found = problem(response, 422, "validation_failed")
    assert [e["loc"] for e in found["errors"]] == [["header", "X-End-User"]]
    assert await events(gw, "confirmation.") == []


async def test_prefill_records_the_end_user_and_may_require_it(any_db: Gateway) -> None:
    gw = any_db
    await install_defaults(gw)
    client = await gw.register(scopes=("citizen.read",), purposes=(CT01_PURPOSE,), require_end_user=True)
    body = {"personal_id": HEAD, "form": "CT01"}

    refused = await gw.call(client, "/v1/citizens/prefill", body, purpose=CT01_PURPOSE)
    answered = await gw.call(
        client, "/v1/citizens/prefill", body, purpose=CT01_PURPOSE, headers={"X-End-User": "lan"}
    )
    malformed = await gw.call(
        client, "/v1/citizens/prefill", body, purpose=CT01_PURPOSE, headers={"X-End-User": "l a n"}
    )

    problem(refused, 400, "end_user_required")
    assert answered.status_code == 200, answered.text
    problem(malformed, 422, "validation_failed")
    denied, allowed = await events(gw, "citizen.prefill")
    assert (denied.outcome, denied.reason, denied.subject_ref) == (
        "denied",
        "end_user_required",
        gw.state[AUDIT].hasher.ref(HEAD),
    )
    assert denied.fields, "the fields the form reads"
    assert (allowed.outcome, allowed.end_user, allowed.client_ip) == ("allowed", "lan", PEER)
