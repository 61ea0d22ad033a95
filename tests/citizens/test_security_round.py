"""The security round's citizen rules (docs/contract.md, 13. Security round, and section 6): household members
count towards the distinct quota and stay within the grant's provinces, a batch's items are counted before
they are validated and each against the request rate, verification attempts per resident are limited, and
`X-Dossier-Id` is UTF-8. Where the audit log is involved, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.audit.dependencies import AUDIT
from tests.citizens.test_endpoints import problem
from tests.citizens.test_fast_path import solved  # noqa: F401 - a fixture
from tests.harness import HEAD, PURPOSE, YEAR_ONLY, Client, Gateway

HOUSEHOLD_OF_HEAD = 8
"""The household of ``HEAD``, all living in province 52 (docs/personas.md)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Gateway:
    """The gateway on SQLite, then on PostgreSQL (embedded backend)."""
    gateway: Gateway = request.getfixturevalue(
        "sqlite_gateway" if request.param == "sqlite" else "gateway_pg"
    )
    return gateway


def _mock(mock_db: str) -> sqlite3.Connection:
    path = Path(mock_db.split("///", 1)[1])
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def households_reaching_out(mock_db: str, *, head_outside: bool) -> list[tuple[str, str, list[str]]]:
    """(a province, a resident living there, every person of its household) for households with people in more
    than one province; the head living elsewhere than the province given when ``head_outside``, in it when
    not (that province is then 52)."""
    with _mock(mock_db) as conn:
        rows = conn.execute(
            "SELECT ma_ho, so_dinh_danh, ma_tinh, json_extract(ban_ghi, '$.quanHeVoiChuHo') "
            "FROM csdlqg_cong_dan WHERE ma_ho IS NOT NULL ORDER BY ma_ho, so_dinh_danh"
        ).fetchall()
    households: dict[str, list[tuple[str, str, str]]] = {}
    for household, personal_id, province, relation in rows:
        households.setdefault(household, []).append((personal_id, province, relation))
    found = []
    for people in households.values():
        heads = {province for _, province, relation in people if relation == "chu_ho"}
        for province in sorted({p for _, p, _ in people}):
            if head_outside == (province in heads) or (not head_outside and province != "52"):
                continue
            inside = [p for p, where, _ in people if where == province]
            if len(inside) < len(people):
                found.append((province, inside[0], [p for p, _, _ in people]))
    return found


# ------------------------------------------------------------------------------------------ household
async def test_household_members_count_towards_the_distinct_quota(any_db: Gateway) -> None:
    gw = any_db
    enough = await gw.register(scopes=("household.read",), distinct_subjects_per_day=HOUSEHOLD_OF_HEAD)
    response = await gw.call(enough, "/v1/citizens/household", {"personal_id": HEAD})
    assert response.status_code == 200, response.text
    assert len(response.json()["members"]) == HOUSEHOLD_OF_HEAD

    short = await gw.register(
        scopes=("household.read", "citizen.read"), distinct_subjects_per_day=HOUSEHOLD_OF_HEAD - 1
    )
    refused = await gw.call(short, "/v1/citizens/household", {"personal_id": HEAD})
    body = problem(refused, 429, "subject_quota_exceeded")
    assert "members" not in body, "a refused household call releases nothing"
    assert "head" not in body
    assert int(refused.headers["Retry-After"]) >= 1
    # The refusal is an audit event naming the resident, so alerts and a search by personal ID find it.
    events = [e for e in await gw.events() if e.client_id == short.client_id]
    assert [(e.outcome, e.status_code, e.reason, e.fields) for e in events] == [
        ("denied", 429, "subject_quota_exceeded", [])
    ]
    assert events[0].subject_ref == gw.state[AUDIT].hasher.ref(HEAD)
    # Nothing but the named resident was counted: the quota still has room for six others.
    members = [m["personal_id"] for m in response.json()["members"] if m["personal_id"] != HEAD]
    for member in members[: HOUSEHOLD_OF_HEAD - 2]:
        assert (await gw.call(short, "/v1/citizens/lookup", {"personal_id": member})).status_code == 200
    last = await gw.call(short, "/v1/citizens/lookup", {"personal_id": members[-1]})
    problem(last, 429, "subject_quota_exceeded")


async def test_household_members_already_counted_today_are_not_counted_again(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await gw.register(scopes=("household.read",), distinct_subjects_per_day=HOUSEHOLD_OF_HEAD)
    for _ in range(3):
        response = await gw.call(client, "/v1/citizens/household", {"personal_id": HEAD})
        assert response.status_code == 200, response.text


async def test_household_leaves_out_members_outside_the_grant_provinces(
    gateway: Gateway, mock_db: str
) -> None:
    client = await gateway.register(scopes=("household.read", "citizen.read"), fields=("full_name",))
    cases = households_reaching_out(mock_db, head_outside=False)[:3]
    assert cases, "the seeded mock has households reaching beyond province 52"
    for _, named, people in cases:
        response = await gateway.call(client, "/v1/citizens/household", {"personal_id": named})
        assert response.status_code == 200, response.text
        answer = response.json()
        returned = {m["personal_id"] for m in answer["members"]}
        in_scope = set()
        for personal_id in people:
            lookup = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": personal_id})
            assert lookup.status_code in (200, 404), lookup.text
            if lookup.status_code == 200:
                in_scope.add(personal_id)
        assert len(in_scope) < len(people)
        assert returned == in_scope, "exactly the members the client may look up"
        assert answer["head"] is not None
        assert answer["head"]["personal_id"] in in_scope


async def test_household_head_outside_the_grant_provinces_is_null(gateway: Gateway, mock_db: str) -> None:
    cases = households_reaching_out(mock_db, head_outside=True)[:2]
    assert cases, "the seeded mock has households whose head lives in another province than a member"
    for province, named, people in cases:
        client = await gateway.register(scopes=("household.read",), provinces=(province,))
        response = await gateway.call(client, "/v1/citizens/household", {"personal_id": named})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["head"] is None
        assert all(m["relation_to_head"] != "head" for m in answer["members"])
        assert {m["personal_id"] for m in answer["members"]} < set(people)


# -------------------------------------------------------------------------------------------------- batch
BATCH = "/v1/citizens/verify/batch"


async def test_a_batch_over_the_limit_is_413_whatever_its_items(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register()
    oversized: list[list[Any]] = [[1] * 101, [[]] * 5_000, ["x"] * 101]
    for items in oversized:
        problem(await gw.call(client, BATCH, {"items": items}), 413, "batch_too_large")
    events = [e for e in await gw.events() if e.client_id == client.client_id]
    assert [(e.outcome, e.status_code, e.reason, e.subject_ref) for e in events] == [
        ("denied", 413, "batch_too_large", None)
    ] * 3


async def test_a_validation_problem_lists_at_most_20_errors(sqlite_gateway: Gateway) -> None:
    client = await sqlite_gateway.register()
    body = problem(await sqlite_gateway.call(client, BATCH, {"items": [1] * 60}), 422, "validation_failed")
    assert len(body["errors"]) == 20
    assert body["errors_truncated"] == 40
    few = problem(await sqlite_gateway.call(client, BATCH, {"items": [1, 2]}), 422, "validation_failed")
    assert len(few["errors"]) == 2
    assert "errors_truncated" not in few


async def test_each_batch_item_counts_against_the_request_rate(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register(rate_limit_per_minute=10)
    items = [{"personal_id": HEAD, "gender": "male"}] * 6
    assert (await gw.call(client, BATCH, {"items": items})).status_code == 200
    refused = await gw.call(client, BATCH, {"items": items})
    problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    for _ in range(4):  # the refused batch counted nothing: 4 requests left in the minute
        assert (await gw.call(client, "/v1/citizens/verify", items[0])).status_code == 200
    problem(await gw.call(client, "/v1/citizens/verify", items[0]), 429, "rate_limited")
    # The refused batch is an audit event per item naming the resident.
    denied = [e for e in await gw.events() if e.client_id == client.client_id and e.outcome == "denied"]
    assert [(e.reason, e.subject_ref is not None) for e in denied] == [("rate_limited", True)] * 7


async def test_a_batch_larger_than_the_rate_limit_never_passes(sqlite_gateway: Gateway) -> None:
    client = await sqlite_gateway.register(rate_limit_per_minute=3)
    items = [{"personal_id": HEAD, "gender": "male"}] * 4
    refused = await sqlite_gateway.call(client, BATCH, {"items": items})
    problem(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"] == "60"
    assert (await sqlite_gateway.call(client, BATCH, {"items": items[:3]})).status_code == 200


# ------------------------------------------------------------------------------- verification attempts
HEAD_BORN = "1968-04-15"


async def test_a_resident_is_not_checked_again_after_five_mismatches(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register(scopes=("citizen.verify",))
    for day in range(1, 6):
        answer = await gw.call(
            client, "/v1/citizens/verify", {"personal_id": HEAD, "date_of_birth": f"1968-01-0{day}"}
        )
        assert answer.json()["reason"] == "mismatch"
    refused = await gw.call(client, "/v1/citizens/verify", {"personal_id": HEAD, "date_of_birth": HEAD_BORN})
    problem(refused, 429, "verification_attempts_exceeded")
    assert int(refused.headers["Retry-After"]) >= 1
    # Another resident, or another client, is not concerned.
    assert (
        await gw.call(client, "/v1/citizens/verify", {"personal_id": YEAR_ONLY, "gender": "female"})
    ).status_code == 200
    other = await gw.register(scopes=("citizen.verify",))
    assert (
        await gw.call(other, "/v1/citizens/verify", {"personal_id": HEAD, "date_of_birth": HEAD_BORN})
    ).json()["match"]
    # The refusal is an audit event naming the resident and what was supplied.
    denied = [e for e in await gw.events() if e.client_id == client.client_id and e.outcome == "denied"]
    assert [(e.status_code, e.reason, e.fields) for e in denied] == [
        (429, "verification_attempts_exceeded", ["date_of_birth"])
    ]
    assert denied[0].subject_ref == gw.state[AUDIT].hasher.ref(HEAD)


async def test_a_batch_of_guesses_is_counted_guess_by_guess(any_db: Gateway) -> None:
    gw = any_db
    client = await gw.register(scopes=("citizen.verify",), provinces=("79",))
    months = [{"personal_id": HEAD, "date_of_birth": f"1968-{m:02d}"} for m in range(1, 13)]
    response = await gw.call(client, BATCH, {"items": months})
    assert response.status_code == 200, response.text
    outcomes = [r.get("reason", r.get("problem", {}).get("code")) for r in response.json()["results"]]
    # April is the fourth guess: three mismatches, the match, two more mismatches, then no more checks.
    assert outcomes == ["mismatch"] * 3 + [None] + ["mismatch"] * 2 + ["verification_attempts_exceeded"] * 6
    days = [{"personal_id": HEAD, "date_of_birth": f"1968-04-{d:02d}"} for d in range(1, 31)]
    response = await gw.call(client, BATCH, {"items": days})
    assert all(r["problem"]["code"] == "verification_attempts_exceeded" for r in response.json()["results"])
    denied = [e for e in await gw.events() if e.client_id == client.client_id and e.outcome == "denied"]
    assert len(denied) == 6 + 30
    assert {(e.reason, e.subject_ref) for e in denied} == {
        ("verification_attempts_exceeded", gw.state[AUDIT].hasher.ref(HEAD))
    }


# ------------------------------------------------------------------------------------------ X-Dossier-Id
DOSSIER = "HS-Đ-2025/Sở Tư pháp"


async def _with_dossier(gw: Gateway, client: Client, path: str, body: Any, dossier: bytes) -> httpx.Response:
    """A call whose ``X-Dossier-Id`` is these bytes on the wire."""
    headers = [
        (b"authorization", f"Bearer {client.token}".encode()),
        (b"x-purpose", PURPOSE.encode()),
        (b"x-dossier-id", dossier),
    ]
    return await gw.http.post(path, json=body, headers=headers)


def _claims(attestation: str) -> dict[str, Any]:
    payload = attestation.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@pytest.mark.parametrize("route", ["fast", "declared"])
async def test_a_utf8_dossier_id_is_stored_as_sent(
    any_db: Gateway,
    solved: list[str],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
    route: str,
) -> None:
    gw = any_db
    if route == "declared":  # the fast path hands every request on
        monkeypatch.setattr("app.citizens.fast._json_content", lambda _content_type: False)
    client = await gw.register()
    solved.clear()
    body = {"personal_id": HEAD, "date_of_birth": HEAD_BORN}
    response = await _with_dossier(gw, client, "/v1/citizens/verify", body, DOSSIER.encode())
    assert response.status_code == 200, response.text
    assert ("verify" in solved) is (route == "declared")
    assert _claims(response.json()["attestation"])["dossier_id"] == DOSSIER
    response = await _with_dossier(gw, client, BATCH, {"items": [body]}, DOSSIER.encode())
    assert _claims(response.json()["results"][0]["attestation"])["dossier_id"] == DOSSIER
    events = [e for e in await gw.events() if e.client_id == client.client_id]
    assert [e.dossier_id for e in events] == [DOSSIER, DOSSIER]


async def test_a_dossier_id_is_64_characters_of_utf8(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await gw.register()
    body = {"personal_id": HEAD, "gender": "male"}
    for value, status in (("Đ" * 64, 200), ("Đ" * 65, 422), (b"HS-\xc4-2025", 422), (b"HS-\xc2\x85", 422)):
        sent = value.encode() if isinstance(value, str) else value
        response = await _with_dossier(gw, client, "/v1/citizens/verify", body, sent)
        assert response.status_code == status, response.text
    bad = await _with_dossier(gw, client, "/v1/citizens/verify", body, b"\xff")
    assert problem(bad, 422, "validation_failed")["errors"] == [
        {"loc": ["header", "X-Dossier-Id"], "code": "header_not_utf8", "message": "Must be UTF-8 text."}
    ]
