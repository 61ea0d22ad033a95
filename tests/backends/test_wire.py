"""The wire mapping: every field, every code, strict shapes, nothing passed through."""

from __future__ import annotations

import copy
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backends import wire as gateway_wire
from app.backends.base import PERSONAL_ID, RESIDENT_FIELDS
from app.backends.errors import UpstreamBadResponse
from app.backends.wire import household_from_wire, record_from_wire
from mock_csdlqg import wire as mock_wire
from tests.backends.conftest import wire

DECEASED = "052041000101"
LARGE_HOUSEHOLD_HEAD = "052068000108"

# ------------------------------------------------------------------------------------------- strategies


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


TEXT = st.text(max_size=24)
PID = digits(12)
PARTIAL_DATE = st.dates(min_value=date(1900, 1, 1), max_value=date(2040, 12, 31)).flatmap(
    lambda d: st.sampled_from([d.isoformat(), d.isoformat()[:7], d.isoformat()[:4]])
)
COUNTRY = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
PLACE = st.fixed_dictionaries({"maTinhCu": digits(3), "tenTinhCu": TEXT, "chiTiet": TEXT})
ADDRESS = st.fixed_dictionaries(
    {
        "maTinh": digits(2),
        "tenTinh": TEXT,
        "maXa": digits(5),
        "tenXa": TEXT,
        "chiTiet": TEXT,
        "diaChiDayDu": TEXT,
    }
)
CODE_NAME = st.fixed_dictionaries({"ma": digits(2), "ten": TEXT})
CARD = st.fixed_dictionaries(
    {
        "loai": st.sampled_from(["cccd", "can_cuoc", "cmnd12"]),
        "so": PID,
        "ngayCap": PARTIAL_DATE,
        "noiCap": TEXT,
    },
    optional={"ngayHetHan": st.none() | PARTIAL_DATE},
)
RELATIVE = st.fixed_dictionaries(
    {"quanHe": st.sampled_from(sorted(mock_wire.RELATIVE)), "hoVaTen": TEXT, "quocTich": COUNTRY},
    optional={"soDinhDanh": st.none() | PID, "soCmnd": st.none() | digits(9)},
)
ABSENCE = st.fixed_dictionaries(
    {"tuNgay": PARTIAL_DATE, "denNgay": st.none() | PARTIAL_DATE, "lyDo": TEXT, "noiDen": TEXT}
)
TIMESTAMP = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(  # noqa: DTZ001
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
)
CONG_DAN = st.fixed_dictionaries(
    {
        "soDinhDanh": PID,
        "hoVaTen": TEXT,
        "tenGoiKhac": st.lists(TEXT, max_size=2),
        "ngaySinh": PARTIAL_DATE,
        "gioiTinh": st.sampled_from(["Nam", "Nữ"]),
        "noiSinh": st.none() | PLACE,
        "noiDangKyKhaiSinh": PLACE,
        "queQuan": st.none() | PLACE,
        "danToc": CODE_NAME,
        "tonGiao": CODE_NAME,
        "quocTich": st.lists(COUNTRY, min_size=1, max_size=2),
        "nhomMau": st.none() | st.sampled_from(["A", "B", "AB", "O"]),
        "soCmnd": st.none() | digits(9),
        "soDinhDanhCu": st.lists(PID, max_size=2),
        "theCanCuoc": st.lists(CARD, max_size=2),
        "thanNhan": st.lists(RELATIVE, max_size=3),
        "noiThuongTru": st.none() | ADDRESS,
        "noiTamTru": st.none() | ADDRESS,
        "noiOHienTai": st.none() | ADDRESS,
        "tamVang": st.none() | ABSENCE,
        "soHoSoCuTru": st.none() | TEXT,
        "tinhTrangHonNhan": st.none() | st.sampled_from(sorted(mock_wire.MARITAL_STATUS)),
        "maHo": st.none() | st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True),
        "quanHeVoiChuHo": st.none() | st.sampled_from(sorted(mock_wire.RELATION_TO_HEAD)),
        "ngayMat": st.none() | PARTIAL_DATE,
        "soDienThoai": st.none() | st.from_regex(r"0[35789][0-9]{8}", fullmatch=True),
        "email": st.none() | TEXT,
        "capNhatLuc": TIMESTAMP,
    }
)
REQUIRED = [
    key for key in mock_wire.CongDan.model_fields if mock_wire.CongDan.model_fields[key].is_required()
]


# ------------------------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(CONG_DAN)
def test_every_on_contract_record_maps_to_exactly_the_resident_fields(doc: dict[str, Any]) -> None:
    mock_wire.CongDan.model_validate(doc)  # the strategy itself stays on the contract
    record = record_from_wire(orjson.loads(orjson.dumps(doc)), source="test")
    assert tuple(record.fields) == RESIDENT_FIELDS
    assert record.personal_id == record.fields["personal_id"] == doc["soDinhDanh"]
    assert record.fields["gender"] == mock_wire.GENDER[doc["gioiTinh"]]
    assert record.record_updated_at == doc["capNhatLuc"]
    assert record.source == "test"
    orjson.dumps(record.fields)  # plain JSON values only


@settings(max_examples=100, deadline=None)
@given(CONG_DAN, st.sampled_from(REQUIRED))
def test_a_missing_member_is_a_bad_response(doc: dict[str, Any], key: str) -> None:
    del doc[key]
    with pytest.raises(UpstreamBadResponse) as caught:
        record_from_wire(doc, source="test")
    assert caught.value.reason == f"shape:CongDan.{key}"
    assert caught.value.status == 502


@settings(max_examples=100, deadline=None)
@given(CONG_DAN, st.lists(st.sampled_from(RESIDENT_FIELDS[1:]), unique=True, max_size=6))
def test_a_partial_record_holds_exactly_the_fields_asked_with_the_same_values(
    doc: dict[str, Any], fields: list[str]
) -> None:
    full = record_from_wire(copy.deepcopy(doc), source="test")
    part = record_from_wire(doc, source="test", fields=fields)
    assert set(part.fields) == {"personal_id", *fields}
    assert all(part.fields[name] == full.fields[name] for name in part.fields)
    assert (part.personal_id, part.record_updated_at) == (full.personal_id, full.record_updated_at)


def test_a_partial_record_checks_what_it_reads_and_the_identity(persona_wire: dict[str, bytes]) -> None:
    doc = orjson.loads(next(iter(persona_wire.values())))
    doc["nhomMau"] = "Z"  # off contract, but not read for a verification
    verify_fields = ("full_name", "date_of_birth", "gender", "date_of_death")
    assert set(record_from_wire(doc, source="t", fields=verify_fields).fields) == {
        "personal_id",
        *verify_fields,
    }
    with pytest.raises(UpstreamBadResponse):
        record_from_wire(doc, source="t", fields=("blood_type",))
    for key, bad in (("soDinhDanh", "12"), ("capNhatLuc", "yesterday"), ("ngaySinh", "15/04/1968")):
        broken = {**doc, "nhomMau": "A", key: bad}
        with pytest.raises(UpstreamBadResponse) as caught:
            record_from_wire(broken, source="t", fields=verify_fields)
        assert caught.value.reason == f"shape:CongDan.{key}"


STRICTER_THAN_THE_MODEL = {"capNhatLuc", "maHo"}
"""Members the wire model types as any string, where we check the format too (RFC 3339; a URL-safe code)."""


@pytest.mark.parametrize("value", [12, 1.5, True, [], {}, "§"])
@pytest.mark.parametrize("key", REQUIRED)
def test_a_value_of_the_wrong_kind_is_a_bad_response(
    persona_wire: dict[str, bytes], key: str, value: Any
) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    doc[key] = value
    try:
        mock_wire.CongDan.model_validate(doc, strict=True)
    except ValueError:
        allowed = False
    else:
        allowed = key not in STRICTER_THAN_THE_MODEL
    if allowed:  # free text the contract allows: so do we
        assert record_from_wire(doc, source="test").personal_id == LARGE_HOUSEHOLD_HEAD
    else:
        with pytest.raises(UpstreamBadResponse):
            record_from_wire(doc, source="test")


# ------------------------------------------------------------------------------------------ the mapping


def test_the_code_tables_match_the_mock_wire_contract() -> None:
    assert gateway_wire.GENDER == mock_wire.GENDER
    assert gateway_wire.MARITAL_STATUS == mock_wire.MARITAL_STATUS
    assert gateway_wire.RELATION_TO_HEAD == mock_wire.RELATION_TO_HEAD
    assert gateway_wire.RELATIVE == mock_wire.RELATIVE
    assert PERSONAL_ID.pattern in mock_wire.PERSONAL_ID_PATTERN


def test_every_persona_maps(persona_wire: dict[str, bytes]) -> None:
    for pid, blob in persona_wire.items():
        record = record_from_wire(wire(blob), source="mock_csdlqg")
        assert record.personal_id == pid
        assert tuple(record.fields) == RESIDENT_FIELDS


def test_a_record_field_by_field(persona_wire: dict[str, bytes]) -> None:
    record = record_from_wire(wire(persona_wire[DECEASED]), source="csdlqg")
    fields = dict(record.fields)
    assert fields == {
        "personal_id": DECEASED,
        "full_name": "Lê Văn Bảy",
        "other_names": [],
        "date_of_birth": "1941-03-12",
        "gender": "male",
        "place_of_birth": {
            "legacy_province_code": "052",
            "legacy_province_name": "Bình Định",
            "text": "Tỉnh Bình Định",
        },
        "birth_registration_place": {
            "legacy_province_code": "052",
            "legacy_province_name": "Bình Định",
            "text": "Tỉnh Bình Định",
        },
        "hometown": {
            "legacy_province_code": "052",
            "legacy_province_name": "Bình Định",
            "text": "Tỉnh Bình Định",
        },
        "ethnicity": {"code": "01", "name": "Kinh"},
        "religion": {"code": "00", "name": "Không"},
        "nationality": ["VN"],
        "blood_type": None,
        "old_id_number": fields["old_id_number"],
        "previous_ids": [],
        "id_cards": [
            {
                "type": "cccd",
                "number": DECEASED,
                "issued_on": "2017-05-10",
                "issuer": "Cục Cảnh sát quản lý hành chính về trật tự xã hội",
                "expires_on": None,
            }
        ],
        "relatives": [
            {
                "relation": "spouse",
                "personal_id": "052144000133",
                "old_id_number": None,
                "full_name": "Nguyễn Thị Tám",
                "nationality": "VN",
            }
        ],
        "permanent_address": {
            "province_code": "52",
            "province_name": "Gia Lai",
            "ward_code": "21601",
            "ward_name": "Phường Quy Nhơn Đông",
            "detail": "Thôn 4",
            "text": "Thôn 4, Phường Quy Nhơn Đông, Tỉnh Gia Lai",
        },
        "temporary_address": None,
        "current_address": None,
        "temporary_absence": None,
        "residence_file_number": None,
        "marital_status": "married",
        "household_id": None,
        "relation_to_head": None,
        "date_of_death": "2024-08-19",
        "phone": None,
        "email": None,
    }
    assert isinstance(fields["old_id_number"], str)
    assert len(fields["old_id_number"]) == 9
    assert record.province == "52"
    assert record.record_updated_at.endswith("Z")


def test_structured_values_and_codes(persona_wire: dict[str, bytes]) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    doc |= {
        "tamVang": {"tuNgay": "2025-06-30", "denNgay": None, "lyDo": "Đi học", "noiDen": "Đà Nẵng"},
        "tinhTrangHonNhan": "ly_hon",
        "gioiTinh": "Nữ",
        "quanHeVoiChuHo": "con_dau",
        "capNhatLuc": "2025-12-01T08:00:00.123+00:00",
    }
    fields = record_from_wire(doc, source="x").fields
    assert fields["temporary_absence"] == {
        "from": "2025-06-30",
        "to": None,
        "reason": "Đi học",
        "destination": "Đà Nẵng",
    }
    assert fields["marital_status"] == "divorced"
    assert fields["gender"] == "female"
    assert fields["relation_to_head"] == "daughter_in_law"
    assert record_from_wire(doc, source="x").record_updated_at == "2025-12-01T08:00:00.123Z"


def test_text_comes_out_in_nfc(persona_wire: dict[str, bytes]) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    doc["hoVaTen"] = unicodedata.normalize("NFD", "Nguyễn Văn Thành")
    assert record_from_wire(doc, source="x").fields["full_name"] == "Nguyễn Văn Thành"


def test_unknown_members_are_dropped_never_passed_through(persona_wire: dict[str, bytes]) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    doc["sinhTracHoc"] = "LEAK-1"
    assert isinstance(doc["noiThuongTru"], dict)
    doc["noiThuongTru"]["toaDo"] = "LEAK-2"
    doc["thanNhan"] = [{"quanHe": "cha", "hoVaTen": "A", "quocTich": "VN", "ghiChu": "LEAK-3"}]
    record = record_from_wire(doc, source="x")
    assert b"LEAK" not in orjson.dumps(record.fields)
    assert tuple(record.fields) == RESIDENT_FIELDS


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("soDinhDanh",), "05206800010"),
        (("soDinhDanh",), "05206800010８"),
        (("soDinhDanh",), "052068000108\n"),
        (("gioiTinh",), "male"),
        (("gioiTinh",), "Nu"),
        (("tinhTrangHonNhan",), "single"),
        (("quanHeVoiChuHo",), "head"),
        (("ngaySinh",), "15/04/1968"),
        (("quocTich",), []),
        (("quocTich",), ["vn"]),
        (("nhomMau",), "C"),
        (("soCmnd",), "12345"),
        (("soDinhDanhCu",), ["x"]),
        (("noiThuongTru", "maTinh"), "052"),
        (("noiThuongTru", "maXa"), 21601),
        (("noiDangKyKhaiSinh",), None),
        (("danToc", "ma"), "1"),
        (("theCanCuoc",), [{"loai": "passport", "so": "052068000108", "ngayCap": "2020", "noiCap": "x"}]),
        (("thanNhan",), [{"quanHe": "ong", "hoVaTen": "A", "quocTich": "VN"}]),
        (("tamVang",), {"tuNgay": "2025-01-01", "lyDo": "x", "noiDen": "y"}),
        (("maHo",), "../residents/lookup"),
        (("soDienThoai",), "+84905123456"),
        (("capNhatLuc",), "2025-12-01 08:00:00"),
        (("capNhatLuc",), "2025-12-01T08:00:00+07:00"),
    ],
)
def test_off_contract_values_are_bad_responses(
    persona_wire: dict[str, bytes], path: tuple[str, ...], value: Any
) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(UpstreamBadResponse) as caught:
        record_from_wire(doc, source="x")
    assert caught.value.reason is not None
    assert caught.value.reason.startswith("shape:")


@pytest.mark.parametrize("doc", [None, [], "record", 12, {"records": []}])
def test_not_a_record_at_all(doc: Any) -> None:
    with pytest.raises(UpstreamBadResponse):
        record_from_wire(doc, source="x")


def test_timestamps_are_utc_with_z(persona_wire: dict[str, bytes]) -> None:
    doc = wire(persona_wire[LARGE_HOUSEHOLD_HEAD])
    now = datetime.now(UTC)
    doc["capNhatLuc"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert record_from_wire(doc, source="x").record_updated_at == doc["capNhatLuc"]
    doc["capNhatLuc"] = now.isoformat(timespec="microseconds")
    assert record_from_wire(doc, source="x").record_updated_at == now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------------------- households


def test_a_household(persona_wire: dict[str, bytes], persona_households: dict[str, bytes]) -> None:
    head = record_from_wire(wire(persona_wire[LARGE_HOUSEHOLD_HEAD]), source="x")
    household_id = head.fields["household_id"]
    household = household_from_wire(wire(persona_households[household_id]))
    assert household.household_id == household_id
    assert household.head.personal_id == LARGE_HOUSEHOLD_HEAD
    assert household.head.relation_to_head == "head"
    assert household.head in household.members
    assert len(household.members) == 8
    assert {member.relation_to_head for member in household.members} <= set(
        gateway_wire.RELATION_TO_HEAD.values()
    )


def test_every_persona_household_maps(persona_households: dict[str, bytes]) -> None:
    for household_id, blob in persona_households.items():
        assert household_from_wire(wire(blob)).household_id == household_id


def _break_head_out(doc: dict[str, Any]) -> None:
    doc["thanhVien"] = [m for m in doc["thanhVien"] if m["quanHeVoiChuHo"] != "chu_ho"]


def _unknown_relation(doc: dict[str, Any]) -> None:
    doc["thanhVien"][1]["quanHeVoiChuHo"] = "hang_xom"


def _head_twice(doc: dict[str, Any]) -> None:
    doc["thanhVien"].append(copy.deepcopy(doc["chuHo"]))


def _bad_member_id(doc: dict[str, Any]) -> None:
    doc["thanhVien"][1]["soDinhDanh"] = "123"


def _members_not_a_list(doc: dict[str, Any]) -> None:
    doc["thanhVien"] = {"0": doc["chuHo"]}


@pytest.mark.parametrize(
    "damage", [_break_head_out, _unknown_relation, _head_twice, _bad_member_id, _members_not_a_list]
)
def test_off_contract_households_are_bad_responses(
    persona_wire: dict[str, bytes], persona_households: dict[str, bytes], damage: Any
) -> None:
    head = record_from_wire(wire(persona_wire[LARGE_HOUSEHOLD_HEAD]), source="x")
    doc = wire(persona_households[head.fields["household_id"]])
    damage(doc)
    with pytest.raises(UpstreamBadResponse):
        household_from_wire(doc)
