"""Confirmation by a one-time code (docs/contract.md, 18. Forms: prefill and confirmation), on the embedded and the
http backend: the whole flow with the code read from the mock's outbox, every failure path, the receipt verified
with PyJWT against the JWKS (and by examples/verify_receipt.py, which rejects another document), and no code or
phone number in any log line or audit event."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

import app.forms.confirmations as confirmations
from app.audit.models import AuditEventRow
from app.citizens.dependencies import BACKEND
from app.db import utcnow
from app.forms.defaults import CT01_PURPOSE
from app.forms.models import FormConfirmation
from tests.forms.conftest import install_defaults
from tests.harness import HEAD, MOCK_KEY, NAME_D, PURPOSE, YEAR_ONLY, Client, Gateway

ROOT = Path(__file__).resolve().parents[2]
HEAD_PHONE = "0914068108"
NAME_D_PHONE = "0905123103"
DOCUMENT = "Tờ khai thay đổi thông tin cư trú (CT01) của Nguyễn Văn Thành".encode()
DOCUMENT_SHA256 = hashlib.sha256(DOCUMENT).hexdigest()
_CODE = re.compile(r"\b([0-9]{6})\b")


def verifier() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_receipt", ROOT / "examples" / "verify_receipt.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """The gateway's clock for the confirmation flow, moved by the test (the mock keeps real time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(confirmations, "utcnow", moved)
    return moved


async def portal(gw: Gateway, **grant: Any) -> Client:
    await install_defaults(gw)
    return await gw.register(scopes=("citizen.confirm",), purposes=(CT01_PURPOSE, PURPOSE), **grant)


async def start(
    gw: Gateway,
    client: Client,
    personal_id: str = HEAD,
    *,
    sha: str = DOCUMENT_SHA256,
    purpose: str | None = CT01_PURPOSE,
    form: str = "CT01",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"personal_id": personal_id, "form": form, "document_sha256": sha}
    return await gw.call(
        client, "/v1/confirmations", body, purpose=purpose, dossier="HS-2026-0001", headers=headers
    )


async def complete(gw: Gateway, client: Client, confirmation_id: str, code: str) -> httpx.Response:
    return await gw.call(
        client, f"/v1/confirmations/{confirmation_id}/complete", {"code": code}, purpose=None
    )


async def resend(gw: Gateway, client: Client, confirmation_id: str) -> httpx.Response:
    return await gw.call(client, f"/v1/confirmations/{confirmation_id}/resend", None, purpose=None)


async def outbox(gw: Gateway, personal_id: str) -> list[dict[str, Any]]:
    """The SMS the mock sent to the resident: its desk in process (embedded) or ``GET /_mock/outbox`` (http)."""
    if gw.backend == "embedded":
        items: list[dict[str, Any]] = gw.state[BACKEND].inner.otp.outbox_for(personal_id)  # type: ignore[attr-defined]
        return items
    async with httpx.AsyncClient(base_url=str(gw.state.settings.backend_url)) as mock:
        response = await mock.get(
            "/_mock/outbox", params={"personal_id": personal_id}, headers={"X-Api-Key": MOCK_KEY}
        )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def last_code(gw: Gateway, personal_id: str) -> str:
    sent = await outbox(gw, personal_id)
    assert sent, "no SMS in the outbox"
    found = _CODE.search(sent[-1]["text"])
    assert found is not None
    return found.group(1)


async def jwks(gw: Gateway) -> dict[str, Any]:
    found: dict[str, Any] = (await gw.http.get("/.well-known/jwks.json")).json()
    return found


async def events(gw: Gateway) -> list[AuditEventRow]:
    return [e for e in await gw.events() if e.action.startswith("confirmation.")]


def problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


# --- the whole flow -------------------------------------------------------------------------------------------


async def test_the_whole_flow_gives_a_receipt_verifiable_offline(gateway: Gateway) -> None:
    client = await portal(gateway)

    started = await start(gateway, client, headers={"X-End-User": "canbo.lan@motcua"})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending"
    assert body["channel"] == "sms"
    assert body["destination_hint"] == "09******08"
    sms = await outbox(gateway, HEAD)
    assert sms[-1]["destination"] == HEAD_PHONE
    assert "CT01" in sms[-1]["text"]

    done = await complete(gateway, client, body["confirmation_id"], await last_code(gateway, HEAD))

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "confirmed"
    receipt = done.json()["receipt"]
    keys = await jwks(gateway)
    header = jwt.get_unverified_header(receipt)
    assert header["typ"] == "confirmation+jwt"
    assert header["alg"] == "ES256"
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(receipt, key=jwt.PyJWK(key), algorithms=["ES256"], options={"verify_aud": False})
    assert claims == {
        "iss": claims["iss"],
        "confirmation_id": body["confirmation_id"],
        "personal_id": HEAD,
        "form": "CT01",
        "document_sha256": DOCUMENT_SHA256,
        "method": "otp_registered_mobile",
        "client_id": client.client_id,
        "purpose": CT01_PURPOSE,
        "dossier_id": "HS-2026-0001",
        "end_user": "canbo.lan@motcua",
        "iat": claims["iat"],
    }
    # Offline, as an office checks it: the same document holds, another one does not.
    check = verifier()
    assert check.verify_receipt(receipt, keys, DOCUMENT)["personal_id"] == HEAD
    with pytest.raises(check.ReceiptRejected, match="another document"):
        check.verify_receipt(receipt, keys, DOCUMENT + b" (edited)")
    head, _payload, signature = receipt.split(".")
    forged = jwt.utils.base64url_encode(json.dumps({**claims, "document_sha256": "0" * 64}).encode()).decode()
    with pytest.raises(check.ReceiptRejected, match="signature"):
        check.verify_receipt(f"{head}.{forged}.{signature}", keys, DOCUMENT)

    again = await complete(gateway, client, body["confirmation_id"], await last_code(gateway, HEAD))
    assert problem(again) == (409, "conflict")
    recorded = await events(gateway)
    assert [(e.action, e.outcome, e.status_code) for e in recorded] == [
        ("confirmation.start", "allowed", 201),
        ("confirmation.complete", "allowed", 200),
        ("confirmation.complete", "denied", 409),
    ]
    assert len({e.subject_ref for e in recorded}) == 1
    assert recorded[0].subject_ref
    assert {(e.purpose, e.dossier_id) for e in recorded} == {(CT01_PURPOSE, "HS-2026-0001")}
    async with gateway.state.sessionmaker() as session:
        row = await session.get(FormConfirmation, body["confirmation_id"])
    assert row is not None
    assert (row.status, row.personal_id) == ("confirmed", None), "the personal ID is erased once it ends"


async def test_the_verify_script_runs_from_the_command_line(sqlite_gateway: Gateway, tmp_path: Path) -> None:
    gw = sqlite_gateway
    client = await portal(gw)
    started = (await start(gw, client)).json()
    receipt = (await complete(gw, client, started["confirmation_id"], await last_code(gw, HEAD))).json()[
        "receipt"
    ]
    (tmp_path / "jwks.json").write_text(json.dumps(await jwks(gw)))
    (tmp_path / "receipt.jwt").write_text(receipt)
    (tmp_path / "ct01.txt").write_bytes(DOCUMENT)
    (tmp_path / "other.txt").write_bytes(DOCUMENT + b"!")
    check = verifier()

    def run(document: str) -> int:
        code: int = check.main(
            [
                "--jwks",
                str(tmp_path / "jwks.json"),
                "--receipt",
                str(tmp_path / "receipt.jwt"),
                "--document",
                str(tmp_path / document),
            ]
        )
        return code

    assert run("ct01.txt") == 0
    assert run("other.txt") == 1


# --- failure paths --------------------------------------------------------------------------------------------


async def test_wrong_codes_then_locked(gateway: Gateway) -> None:
    client = await portal(gateway)
    cid = (await start(gateway, client)).json()["confirmation_id"]
    right = await last_code(gateway, HEAD)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    answers = [await complete(gateway, client, cid, wrong) for _ in range(4)]
    fifth = await complete(gateway, client, cid, wrong)
    after = await complete(gateway, client, cid, right)

    assert [(r.status_code, r.json()["code"], r.json()["attempts_left"]) for r in answers] == [
        (400, "confirmation_code_invalid", left) for left in (4, 3, 2, 1)
    ]
    assert problem(fifth) == (423, "confirmation_locked")
    assert problem(after) == (423, "confirmation_locked")
    recorded = [(e.action, e.outcome, e.status_code, e.reason) for e in await events(gateway)]
    assert recorded == [
        ("confirmation.start", "allowed", 201, None),
        *[("confirmation.complete", "denied", 400, "confirmation_code_invalid")] * 4,
        ("confirmation.complete", "denied", 423, "confirmation_locked"),
        ("confirmation.complete", "denied", 423, "confirmation_locked"),
    ]


async def test_a_malformed_code_is_a_wrong_code(sqlite_gateway: Gateway) -> None:
    client = await portal(sqlite_gateway)
    cid = (await start(sqlite_gateway, client)).json()["confirmation_id"]

    answer = await complete(sqlite_gateway, client, cid, "12ab")

    assert problem(answer) == (400, "confirmation_code_invalid")
    assert answer.json()["attempts_left"] == 4


async def test_an_expired_confirmation_is_410(gateway: Gateway, clock: Clock) -> None:
    client = await portal(gateway)
    cid = (await start(gateway, client)).json()["confirmation_id"]
    code = await last_code(gateway, HEAD)

    clock.offset = timedelta(minutes=5, seconds=1)
    late = await complete(gateway, client, cid, code)
    late_resend = await resend(gateway, client, cid)

    assert problem(late) == (410, "confirmation_expired")
    assert problem(late_resend) == (410, "confirmation_expired")
    assert [(e.action, e.status_code, e.reason) for e in (await events(gateway))[1:]] == [
        ("confirmation.complete", 410, "confirmation_expired"),
        ("confirmation.resend", 410, "confirmation_expired"),
    ]


async def test_resend_spacing_and_limit(gateway: Gateway, clock: Clock) -> None:
    client = await portal(gateway)
    before = len(await outbox(gateway, HEAD))  # the http mock serves the whole session
    cid = (await start(gateway, client)).json()["confirmation_id"]
    first = await last_code(gateway, HEAD)

    too_soon = await resend(gateway, client, cid)
    assert problem(too_soon) == (429, "rate_limited")
    assert 1 <= int(too_soon.headers["retry-after"]) <= 60
    sent = []
    for n in range(1, 4):
        clock.offset = timedelta(seconds=61 * n)
        again = await resend(gateway, client, cid)
        assert again.status_code == 200, again.text
        sent.append(again.json())
    clock.offset = timedelta(seconds=61 * 4)
    fourth = await resend(gateway, client, cid)

    assert problem(fourth) == (429, "rate_limited")
    assert int(fourth.headers["retry-after"]) >= 1
    assert len(await outbox(gateway, HEAD)) - before == 4
    assert sent[-1]["expires_at"] > sent[0]["expires_at"]
    latest = await last_code(gateway, HEAD)
    if first != latest:  # the first code no longer counts once another was sent
        stale = await complete(gateway, client, cid, first)
        assert problem(stale) == (400, "confirmation_code_invalid")
    done = await complete(gateway, client, cid, latest)
    assert done.status_code == 200, done.text
    assert [
        (e.action, e.status_code) for e in await events(gateway) if e.action == "confirmation.resend"
    ] == [
        ("confirmation.resend", 429),
        *[("confirmation.resend", 200)] * 3,
        ("confirmation.resend", 429),
    ]


async def test_a_resident_without_a_registered_mobile_is_409(gateway: Gateway) -> None:
    client = await portal(gateway)

    answer = await start(gateway, client, YEAR_ONLY)

    assert problem(answer) == (409, "no_registered_contact")
    assert await outbox(gateway, YEAR_ONLY) == []
    recorded = await events(gateway)
    assert [(e.action, e.outcome, e.status_code, e.reason) for e in recorded] == [
        ("confirmation.start", "denied", 409, "no_registered_contact")
    ]
    assert recorded[0].subject_ref


async def test_bad_input_is_422_and_not_audited(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await portal(gw)

    short = await start(gw, client, sha="ab" * 31)
    not_hex = await start(gw, client, sha="g" * 64)
    bad_end_user = await start(gw, client, headers={"X-End-User": "can bo lan"})
    bad_id = await complete(gw, client, "not-a-uuid", "123456")

    assert [r.status_code for r in (short, not_hex, bad_end_user, bad_id)] == [422] * 4
    assert await events(gw) == []


async def test_refusals_before_a_code_is_sent(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await portal(gw)
    reader = await gw.register(scopes=("citizen.read",), purposes=(CT01_PURPOSE,))

    other_purpose = await start(gw, client, purpose=PURPOSE)
    unknown_form = await start(gw, client, form="NOPE")
    no_scope = await start(gw, reader)

    assert problem(other_purpose) == (403, "purpose_not_allowed")
    assert problem(unknown_form) == (404, "form_not_found")
    assert problem(no_scope) == (403, "insufficient_scope")
    assert await outbox(gw, HEAD) == []


async def test_another_clients_confirmation_is_404(gateway: Gateway) -> None:
    mine = await portal(gateway)
    theirs = await gateway.register(scopes=("citizen.confirm",), purposes=(CT01_PURPOSE,))
    cid = (await start(gateway, mine, NAME_D)).json()["confirmation_id"]
    code = await last_code(gateway, NAME_D)

    stolen = await complete(gateway, theirs, cid, code)
    pushed = await resend(gateway, theirs, cid)
    unknown = await complete(gateway, mine, "00000000-0000-4000-8000-000000000000", code)
    still = await complete(gateway, mine, cid, code)

    assert problem(stolen) == (404, "not_found")
    assert problem(pushed) == (404, "not_found")
    assert problem(unknown) == (404, "not_found")
    assert still.status_code == 200, "another client's attempts do not count against it"


@pytest.mark.parametrize("gateway", ["http"], indirect=True)  # fault injection is the mock service's
async def test_the_mock_faults_reach_the_flow(gateway: Gateway) -> None:
    client = await portal(gateway)
    mock = httpx.AsyncClient(
        base_url=str(gateway.state.settings.backend_url), headers={"X-Api-Key": MOCK_KEY}
    )
    async with mock:
        await mock.put("/_mock/faults", json={"status": 503})
        try:
            down = await start(gateway, client)
        finally:
            await mock.delete("/_mock/faults")
        cid = (await start(gateway, client)).json()["confirmation_id"]
        code = await last_code(gateway, HEAD)
        await mock.put("/_mock/faults", json={"malformed": True})
        try:
            garbled = await complete(gateway, client, cid, code)
        finally:
            await mock.delete("/_mock/faults")
    # The database may have used the code up before its answer was garbled: the resident asks for another.
    after = await complete(gateway, client, cid, f"{(int(code) + 1) % 1_000_000:06d}")

    assert problem(down) == (503, "upstream_unavailable")
    assert problem(garbled) == (502, "upstream_bad_response")
    assert problem(after) == (400, "confirmation_code_invalid")
    assert after.json()["attempts_left"] == 4, "an attempt without a usable answer is not counted"
    assert [(e.action, e.outcome, e.status_code) for e in await events(gateway)] == [
        ("confirmation.start", "error", 503),
        ("confirmation.start", "allowed", 201),
        ("confirmation.complete", "error", 502),
        ("confirmation.complete", "denied", 400),
    ]


# --- nothing secret is written anywhere -----------------------------------------------------------------------


async def test_no_code_or_phone_number_in_any_log_line_or_audit_event(
    gateway: Gateway, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await portal(gateway)
    codes: list[str] = []
    cid = (await start(gateway, client)).json()["confirmation_id"]
    codes.append(await last_code(gateway, HEAD))
    await complete(gateway, client, cid, f"{(int(codes[0]) + 7) % 1_000_000:06d}")
    clock.offset = timedelta(seconds=61)
    await resend(gateway, client, cid)
    codes.append(await last_code(gateway, HEAD))
    assert (await complete(gateway, client, cid, codes[-1])).status_code == 200
    clock.offset = timedelta(0)
    cid = (await start(gateway, client, NAME_D)).json()["confirmation_id"]
    codes.append(await last_code(gateway, NAME_D))
    await start(gateway, client, YEAR_ONLY)

    async with gateway.state.sessionmaker() as session:
        rows = (await session.scalars(select(AuditEventRow))).all()
        stored = (await session.scalars(select(FormConfirmation))).all()
    audit_text = json.dumps(
        [{c.name: getattr(row, c.key, None) for c in AuditEventRow.__table__.columns} for row in rows],
        default=str,
        ensure_ascii=False,
    )
    logs = "\n".join(
        record.getMessage() + " " + json.dumps(record.__dict__, default=str) for record in caplog.records
    )
    for secret in (*codes, HEAD_PHONE, NAME_D_PHONE):
        assert secret not in audit_text, "a code or phone number in the audit log"
        assert secret not in logs, "a code or phone number in a log line"
    for row in stored:  # the gateway's own table holds neither
        assert all(
            secret not in json.dumps(row.__dict__, default=str)
            for secret in (*codes, HEAD_PHONE, NAME_D_PHONE)
        )
    assert caplog.records, "the scan saw the log lines"
    assert len(rows) >= 6


# --- PostgreSQL, and the resident's access report -------------------------------------------------------------


async def test_the_flow_on_postgresql_and_in_the_access_report(gateway_pg: Gateway) -> None:
    gw = gateway_pg
    client = await portal(gw)
    auditor = await gw.register(scopes=("audit.subject_report",), fields=(), provinces=(), purposes=())
    locked_id = (await start(gw, client)).json()["confirmation_id"]
    code = await last_code(gw, HEAD)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [await complete(gw, client, locked_id, wrong) for _ in range(5)]
    cid = (await start(gw, client)).json()["confirmation_id"]

    done = await complete(gw, client, cid, await last_code(gw, HEAD))
    report = await gw.http.post(
        "/v1/audit/subject-report",
        json={"personal_id": HEAD},
        headers={"Authorization": f"Bearer {auditor.token}"},
    )

    assert [r.status_code for r in answers] == [400, 400, 400, 400, 423]
    assert done.status_code == 200, done.text
    assert report.status_code == 200, report.text
    actions = [item["action"] for item in report.json()["items"]]
    assert actions.count("confirmation.start") == 2
    assert actions.count("confirmation.complete") == 6
