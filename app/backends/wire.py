"""The upstream's wire format (Vietnamese names) mapped to the API's resident fields; pure, runs per request.

The national database and the mock speak the same contract (``mock_csdlqg/wire.py`` documents it and holds
the name table this module implements). Every value is checked against that contract while it is renamed, in
one pass of plain dict and regex work (about 18 µs for a full record here; validating with a pydantic model
costs about as much and would still need a renaming pass): a missing member, a wrong type, an unknown code
or a malformed ID, date or code raises ``UpstreamBadResponse``, whose ``reason`` names the wire path, never
a value. The output is built from the known fields only, so a member the upstream adds is dropped, never
passed through. Text is returned in NFC. Some checks are stricter than the mock's pydantic models, following
docs/contract.md, Resident fields, where those leave a string free: dates in cards and absences are ISO 8601,
``capNhatLuc`` is RFC 3339 UTC, ``quocTich`` items are ISO alpha-2 codes, ``soDinhDanhCu`` items are IDs,
``maHo`` is a URL-safe code.

The code tables below are copied from ``mock_csdlqg/wire.py`` (``app`` does not import the mock outside
the embedded backend); ``tests/backends/test_wire.py`` keeps the two in step.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from datetime import date
from typing import Any, NoReturn

from app.backends.base import (
    HOUSEHOLD_ID,
    PERSONAL_ID,
    STATS_VALUES,
    CodeSent,
    Household,
    HouseholdMember,
    PopulationQuery,
    RawAggregate,
    RawCell,
    ResidentRecord,
)
from app.backends.errors import UpstreamBadResponse, UpstreamIdentityMismatch

GENDER = {"Nam": "male", "Nữ": "female"}
MARITAL_STATUS = {"doc_than": "single", "da_ket_hon": "married", "ly_hon": "divorced", "goa": "widowed"}
RELATION_TO_HEAD = {
    "chu_ho": "head",
    "vo_chong": "spouse",
    "con": "child",
    "cha_me": "parent",
    "chau": "grandchild",
    "ong_ba": "grandparent",
    "anh_chi_em": "sibling",
    "con_dau": "daughter_in_law",
    "con_re": "son_in_law",
    "khac": "other",
}
RELATIVE = {
    "cha": "father",
    "me": "mother",
    "vo_chong": "spouse",
    "con": "child",
    "nguoi_dai_dien": "legal_representative",
    "nguoi_duoc_dai_dien": "represented_person",
}
ID_CARD_TYPES = frozenset({"cccd", "can_cuoc", "cmnd12"})
BLOOD_TYPES = frozenset({"A", "B", "AB", "O"})

_OLD_ID = re.compile(r"[0-9]{9}")
_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|\+00:00)"
)
_LEGACY_PROVINCE = re.compile(r"[0-9]{3}")
_PROVINCE = re.compile(r"[0-9]{2}")
_WARD = re.compile(r"[0-9]{5}")
_GSO_CODE = re.compile(r"[0-9]{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_PHONE = re.compile(r"0[35789][0-9]{8}")

_NFC = unicodedata.normalize
_MISSING: Any = object()


class _Bad(Exception):
    """Where the shape broke (a wire path, never a value); turned into UpstreamBadResponse at the top."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def _fail(where: str, key: str | None = None) -> NoReturn:
    raise _Bad(where if key is None else f"{where}.{key}")


# ------------------------------------------------------------------------------------------ member readers
# Each reads one member of an object and checks it in a single call; the error path is built only on failure.
# ``None`` is a value (JSON null), ``_MISSING`` an absent member: required members may be null only where the
# contract says so, and only the contract's optional members (ngayHetHan, a relative's IDs) may be absent.


def _obj(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        _fail(where)
    return value


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, _MISSING)
    if type(value) is not list:
        _fail(where, key)
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, _MISSING)
    if type(value) is not str:
        _fail(where, key)
    return _NFC("NFC", value)


def _opt_text(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key, _MISSING)
    if value is None:
        return None
    if type(value) is not str:
        _fail(where, key)
    return _NFC("NFC", value)


def _match(data: dict[str, Any], key: str, pattern: re.Pattern[str], where: str) -> str:
    value = data.get(key, _MISSING)
    if type(value) is not str or pattern.fullmatch(value) is None:
        _fail(where, key)
    return value


def _opt_match(
    data: dict[str, Any], key: str, pattern: re.Pattern[str], where: str, *, may_be_absent: bool = False
) -> str | None:
    value = data.get(key, None if may_be_absent else _MISSING)
    if value is None:
        return None
    if type(value) is not str or pattern.fullmatch(value) is None:
        _fail(where, key)
    return value


def _code(data: dict[str, Any], key: str, table: dict[str, str], where: str) -> str:
    value = data.get(key, _MISSING)
    mapped = table.get(value) if type(value) is str else None
    if mapped is None:
        _fail(where, key)
    return mapped


def _opt_code(data: dict[str, Any], key: str, table: dict[str, str], where: str) -> str | None:
    value = data.get(key, _MISSING)
    if value is None:
        return None
    mapped = table.get(value) if type(value) is str else None
    if mapped is None:
        _fail(where, key)
    return mapped


def _member(data: dict[str, Any], key: str, where: str) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING:
        _fail(where, key)
    return value


# ----------------------------------------------------------------------------------------- structured values


def _place(value: Any, where: str) -> dict[str, str] | None:
    """``DiaDanhCu``: a place in the pre-2025 units."""
    if value is None:
        return None
    data = _obj(value, where)
    return {
        "legacy_province_code": _match(data, "maTinhCu", _LEGACY_PROVINCE, where),
        "legacy_province_name": _text(data, "tenTinhCu", where),
        "text": _text(data, "chiTiet", where),
    }


def _address(value: Any, where: str) -> dict[str, str] | None:
    """``DiaChi``: an address in the 2025 units (no district)."""
    if value is None:
        return None
    data = _obj(value, where)
    return {
        "province_code": _match(data, "maTinh", _PROVINCE, where),
        "province_name": _text(data, "tenTinh", where),
        "ward_code": _match(data, "maXa", _WARD, where),
        "ward_name": _text(data, "tenXa", where),
        "detail": _text(data, "chiTiet", where),
        "text": _text(data, "diaChiDayDu", where),
    }


def _code_name(value: Any, where: str) -> dict[str, str]:
    """``MaTen``: a GSO code and its name."""
    data = _obj(value, where)
    return {"code": _match(data, "ma", _GSO_CODE, where), "name": _text(data, "ten", where)}


def _id_card(value: Any) -> dict[str, str | None]:
    where = "theCanCuoc[]"
    data = _obj(value, where)
    kind = data.get("loai")
    if type(kind) is not str or kind not in ID_CARD_TYPES:
        _fail(where, "loai")
    return {
        "type": kind,
        "number": _match(data, "so", PERSONAL_ID, where),
        "issued_on": _match(data, "ngayCap", _DATE, where),
        "issuer": _text(data, "noiCap", where),
        "expires_on": _opt_match(data, "ngayHetHan", _DATE, where, may_be_absent=True),
    }


def _relative(value: Any) -> dict[str, str | None]:
    where = "thanNhan[]"
    data = _obj(value, where)
    return {
        "relation": _code(data, "quanHe", RELATIVE, where),
        "personal_id": _opt_match(data, "soDinhDanh", PERSONAL_ID, where, may_be_absent=True),
        "old_id_number": _opt_match(data, "soCmnd", _OLD_ID, where, may_be_absent=True),
        "full_name": _text(data, "hoVaTen", where),
        "nationality": _match(data, "quocTich", _COUNTRY, where),
    }


def _absence(value: Any) -> dict[str, str | None] | None:
    if value is None:
        return None
    where = "tamVang"
    data = _obj(value, where)
    return {
        "from": _match(data, "tuNgay", _DATE, where),
        "to": _opt_match(data, "denNgay", _DATE, where),
        "reason": _text(data, "lyDo", where),
        "destination": _text(data, "noiDen", where),
    }


def _strings(data: dict[str, Any], key: str, pattern: re.Pattern[str] | None, where: str) -> list[str]:
    items = _list(data, key, where)
    for item in items:
        if type(item) is not str or (pattern is not None and pattern.fullmatch(item) is None):
            _fail(where, key + "[]")
    return items if pattern is not None else [_NFC("NFC", item) for item in items]


# ------------------------------------------------------------------------------------------------ records


def record_from_wire(data: Any, *, source: str, fields: Collection[str] | None = None) -> ResidentRecord:
    """One ``CongDan`` as a ResidentRecord; UpstreamBadResponse if off-contract.

    With ``fields``, only those fields (of RESIDENT_FIELDS) are read, checked and returned, besides the
    identity (``soDinhDanh``) and ``capNhatLuc``: a verification reads four of the 26, and mapping all of them
    was a third of a batch verification's CPU. Without, every field is.
    """
    try:
        return _record(
            data,
            source,
            _READERS if fields is None else [(f, _READER_OF[f]) for f in fields if f in _READER_OF],
        )
    except _Bad as bad:
        raise UpstreamBadResponse(reason=f"shape:{bad.where}") from None


_W = "CongDan"


def _nationality(d: dict[str, Any]) -> list[str]:
    nationality = _strings(d, "quocTich", _COUNTRY, _W)
    if not nationality:
        _fail(_W, "quocTich")
    return nationality


def _blood_type(d: dict[str, Any]) -> str | None:
    blood_type = _member(d, "nhomMau", _W)
    if blood_type is not None and (type(blood_type) is not str or blood_type not in BLOOD_TYPES):
        _fail(_W, "nhomMau")
    return blood_type


_Reader = Callable[[dict[str, Any]], Any]
_READERS: list[tuple[str, _Reader]] = [
    ("full_name", lambda d: _text(d, "hoVaTen", _W)),
    ("other_names", lambda d: _strings(d, "tenGoiKhac", None, _W)),
    ("date_of_birth", lambda d: _match(d, "ngaySinh", _DATE, _W)),
    ("gender", lambda d: _code(d, "gioiTinh", GENDER, _W)),
    ("place_of_birth", lambda d: _place(_member(d, "noiSinh", _W), "noiSinh")),
    (
        "birth_registration_place",
        lambda d: _place(_obj(_member(d, "noiDangKyKhaiSinh", _W), "noiDangKyKhaiSinh"), "noiDangKyKhaiSinh"),
    ),
    ("hometown", lambda d: _place(_member(d, "queQuan", _W), "queQuan")),
    ("ethnicity", lambda d: _code_name(_member(d, "danToc", _W), "danToc")),
    ("religion", lambda d: _code_name(_member(d, "tonGiao", _W), "tonGiao")),
    ("nationality", _nationality),
    ("blood_type", _blood_type),
    ("old_id_number", lambda d: _opt_match(d, "soCmnd", _OLD_ID, _W)),
    ("previous_ids", lambda d: _strings(d, "soDinhDanhCu", PERSONAL_ID, _W)),
    ("id_cards", lambda d: [_id_card(item) for item in _list(d, "theCanCuoc", _W)]),
    ("relatives", lambda d: [_relative(item) for item in _list(d, "thanNhan", _W)]),
    ("permanent_address", lambda d: _address(_member(d, "noiThuongTru", _W), "noiThuongTru")),
    ("temporary_address", lambda d: _address(_member(d, "noiTamTru", _W), "noiTamTru")),
    ("current_address", lambda d: _address(_member(d, "noiOHienTai", _W), "noiOHienTai")),
    ("temporary_absence", lambda d: _absence(_member(d, "tamVang", _W))),
    ("residence_file_number", lambda d: _opt_text(d, "soHoSoCuTru", _W)),
    ("marital_status", lambda d: _opt_code(d, "tinhTrangHonNhan", MARITAL_STATUS, _W)),
    ("household_id", lambda d: _opt_match(d, "maHo", HOUSEHOLD_ID, _W)),
    ("relation_to_head", lambda d: _opt_code(d, "quanHeVoiChuHo", RELATION_TO_HEAD, _W)),
    ("date_of_death", lambda d: _opt_match(d, "ngayMat", _DATE, _W)),
    ("phone", lambda d: _opt_match(d, "soDienThoai", _PHONE, _W)),
    ("email", lambda d: _opt_text(d, "email", _W)),
]
"""How each field but ``personal_id`` is read from the wire, in contract order."""
_READER_OF: dict[str, _Reader] = {
    "personal_id": lambda d: _match(d, "soDinhDanh", PERSONAL_ID, _W),
    **dict(_READERS),
}


def _record(value: Any, source: str, readers: Iterable[tuple[str, _Reader]]) -> ResidentRecord:
    d = _obj(value, _W)
    personal_id = _match(d, "soDinhDanh", PERSONAL_ID, _W)
    fields: dict[str, Any] = {"personal_id": personal_id}
    for name, read in readers:
        fields[name] = read(d)
    updated = _match(d, "capNhatLuc", _TIMESTAMP, _W)
    return ResidentRecord(
        personal_id=personal_id,
        fields=fields,
        record_updated_at=updated[:-6] + "Z" if updated.endswith("+00:00") else updated,
        source=source,
    )


# --------------------------------------------------------------------------------------------- households


def household_from_wire(data: Any) -> Household:
    """One ``HoGiaDinh``; its members must include the head (relation ``head``), or UpstreamBadResponse."""
    try:
        return _household(data)
    except _Bad as bad:
        raise UpstreamBadResponse(reason=f"shape:{bad.where}") from None


def _household_member(value: Any, where: str) -> HouseholdMember:
    data = _obj(value, where)
    return HouseholdMember(
        personal_id=_match(data, "soDinhDanh", PERSONAL_ID, where),
        full_name=_text(data, "hoVaTen", where),
        relation_to_head=_code(data, "quanHeVoiChuHo", RELATION_TO_HEAD, where),
    )


def _household(value: Any) -> Household:
    w = "HoGiaDinh"
    d = _obj(value, w)
    head = _household_member(_member(d, "chuHo", w), "chuHo")
    members = tuple(_household_member(item, "thanhVien[]") for item in _list(d, "thanhVien", w))
    if head.relation_to_head != "head" or head not in members:
        _fail("chuHo")
    if len({member.personal_id for member in members}) != len(members):
        _fail("thanhVien")
    return Household(household_id=_match(d, "maHo", HOUSEHOLD_ID, w), head=head, members=members)


# --------------------------------------------------------------------------------------------- statistics

STATS_DIMENSION = {
    "ward": "xa",
    "age_band": "doTuoi",
    "age_group": "nhomTuoi",
    "sex": "gioiTinh",
    "ethnicity": "danToc",
    "residence_status": "cuTru",
    "household_size": "quyMoHo",
    "marital_status": "honNhan",
}
"""API dimension -> the upstream's ``nhomTheo`` name."""
RESIDENCE_STATUS = {"thuong_tru": "permanent", "tam_tru": "temporary", "khac": "other"}
STATS_MARITAL_STATUS = {**MARITAL_STATUS, "chua_ro": "unknown"}
_STATS_VALUE = {"sex": GENDER, "residence_status": RESIDENCE_STATUS, "marital_status": STATS_MARITAL_STATUS}
"""Upstream value -> API value, for the dimensions whose vocabularies differ (the others are the same)."""
_TO_WIRE = {dim: {api: wire for wire, api in table.items()} for dim, table in _STATS_VALUE.items()}
_MAX_KEY = 255


def aggregate_to_wire(query: PopulationQuery) -> dict[str, Any]:
    """The upstream's ``ThongKeRequest`` body for a (valid) query."""
    loc: dict[str, Any] = {}
    if query.sex is not None:
        loc["gioiTinh"] = _TO_WIRE["sex"][query.sex]
    if query.age_min is not None:
        loc["tuoiTu"] = query.age_min
    if query.age_max is not None:
        loc["tuoiDen"] = query.age_max
    if query.ethnicity is not None:
        loc["danToc"] = list(query.ethnicity)
    if query.residence_status is not None:
        loc["cuTru"] = [_TO_WIRE["residence_status"][value] for value in query.residence_status]
    body: dict[str, Any] = {
        "maTinh": query.province,
        "nhomTheo": [STATS_DIMENSION[d] for d in query.group_by],
    }
    if query.wards is not None:
        body["maXa"] = list(query.wards)
    if loc:
        body["loc"] = loc
    if query.as_of is not None:
        body["ngayTinh"] = query.as_of.isoformat()
    return body


def aggregate_from_wire(data: Any, query: PopulationQuery) -> RawAggregate:
    """The upstream's ``ThongKeResponse`` for ``query``, checked against it; UpstreamBadResponse otherwise.

    Beyond the shape: it must answer the province and dimensions asked, each cell's values must be in the
    dimension's vocabulary (wards in the asked list when one was given), counts positive, key sums within
    0..255 per resident, and no cell twice."""
    try:
        return _aggregate(data, query)
    except _Bad as bad:
        raise UpstreamBadResponse(reason=f"shape:{bad.where}") from None


def _aggregate(value: Any, query: PopulationQuery) -> RawAggregate:
    w = "ThongKeResponse"
    d = _obj(value, w)
    if _match(d, "maTinh", _PROVINCE, w) != query.province:
        _fail(w, "maTinh")
    as_of_text = _text(d, "ngayTinh", w)
    try:
        as_of = date.fromisoformat(as_of_text)
    except ValueError:
        _fail(w, "ngayTinh")
    if len(as_of_text) != 10 or (query.as_of is not None and as_of != query.as_of):
        _fail(w, "ngayTinh")
    if _list(d, "nhomTheo", w) != [STATS_DIMENSION[dim] for dim in query.group_by]:
        _fail(w, "nhomTheo")
    labels_doc = _obj(_member(d, "nhan", w), "nhan")
    labels: dict[str, dict[str, str]] = {}
    for dim, wire_name in (("ward", "xa"), ("ethnicity", "danToc")):
        names = labels_doc.get(wire_name, {})
        if type(names) is not dict or not all(type(k) is str and type(v) is str for k, v in names.items()):
            _fail("nhan", wire_name)
        labels[dim] = {k: _NFC("NFC", v) for k, v in names.items()}
    allowed_wards = None if query.wards is None else set(query.wards)
    maps = [_value_map(dim, labels, allowed_wards) for dim in query.group_by]
    width = len(maps)
    cells: list[RawCell] = []
    for item in _list(d, "o", w):
        if type(item) is not dict:
            _fail("o[]")
        raw_values = item.get("giaTri")
        if type(raw_values) is not list or len(raw_values) != width:
            _fail("o[]", "giaTri")
        try:
            values = tuple([m[raw] for m, raw in zip(maps, raw_values, strict=True)])
        except (KeyError, TypeError):
            _fail("o[]", "giaTri")
        count, key_sum = item.get("soNguoi"), item.get("tongKhoa")
        if type(count) is not int or count < 1:
            _fail("o[]", "soNguoi")
        if type(key_sum) is not int or not 0 <= key_sum <= _MAX_KEY * count:
            _fail("o[]", "tongKhoa")
        cells.append(RawCell(values, count, key_sum))
    if len({cell.values for cell in cells}) != len(cells):
        _fail("o[]", "giaTri")
    return RawAggregate(query.province, as_of, query.group_by, tuple(cells), labels)


def _value_map(dim: str, labels: dict[str, dict[str, str]], allowed_wards: set[str] | None) -> dict[str, str]:
    """Upstream value -> API value for one dimension: what a cell may hold there (anything else is off-contract)."""
    if dim == "ward":
        return {
            code: code
            for code in labels["ward"]
            if _WARD.fullmatch(code) and (allowed_wards is None or code in allowed_wards)
        }
    if dim == "ethnicity":
        return {code: code for code in labels["ethnicity"] if _GSO_CODE.fullmatch(code)}
    table = _STATS_VALUE.get(dim)
    if table is None:
        return {value: value for value in STATS_VALUES[dim]}
    return {raw: api for raw, api in table.items() if api in STATS_VALUES[dim]}


# ------------------------------------------------------------------------------------- one-time codes

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HINT = re.compile(r"^[0-9]{2}\*{4,10}[0-9]{2}$")


def code_request_to_wire(personal_id: str, about: str) -> dict[str, str]:
    return {"soDinhDanh": personal_id, "noiDung": about}


def code_sent_from_wire(data: Any, personal_id: str) -> CodeSent | None:
    """An ``OtpSendResponse`` for ``personal_id``: the code sent, or None when the resident has no mobile on
    record; UpstreamIdentityMismatch for an answer about someone else, UpstreamBadResponse off contract."""
    try:
        doc = _obj(data, "OtpSendResponse")
        if _match(doc, "soDinhDanh", PERSONAL_ID, "OtpSendResponse") != personal_id:
            raise UpstreamIdentityMismatch(reason="identity")
        outcome = doc.get("ketQua")
        if outcome == "khong_co_so_dien_thoai":
            return None
        if outcome != "da_gui" or doc.get("kenh") != "sms":
            _fail("OtpSendResponse", "ketQua")
        return CodeSent(
            challenge_id=_match(doc, "maYeuCau", _CHALLENGE, "OtpSendResponse"),
            destination_hint=_match(doc, "soDienThoaiAn", _HINT, "OtpSendResponse"),
        )
    except _Bad as bad:
        raise UpstreamBadResponse(reason=f"shape:{bad.where}") from None


def code_check_to_wire(challenge_id: str, code: str) -> dict[str, str]:
    return {"maYeuCau": challenge_id, "maXacNhan": code}


def code_checked_from_wire(data: Any) -> bool:
    """An ``OtpCheckResponse``: ``hopLe``, a boolean, or UpstreamBadResponse."""
    if type(data) is not dict or type(data.get("hopLe")) is not bool:
        raise UpstreamBadResponse(reason="shape:OtpCheckResponse.hopLe")
    valid: bool = data["hopLe"]
    return valid
