"""Prefill (docs/contract.md, 18. Forms: prefill and confirmation) on the embedded and the http backend: CT01 for
the personas of docs/personas.md matches their records field by field; what the grant does not allow is
withheld; the purpose must be the form's; every outcome is audited."""

from __future__ import annotations

from typing import Any

import pytest

from app.forms.defaults import CT01_PURPOSE
from app.forms.sources import GENDERS_VI, RELATIONS_VI, date_dmy
from tests.forms.conftest import admin_of, bearer, install_defaults
from tests.harness import HEAD, JRAI, PURPOSE, UNKNOWN, YEAR_ONLY, Client, Gateway

MONTH_ONLY = "052145000114"  # Phạm Thị Gấm, born 1945-05
EDE = "066193000126"  # Ê Đê woman, H' given name first, clan Niê last; lives in Đắk Lắk (66)
NO_PERMANENT = "040199000120"  # no permanent residence: temporary residence in Gia Lai only
HCM = "052088000115"  # lives in Ho Chi Minh City (79): outside a grant of 52 and 66
PERSONAS = (HEAD, YEAR_ONLY, MONTH_ONLY, JRAI, EDE, NO_PERMANENT)
PROVINCES = ("52", "66")

ADDRESSES = {
    "code": "TEST-CU-TRU",
    "title": "Tờ khai thử nghiệm có địa chỉ",
    "purpose": CT01_PURPOSE,
    "fields": [
        {"name": "ho_ten", "label": "Họ, chữ đệm và tên", "source": "full_name", "format": "upper"},
        {"name": "thuong_tru", "label": "Nơi thường trú", "source": "permanent_address.text"},
        {"name": "tam_tru", "label": "Nơi tạm trú", "source": "temporary_address.text"},
        {"name": "tinh_hien_tai", "label": "Tỉnh", "source": "current_address.province_name"},
        {"name": "que_quan", "label": "Quê quán", "source": "hometown.text"},
        {"name": "dan_toc", "label": "Dân tộc", "source": "ethnicity.name"},
        {"name": "ton_giao", "label": "Tôn giáo", "source": "religion.name"},
    ],
}


async def ready(gw: Gateway, **grant: Any) -> Client:
    await install_defaults(gw)
    return await gw.register(
        scopes=("citizen.read",), purposes=(CT01_PURPOSE, PURPOSE), provinces=PROVINCES, **grant
    )


async def prefill(
    gw: Gateway, client: Client, personal_id: str, form: str = "CT01", *, purpose: str | None = CT01_PURPOSE
) -> Any:
    return await gw.call(
        client, "/v1/citizens/prefill", {"personal_id": personal_id, "form": form}, purpose=purpose
    )


async def record_of(gw: Gateway, client: Client, personal_id: str) -> dict[str, Any]:
    response = await gw.call(
        client, "/v1/citizens/lookup", {"personal_id": personal_id}, purpose=CT01_PURPOSE
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.parametrize("personal_id", PERSONAS)
async def test_ct01_prefill_matches_the_record_field_by_field(gateway: Gateway, personal_id: str) -> None:
    client = await ready(gateway)

    response = await prefill(gateway, client, personal_id)
    record = await record_of(gateway, client, personal_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["form"] == "CT01"
    assert body["withheld"] == []
    assert set(body["_meta"]) == {"source", "retrieved_at", "record_updated_at"}
    assert body["values"] == {
        "addressee": None,
        "full_name": record["full_name"].upper(),
        "date_of_birth": date_dmy(record["date_of_birth"]),
        "gender": GENDERS_VI[record["gender"]],
        "personal_id": personal_id,
        "phone": record["phone"],
        "email": record["email"],
        "head_full_name": None,
        "relation_to_head": RELATIONS_VI.get(record["relation_to_head"])
        if record["relation_to_head"]
        else None,
        "head_personal_id": None,
        "request": None,
        "members_changing": None,
    }


async def test_partial_dates_and_minority_names_as_the_form_writes_them(gateway: Gateway) -> None:
    client = await ready(gateway)

    values = {pid: (await prefill(gateway, client, pid)).json()["values"] for pid in PERSONAS}

    assert values[HEAD]["date_of_birth"] == "15/04/1968"
    assert values[HEAD]["gender"] == "Nam"
    assert values[HEAD]["relation_to_head"] == "Chủ hộ"
    assert values[HEAD]["phone"] == "0914068108"
    assert values[MONTH_ONLY]["date_of_birth"] == "05/1945"
    assert values[YEAR_ONLY]["date_of_birth"] == "1938"
    assert values[YEAR_ONLY]["gender"] == "Nữ"
    assert values[JRAI]["full_name"] == "RƠ CHÂM H'LINH"
    assert values[EDE]["full_name"].startswith("H'")
    assert values[EDE]["full_name"].endswith(" NIÊ")
    assert values[NO_PERMANENT]["relation_to_head"] is None


@pytest.mark.parametrize("personal_id", PERSONAS)
async def test_address_members_and_no_permanent_address(gateway: Gateway, personal_id: str) -> None:
    admin = bearer(await admin_of(gateway))
    client = await ready(gateway, fields=("*", "ethnicity"))
    defined = await gateway.http.post("/v1/admin/forms", json=ADDRESSES, headers=admin)
    assert defined.status_code == 201, defined.text

    response = await prefill(gateway, client, personal_id, "TEST-CU-TRU")
    record = await record_of(gateway, client, personal_id)

    def member(field: str, name: str) -> Any:
        return record[field][name] if record[field] else None

    assert response.status_code == 200, response.text
    assert response.json()["withheld"] == ["ton_giao"]  # religion is sensitive and not in this grant
    assert response.json()["values"] == {
        "ho_ten": record["full_name"].upper(),
        "thuong_tru": member("permanent_address", "text"),
        "tam_tru": member("temporary_address", "text"),
        "tinh_hien_tai": member("current_address", "province_name"),
        "que_quan": member("hometown", "text"),
        "dan_toc": record["ethnicity"]["name"],
        "ton_giao": None,
    }
    if personal_id == NO_PERMANENT:
        assert response.json()["values"]["thuong_tru"] is None
        assert response.json()["values"]["tam_tru"]


async def test_fields_outside_the_grant_are_withheld_and_not_released(gateway: Gateway) -> None:
    client = await ready(gateway, fields=("full_name", "date_of_birth", "gender"))

    response = await prefill(gateway, client, HEAD)
    events = [e for e in await gateway.events() if e.action == "citizen.prefill"]

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["withheld"] == ["phone", "email", "relation_to_head"]
    assert body["values"]["phone"] is None
    assert body["values"]["full_name"] == "NGUYỄN VĂN THÀNH"
    assert body["values"]["personal_id"] == HEAD
    assert [(e.outcome, e.status_code, e.fields, e.purpose) for e in events] == [
        ("allowed", 200, ["date_of_birth", "full_name", "gender"], CT01_PURPOSE)
    ]
    assert events[0].subject_ref
    assert events[0].detail == {"form": "CT01", "withheld": ["phone", "email", "relation_to_head"]}


async def test_the_purpose_must_be_the_forms_and_refusals_name_the_resident(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await ready(gw)

    other = await prefill(gw, client, HEAD, purpose=PURPOSE)  # granted and registered, but not CT01's
    missing = await prefill(gw, client, HEAD, purpose=None)
    unknown_form = await prefill(gw, client, HEAD, "NOPE")
    unknown = await prefill(gw, client, UNKNOWN)
    outside = await prefill(gw, client, HCM)
    bad_id = await prefill(gw, client, "12345")
    events = [e for e in await gw.events() if e.action == "citizen.prefill"]

    assert (other.status_code, other.json()["code"]) == (403, "purpose_not_allowed")
    assert (missing.status_code, missing.json()["code"]) == (400, "purpose_required")
    assert (unknown_form.status_code, unknown_form.json()["code"]) == (404, "form_not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (outside.status_code, outside.json()["code"]) == (404, "not_found")
    assert (bad_id.status_code, bad_id.json()["code"]) == (422, "invalid_personal_id")
    ct01_fields = ["date_of_birth", "email", "full_name", "gender", "phone", "relation_to_head"]
    assert [(e.outcome, e.status_code, e.reason, e.fields, e.subject_ref is not None) for e in events] == [
        ("denied", 403, "purpose_not_allowed", ct01_fields, True),
        ("denied", 400, "purpose_required", ct01_fields, True),
        ("denied", 404, "form_not_found", [], True),
        ("allowed", 404, "not_found", [], True),
        ("denied", 404, "out_of_scope", ct01_fields, True),
        ("denied", 422, "invalid_personal_id", ct01_fields, False),
    ]
    assert events[0].subject_ref == events[1].subject_ref


async def test_a_retired_form_is_not_found_and_the_scope_is_citizen_read(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    client = await ready(gw)
    verifier = await gw.register(scopes=("citizen.verify",), purposes=(CT01_PURPOSE,))
    admin = bearer(await admin_of(gw))

    await gw.http.delete("/v1/admin/forms/CT01", headers=admin)
    retired = await prefill(gw, client, HEAD)
    no_scope = await prefill(gw, verifier, HEAD)

    assert (retired.status_code, retired.json()["code"]) == (404, "form_not_found")
    assert (no_scope.status_code, no_scope.json()["code"]) == (403, "insufficient_scope")


async def test_prefill_counts_against_the_distinct_resident_quota(sqlite_gateway: Gateway) -> None:
    client = await ready(sqlite_gateway, distinct_subjects_per_day=1)

    first = await prefill(sqlite_gateway, client, HEAD)
    second = await prefill(sqlite_gateway, client, YEAR_ONLY)

    assert first.status_code == 200
    assert (second.status_code, second.json()["code"]) == (429, "subject_quota_exceeded")
