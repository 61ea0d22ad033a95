"""Citizen endpoints as a provincial portal uses them, on the embedded backend and on the mock over HTTP."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from typing import Any

import httpx
import jwt
import pytest

from app.auth.dependencies import KEYS
from tests.harness import (
    DECEASED,
    HCM,
    HEAD,
    JRAI,
    NAME_D,
    PURPOSE,
    REISSUED_OLD,
    TONE_OLD,
    UNKNOWN,
    YEAR_ONLY,
    Gateway,
)

PROBLEM = {"type", "title", "status", "detail", "code", "request_id"}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM
    assert body["code"] == code
    return body


async def verify(gw: Gateway, client: Any, **body: Any) -> dict[str, Any]:
    response = await gw.call(client, "/v1/citizens/verify", body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["match"] is (answer["reason"] is None)
    return answer


# ----------------------------------------------------------------------------------------------- verify
async def test_verify_match_with_a_signed_attestation_anyone_can_check(gateway: Gateway) -> None:
    client = await gateway.register()
    response = await gateway.call(
        client,
        "/v1/citizens/verify",
        {
            "personal_id": HEAD,
            "full_name": "Nguyễn Văn Thành",
            "date_of_birth": "1968-04-15",
            "gender": "male",
        },
        dossier="HS-2026-000123",
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["match"] is True
    assert answer["reason"] is None
    assert answer["fields"]["full_name"] == {"result": "match", "tier": "exact", "score": 100}
    assert answer["fields"]["date_of_birth"] == {"result": "match", "precision": "day"}
    jwks = (await gateway.http.get("/.well-known/jwks.json")).json()
    token = answer["attestation"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "verification+jwt"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(token, key=key, algorithms=["ES256"])
    assert claims["verification_id"] == answer["verification_id"]
    assert claims["personal_id"] == HEAD
    assert claims["match"] is True
    assert claims["reason"] is None
    assert claims["checked_fields"] == ["full_name", "date_of_birth", "gender"]
    assert claims["client_id"] == client.client_id
    assert claims["purpose"] == PURPOSE
    assert claims["dossier_id"] == "HS-2026-000123"
    assert claims["iss"] == "http://testserver"
    assert claims["exp"] == claims["iat"] + 30 * 24 * 3600


async def test_the_attestation_proves_what_was_claimed_without_holding_it(gateway: Gateway) -> None:
    # docs/contract.md, Verification: input_hash over a fresh salt and the claimed values, recomputable by
    # whoever holds them (the dossier), different for every answer.
    client = await gateway.register()
    claimed = {
        "personal_id": HEAD,
        "full_name": unicodedata.normalize("NFD", "Nguyễn Văn Thành"),
        "gender": "male",
    }

    first = jwt.decode(
        (await verify(gateway, client, **claimed))["attestation"], options={"verify_signature": False}
    )
    again = jwt.decode(
        (await verify(gateway, client, **claimed))["attestation"], options={"verify_signature": False}
    )

    for claims in (first, again):
        text = (
            f"{claims['input_salt']}\npersonal_id={HEAD}\n"
            f"full_name={unicodedata.normalize('NFC', claimed['full_name'])}\ngender=male\n"
        )
        assert claims["input_hash"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert len(base64.urlsafe_b64decode(claims["input_salt"] + "==")) == 16
        assert "full_name" not in claims  # the values themselves are nowhere in it
    assert first["input_salt"] != again["input_salt"]
    assert first["input_hash"] != again["input_hash"]


@pytest.mark.parametrize(
    ("name", "mode", "match", "tier"),
    [
        ("NGUYỄN  văn thành", "exact", True, "exact"),
        (unicodedata.normalize("NFD", "Nguyễn Văn Thành"), "exact", True, "exact"),
        ("Nguyen Van Thanh", "normalized", False, "normalized"),
        ("Nguyen Van Thanh", "fuzzy", True, "fuzzy"),
        ("Thành Văn Nguyễn", "fuzzy", False, "fuzzy"),
    ],
)
async def test_name_tiers(gateway: Gateway, name: str, mode: str, match: bool, tier: str) -> None:
    client = await gateway.register()
    answer = await verify(gateway, client, personal_id=HEAD, full_name=name, name_match=mode)
    assert answer["match"] is match
    assert answer["fields"]["full_name"]["tier"] == tier


async def test_tone_placement_and_d_look_alikes_match_at_the_normalized_tier(gateway: Gateway) -> None:
    client = await gateway.register()
    exact = await verify(
        gateway, client, personal_id=TONE_OLD, full_name="Võ Thị Thanh Hoà", name_match="exact"
    )
    assert exact["match"] is False
    normalized = await verify(gateway, client, personal_id=TONE_OLD, full_name="Võ Thị Thanh Hoà")
    assert normalized["match"] is True
    assert normalized["fields"]["full_name"]["tier"] == "normalized"
    look_alike = await verify(gateway, client, personal_id=NAME_D, full_name="\u00d0ặng \u00d0ình \u00d0ức")
    assert look_alike["match"] is True


async def test_year_only_birth_date_matches_at_year_precision(gateway: Gateway) -> None:
    client = await gateway.register()
    answer = await verify(gateway, client, personal_id=YEAR_ONLY, date_of_birth="1938-05-02")
    assert answer["match"] is True
    assert answer["fields"]["date_of_birth"] == {"result": "match", "precision": "year"}


async def test_id_structure_contradiction_is_a_mismatch_without_asking_upstream(gateway: Gateway) -> None:
    client = await gateway.register()
    # digit 4 of 052068000108 is 0: a man born in the 1900s
    answer = await verify(gateway, client, personal_id=HEAD, full_name="Nguyễn Văn Thành", gender="female")
    assert answer["reason"] == "mismatch"
    assert answer["fields"]["gender"]["result"] == "mismatch"
    assert answer["fields"]["full_name"]["result"] == "not_checked"
    wrong_year = await verify(gateway, client, personal_id=HEAD, date_of_birth="1986-04-15")
    assert wrong_year["fields"]["date_of_birth"] == {"result": "mismatch", "precision": "year"}


async def test_deceased_unknown_and_cancelled_ids(gateway: Gateway) -> None:
    client = await gateway.register()
    dead = await verify(gateway, client, personal_id=DECEASED, full_name="Lê Văn Bảy")
    assert (dead["match"], dead["reason"]) == (False, "deceased")
    unknown = await verify(gateway, client, personal_id=UNKNOWN, gender="male")
    assert (unknown["match"], unknown["reason"]) == (False, "not_found")
    cancelled = await verify(gateway, client, personal_id=REISSUED_OLD, gender="male")
    assert cancelled["reason"] == "not_found"


async def test_no_field_detail_without_verify_details(gateway: Gateway) -> None:
    client = await gateway.register(verify_details=False)
    answer = await verify(gateway, client, personal_id=HEAD, full_name="Nguyễn Văn Thành")
    assert "fields" not in answer
    assert answer["match"] is True


@pytest.mark.parametrize("bad", ["05206800010", "05206800010x", "999068000108", "０５２０６８０００１０８"])
async def test_invalid_personal_id_is_422_and_never_echoed(gateway: Gateway, bad: str) -> None:
    client = await gateway.register()
    response = await gateway.call(client, "/v1/citizens/verify", {"personal_id": bad, "gender": "male"})
    body = problem(response, 422, "invalid_personal_id")
    assert bad not in response.text
    assert body["errors"][0]["loc"] == ["body", "personal_id"]


async def test_verify_needs_something_to_check_and_refuses_unknown_members(gateway: Gateway) -> None:
    client = await gateway.register()
    body = problem(
        await gateway.call(client, "/v1/citizens/verify", {"personal_id": HEAD}), 422, "validation_failed"
    )
    # The rule is named, where and how (docs/contract.md, Verification).
    assert body["errors"] == [
        {
            "loc": ["body"],
            "code": "claim_required",
            "message": "At least one of full_name, date_of_birth, gender is required.",
        }
    ]
    response = await gateway.call(
        client, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male", "x": 1}
    )
    problem(response, 422, "validation_failed")
    response = await gateway.call(
        client, "/v1/citizens/verify", {"personal_id": HEAD, "date_of_birth": "1968-02-30"}
    )
    problem(response, 422, "validation_failed")


# ------------------------------------------------------------------------------------------- purposes
async def test_purpose_is_required_registered_and_granted(gateway: Gateway) -> None:
    client = await gateway.register()
    body = {"personal_id": HEAD, "gender": "male"}
    problem(await gateway.call(client, "/v1/citizens/verify", body, purpose=None), 400, "purpose_required")
    problem(
        await gateway.call(client, "/v1/citizens/verify", body, purpose="not.registered"),
        403,
        "purpose_not_allowed",
    )
    other = await gateway.register(purposes=("2.000001.000.00.00.H12",))
    problem(await gateway.call(other, "/v1/citizens/verify", body), 403, "purpose_not_allowed")
    long_dossier = await gateway.call(client, "/v1/citizens/verify", body, dossier="x" * 65)
    problem(long_dossier, 422, "validation_failed")


# --------------------------------------------------------------------------------------------- lookup
async def test_lookup_returns_granted_fields_with_provenance(gateway: Gateway) -> None:
    client = await gateway.register(fields=("full_name", "date_of_birth", "current_address"))
    response = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"personal_id", "full_name", "date_of_birth", "current_address", "_meta"}
    assert answer["full_name"] == "Nguyễn Văn Thành"
    assert answer["current_address"]["province_code"] == "52"
    assert answer["_meta"]["source"] in ("mock_csdlqg", "csdlqg")
    assert answer["_meta"]["record_updated_at"].endswith("Z")
    chosen = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name"]})
    assert set(chosen.json()) == {"personal_id", "full_name", "_meta"}


async def test_fields_outside_the_grant_are_refused_and_listed(gateway: Gateway) -> None:
    client = await gateway.register(fields=("full_name",))
    response = await gateway.call(
        client, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name", "phone", "religion"]}
    )
    body = problem(response, 403, "field_not_allowed")
    assert body["fields"] == ["phone", "religion"]
    problem(
        await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": []}),
        422,
        "validation_failed",
    )
    response = await gateway.call(
        client, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["shoe_size"]}
    )
    problem(response, 422, "validation_failed")


async def test_sensitive_fields_only_when_named(gateway: Gateway) -> None:
    wildcard = await gateway.register(fields=("*",))
    answer = (await gateway.call(wildcard, "/v1/citizens/lookup", {"personal_id": JRAI})).json()
    assert "ethnicity" not in answer
    assert "religion" not in answer
    assert "blood_type" not in answer
    assert answer["full_name"] == "Rơ Châm H'Linh"
    named = await gateway.register(fields=("*", "ethnicity"))
    answer = (await gateway.call(named, "/v1/citizens/lookup", {"personal_id": JRAI})).json()
    assert answer["ethnicity"] == {"code": "10", "name": "Gia-rai"}
    events = [e for e in await gateway.events() if e.action == "citizen.read" and e.outcome == "allowed"]
    assert events[-1].sensitive_fields == ["ethnicity"]


async def test_out_of_province_looks_exactly_like_unknown(gateway: Gateway) -> None:
    client = await gateway.register(provinces=("52",))
    outside = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HCM})
    unknown = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": UNKNOWN})
    a, b = problem(outside, 404, "not_found"), problem(unknown, 404, "not_found")
    assert {k: v for k, v in a.items() if k != "request_id"} == {
        k: v for k, v in b.items() if k != "request_id"
    }
    assert HCM not in outside.text
    hcm_client = await gateway.register(provinces=("79",))
    assert (await gateway.call(hcm_client, "/v1/citizens/lookup", {"personal_id": HCM})).status_code == 200
    reasons = [(e.outcome, e.reason) for e in await gateway.events() if e.action == "citizen.read"]
    assert ("denied", "out_of_scope") in reasons
    assert ("allowed", "not_found") in reasons
    # verification is nationwide
    assert (await verify(gateway, client, personal_id=HCM, gender="male"))["match"] is True


# ------------------------------------------------------------------------------------------ household
async def test_household_lists_members_and_audits_each(gateway: Gateway) -> None:
    client = await gateway.register()
    response = await gateway.call(client, "/v1/citizens/household", {"personal_id": HEAD})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["head"] == {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"}
    assert len(answer["members"]) == 8
    assert {m["relation_to_head"] for m in answer["members"]} >= {
        "head",
        "spouse",
        "child",
        "grandchild",
        "parent",
    }
    assert all(set(m) == {"personal_id", "full_name", "relation_to_head"} for m in answer["members"])
    events = [e for e in await gateway.events() if e.action == "household.read"]
    assert len(events) == 1 + 8
    assert sum(1 for e in events if e.fields == ["full_name", "relation_to_head"]) == 8
    problem(await gateway.call(client, "/v1/citizens/household", {"personal_id": HCM}), 404, "not_found")


async def test_scopes_are_separate(gateway: Gateway) -> None:
    verifier = await gateway.register(scopes=("citizen.verify",))
    response = await gateway.call(verifier, "/v1/citizens/lookup", {"personal_id": HEAD})
    problem(response, 403, "insufficient_scope")
    response = await gateway.call(verifier, "/v1/citizens/household", {"personal_id": HEAD})
    problem(response, 403, "insufficient_scope")


# -------------------------------------------------------------------------------------------------- batch
async def test_batch_answers_each_item_on_its_own(gateway: Gateway) -> None:
    client = await gateway.register()
    items: list[Any] = [
        {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"},
        {"personal_id": "123", "gender": "male"},
        {"personal_id": HEAD, "unknown": True},
        {"personal_id": UNKNOWN, "gender": "male"},
        {"personal_id": HEAD, "gender": "female"},
    ]
    response = await gateway.call(client, "/v1/citizens/verify/batch", {"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert results[0]["match"] is True
    assert results[1]["problem"]["code"] == "invalid_personal_id"
    assert results[1]["problem"]["status"] == 422
    assert results[2]["problem"]["code"] == "validation_failed"
    assert results[3]["reason"] == "not_found"
    assert results[4]["reason"] == "mismatch"
    assert len([e for e in await gateway.events() if e.action == "citizen.verify"]) == 5


async def test_batch_over_the_limit_is_413_before_anything_else(gateway: Gateway) -> None:
    client = await gateway.register()
    items = [{"personal_id": HEAD, "gender": "male"}] * 101
    problem(await gateway.call(client, "/v1/citizens/verify/batch", {"items": items}), 413, "batch_too_large")
    problem(
        await gateway.call(client, "/v1/citizens/verify/batch", {"items": [1, 2]}), 422, "validation_failed"
    )
    problem(await gateway.call(client, "/v1/citizens/verify/batch", {"items": []}), 422, "validation_failed")


# ---------------------------------------------------------------------------------------------- limits
async def test_request_rate_limit(gateway: Gateway) -> None:
    client = await gateway.register(rate_limit_per_minute=3)
    body = {"personal_id": HEAD, "gender": "male"}
    for _ in range(3):
        assert (await gateway.call(client, "/v1/citizens/verify", body)).status_code == 200
    response = await gateway.call(client, "/v1/citizens/verify", body)
    problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


async def test_distinct_residents_per_day(gateway: Gateway) -> None:
    client = await gateway.register(distinct_subjects_per_day=2)
    first = await gateway.call(client, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"})
    assert first.status_code == 200
    unknown = await gateway.call(client, "/v1/citizens/verify", {"personal_id": UNKNOWN, "gender": "male"})
    assert unknown.status_code == 200, "an unknown resident counts too"
    third = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": YEAR_ONLY})
    problem(third, 429, "subject_quota_exceeded")
    assert int(third.headers["Retry-After"]) >= 1
    again = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    assert again.status_code == 200, "a resident already counted today is not counted twice"
    invalid = await gateway.call(client, "/v1/citizens/verify", {"personal_id": "1", "gender": "male"})
    problem(invalid, 422, "invalid_personal_id")


# ---------------------------------------------------------------------------------------------- audit
async def test_every_call_leaves_an_event_without_personal_data(gateway: Gateway) -> None:
    client = await gateway.register()
    await gateway.call(client, "/v1/citizens/verify", {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"})
    await gateway.call(
        client, "/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["phone"]}, dossier="D-1"
    )
    await gateway.call(client, "/v1/citizens/verify", {"personal_id": HEAD, "gender": "male"}, purpose=None)
    events = await gateway.events()
    assert [(e.action, e.outcome, e.status_code) for e in events] == [
        ("citizen.verify", "allowed", 200),
        ("citizen.read", "allowed", 200),
        ("citizen.verify", "denied", 400),
    ]
    verify_event, read_event, denied = events
    assert verify_event.fields == ["full_name"]
    assert read_event.fields == ["phone"]
    assert read_event.dossier_id == "D-1"
    assert read_event.purpose == PURPOSE
    assert denied.reason == "purpose_required"
    assert verify_event.subject_ref == read_event.subject_ref
    assert verify_event.subject_ref is not None
    assert HEAD not in verify_event.subject_ref
    for event in events:
        assert event.client_id == client.client_id
        assert "Nguyễn" not in str(event.detail)


async def test_no_data_without_evidence(sqlite_gateway: Gateway) -> None:
    """When the audit event cannot be committed the caller gets 503 audit_unavailable and no data."""
    gw = sqlite_gateway
    client = await gw.register()
    async with gw.state.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE audit_events")
    response = await gw.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    problem(response, 503, "audit_unavailable")
    assert "Nguyễn" not in response.text


async def test_on_postgresql(gateway_pg: Gateway) -> None:
    client = await gateway_pg.register()
    answer = await verify(gateway_pg, client, personal_id=HEAD, full_name="Nguyễn Văn Thành")
    assert answer["match"] is True
    response = await gateway_pg.call(client, "/v1/citizens/household", {"personal_id": HEAD})
    assert response.status_code == 200
    assert len(await gateway_pg.events()) == 1 + 1 + 8


async def test_many_concurrent_calls_do_not_exhaust_the_connection_pool(sqlite_gateway: Gateway) -> None:
    """Each request uses one pooled connection at a time (auth, purpose, audit): 60 at once all succeed."""
    import asyncio

    client = await sqlite_gateway.register()
    body = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"}
    responses = await asyncio.gather(
        *(sqlite_gateway.call(client, "/v1/citizens/verify", body) for _ in range(60))
    )
    assert [r.status_code for r in responses] == [200] * 60
    assert len(await sqlite_gateway.events()) == 60


async def test_many_concurrent_token_requests_do_not_exhaust_the_connection_pool(
    sqlite_gateway: Gateway,
) -> None:
    """The first tokens of a fresh process: 60 at once, while the key store loads its keys."""
    import asyncio

    from app.audit.writer import AdminLog
    from app.auth.schemas import ClientCreate, GrantIn
    from app.auth.service import AuthService

    state = sqlite_gateway.state
    async with state.sessionmaker() as session:
        service = AuthService(session, state[KEYS].secrets, AdminLog(session, actor="test"))
        created = await service.create_client(ClientCreate(name="Cổng DVC"))
        await service.replace_grant(created.client.client_id, GrantIn(scopes=["citizen.verify"]))
        await session.commit()
    responses = await asyncio.gather(
        *(
            sqlite_gateway.http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(created.client.client_id, created.client_secret),
            )
            for _ in range(60)
        )
    )
    assert [r.status_code for r in responses] == [200] * 60


async def test_answers_conform_to_their_published_models(gateway: Gateway) -> None:
    """The hot routes serialise their answers themselves (``PreparedJSON``): each must still be exactly what
    the OpenAPI document's model describes, with no member the model lacks."""
    from app.citizens.schemas import BatchVerifyResponse, HouseholdResponse, LookupResponse, VerifyResponse

    for verify_details in (True, False):
        client = await gateway.register(verify_details=verify_details)
        body = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}
        answer = (await gateway.call(client, "/v1/citizens/verify", body)).json()
        assert VerifyResponse.model_validate(answer).model_dump(exclude_unset=True, mode="json") == answer
    items = [{"personal_id": HEAD, "gender": "male"}, {"personal_id": "123", "gender": "male"}]
    answer = (await gateway.call(client, "/v1/citizens/verify/batch", {"items": items})).json()
    assert BatchVerifyResponse.model_validate(answer).model_dump(exclude_unset=True, mode="json") == answer
    answer = (await gateway.call(client, "/v1/citizens/household", {"personal_id": HEAD})).json()
    assert HouseholdResponse.model_validate(answer).model_dump(mode="json") == answer
    response = await gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    assert response.headers["content-type"] == "application/json"
    # Every field, sensitive ones included: the typed resident record describes each exactly.
    full = await gateway.register(fields=("*", "ethnicity", "religion", "blood_type"), provinces=("*",))
    for pid in (HEAD, DECEASED, YEAR_ONLY, HCM, JRAI, TONE_OLD, "052080000124"):
        answer = (await gateway.call(full, "/v1/citizens/lookup", {"personal_id": pid})).json()
        if "personal_id" in answer:
            typed = LookupResponse.model_validate(answer).model_dump(
                mode="json", by_alias=True, exclude_unset=True
            )
            assert typed == answer
