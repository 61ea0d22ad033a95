"""Scenario personas: fixed residents with stable IDs, present after every seed whatever its seed or size.

Integrators test against these instead of guessing (MOSIP's mock left testers to invent identities).
Persona IDs use serials below 001000, which the generator never hands out, so they cannot collide
with generated residents. Their dates are fixed; only ``capNhatLuc`` follows ``--as-of``.
Documented in ``docs/personas.md`` and served at ``GET /_mock/personas``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any

import orjson

from mock_csdlqg.generator.ids import CHUNK_SIZE, PERSONA_CHUNK, cmnd_number, household_number
from mock_csdlqg.generator.population import CAN_CUOC_ISSUER, CCCD_ISSUER, legacy_label
from vnid import LEGACY_PROVINCES, PROVINCES_2025, wards_of

ResidentRow = tuple[str, str | None, str, bytes]
HouseholdRow = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class PersonaInfo:
    personal_id: str
    scenario: str
    description: str


@dataclass(slots=True)
class _P:
    """A persona's facts; everything else in its record is derived the way the generator derives it."""

    pid: str
    name: str
    sex: str
    dob: str
    reg: str
    eth: str = "01"
    religion: str = "00"
    home: tuple[str, str, str] | None = ("52", "Quy Nhơn", "Số 12 Lê Lợi")
    temporary: tuple[str, str, str] | None = None
    current: tuple[str, str, str] | None = None
    absence: dict[str, str | None] | None = None
    household: str | None = None
    relation: str | None = None
    marital: str | None = "doc_than"
    death: str | None = None
    cmnd: int | None = None
    previous: list[str] = field(default_factory=list)
    cards: list[tuple[str, str, str | None]] = field(default_factory=list)
    nationality: list[str] = field(default_factory=lambda: ["VN"])
    blood: str | None = None
    phone: str | None = None
    other_names: list[str] = field(default_factory=list)
    relatives: list[tuple[str, str]] = field(default_factory=list)  # (relation, persona pid)
    named_relatives: list[tuple[str, str]] = field(default_factory=list)  # (relation, name only)


ETHNIC = {"01": "Kinh", "10": "Gia-rai", "12": "Ê-đê", "13": "Ba-na"}
RELIGION = {"00": "Không", "02": "Công giáo", "03": "Tin lành"}

# Household codes in the block the generator never uses.
H_LARGE = household_number("52", PERSONA_CHUNK * CHUNK_SIZE + 1)
H_COUPLE = household_number("52", PERSONA_CHUNK * CHUNK_SIZE + 2)
H_WIDOW = household_number("52", PERSONA_CHUNK * CHUNK_SIZE + 3)
H_GUARDIAN = household_number("52", PERSONA_CHUNK * CHUNK_SIZE + 4)
H_SINGLE = {
    pid: household_number(province, PERSONA_CHUNK * CHUNK_SIZE + 10 + i)
    for i, (pid, province) in enumerate(
        [
            ("052085000103", "52"), ("052190000104", "52"), ("064192000105", "52"), ("064196000106", "52"),
            ("052088000115", "79"), ("079305000116", "52"), ("052075000117", "52"), ("052090000118", "52"),
            ("001090000119", "01"), ("052095000121", "52"), ("052080000124", "52"), ("066193000126", "66"),
            ("064079000127", "52"), ("079083000131", "79"), ("052196000132", "52"), ("064138000102", "52"),
        ]
    )
}  # fmt: skip


PEOPLE: tuple[tuple[_P, str, str], ...] = (
    (
        _P("052041000101", "Lê Văn Bảy", "male", "1941-03-12", "052", home=("52", "Quy Nhơn Đông", "Thôn 4"),
           marital="da_ket_hon", death="2024-08-19", cmnd=1, cards=[("cccd", "2017-05-10", None)],
           relatives=[("vo_chong", "052144000133")]),
        "deceased",
        "Died 2024-08-19: verification answers match=false, reason=deceased. No current residence or household; "
        "his widow (052144000133) points to him.",
    ),
    (
        _P("064138000102", "Nguyễn Thị Lựu", "female", "1938", "064", home=("52", "Pleiku", "Tổ dân phố 7"),
           marital="goa", cmnd=2, cards=[("cccd", "2019-06-01", None)], household=H_SINGLE["064138000102"],
           relation="chu_ho"),
        "year_only_birth",
        "Birth date on record only as the year 1938: an input of 1938, 1938-xx or 1938-xx-xx matches at year "
        "precision.",
    ),
    (
        _P("052085000103", "Đặng Đình Đức", "male", "1985-07-20", "052", cmnd=3, marital="doc_than",
           cards=[("cccd", "2021-04-02", "2025-07-20")], household=H_SINGLE["052085000103"], relation="chu_ho",
           phone="0905123103"),
        "name_with_d",
        "Name full of Đ/đ: inputs with the look-alikes Ð (U+00D0) or Ɖ match at the normalized tier; "
        "'Dang Dinh Duc' only at the fuzzy tier.",
    ),
    (
        _P("052190000104", "Võ Thị Thanh Hòa", "female", "1990-02-14", "052", cmnd=4,
           cards=[("cccd", "2021-03-15", "2030-02-14")], household=H_SINGLE["052190000104"], relation="chu_ho"),
        "tone_old_style",
        "Stored with the old tone placement 'Hòa'; an input 'Hoà' (new style) matches at the normalized tier, "
        "not the exact one.",
    ),
    (
        _P("064192000105", "Võ Thị Thanh Hoà", "female", "1992-11-03", "064", home=("52", "Pleiku", "Số 5 Hùng Vương"),
           cards=[("cccd", "2021-06-20", "2032-11-03")], household=H_SINGLE["064192000105"], relation="chu_ho"),
        "tone_new_style",
        "The same name as 052190000104 stored with the new tone placement 'Hoà'.",
    ),
    (
        _P("064196000106", "Rơ Châm H'Linh", "female", "1996-05-01", "064", eth="10", religion="03",
           home=("52", "Pleiku", "Làng Plei Ốp"), blood="AB", cards=[("can_cuoc", "2024-09-12", "2036-05-01")],
           household=H_SINGLE["064196000106"], relation="chu_ho"),
        "jrai_name",
        "Jrai woman (clan Rơ Châm first, given name with the H' prefix), ethnicity 10 Gia-rai and religion "
        "Tin lành (both sensitive), blood type on record; apostrophe variants (’) match at the normalized tier.",
    ),
    (
        _P("052216000107", "Nguyễn Minh Khôi", "male", "2016-09-09", "052", household=H_LARGE, relation="chau",
           relatives=[("cha", "052092000110"), ("me", "064194000111")]),
        "child_under_14",
        "A boy born 2016 (digit 4 = 2: male, 2000s), no ID card yet, grandchild in a household of eight.",
    ),
    (
        _P("052068000108", "Nguyễn Văn Thành", "male", "1968-04-15", "052", household=H_LARGE, relation="chu_ho",
           marital="da_ket_hon", cmnd=5, cards=[("cccd", "2021-05-05", None)], phone="0914068108",
           relatives=[("vo_chong", "052170000109"), ("con", "052092000110"), ("con", "052303000113"),
                      ("me", "052145000114")]),
        "large_household_head",
        "Head of a three-generation household of eight (spouse, son and daughter-in-law, daughter, two "
        "grandchildren, his widowed mother).",
    ),
    (
        _P("052170000109", "Trần Thị Mai", "female", "1970-10-02", "052", household=H_LARGE, relation="vo_chong",
           marital="da_ket_hon", cmnd=6, cards=[("cccd", "2021-05-05", None)],
           relatives=[("vo_chong", "052068000108"), ("con", "052092000110"), ("con", "052303000113")]),
        "married_couple",
        "Wife of 052068000108: both records name each other as spouse.",
    ),
    (
        _P("052092000110", "Nguyễn Văn Hùng", "male", "1992-01-20", "052", household=H_LARGE, relation="con",
           marital="da_ket_hon", cmnd=7, cards=[("cccd", "2021-02-01", "2032-01-20")],
           relatives=[("cha", "052068000108"), ("me", "052170000109"), ("vo_chong", "064194000111"),
                      ("con", "052216000107"), ("con", "052319000112")]),
        "large_household_son",
        "Married son living in his father's household with his wife and children.",
    ),
    (
        _P("064194000111", "Lê Thị Hồng", "female", "1994-06-30", "064", household=H_LARGE, relation="con_dau",
           marital="da_ket_hon", cards=[("cccd", "2021-02-01", "2034-06-30")],
           relatives=[("vo_chong", "052092000110"), ("con", "052216000107"), ("con", "052319000112")],
           named_relatives=[("cha", "Lê Văn Tâm"), ("me", "Phan Thị Nở")]),
        "daughter_in_law",
        "Born in old Gia Lai (064), daughter-in-law of the household head.",
    ),
    (
        _P("052319000112", "Nguyễn Thị Bảo Ngọc", "female", "2019-12-24", "052", household=H_LARGE,
           relation="chau", marital=None, relatives=[("cha", "052092000110"), ("me", "064194000111")]),
        "young_child",
        "A girl born 2019 (digit 4 = 3: female, 2000s).",
    ),
    (
        _P("052303000113", "Nguyễn Thị Lan", "female", "2003-08-08", "052", household=H_LARGE, relation="con",
           cards=[("cccd", "2021-09-01", "2028-08-08")], phone="0387303113",
           relatives=[("cha", "052068000108"), ("me", "052170000109")]),
        "born_after_2000",
        "Born 2003: digit 4 = 3 (female, 2000s), digits 5-6 = 03.",
    ),
    (
        _P("052145000114", "Phạm Thị Gấm", "female", "1945-05", "052", household=H_LARGE, relation="cha_me",
           marital="goa", cmnd=8, cards=[("cccd", "2018-01-01", None)], relatives=[("con", "052068000108")]),
        "month_only_birth",
        "Birth date on record as 1945-05 (month precision); the head's widowed mother.",
    ),
    (
        _P("052088000115", "Huỳnh Tấn Phát", "male", "1988-10-10", "052", home=("79", "Sài Gòn", "Số 88 Nguyễn Huệ"),
           cmnd=9, cards=[("cccd", "2021-07-07", "2028-10-10")], household=H_SINGLE["052088000115"],
           relation="chu_ho", phone="0938088115"),
        "born_binh_dinh_lives_hcm",
        "ID prefix 052 (birth registered in old Bình Định, now Gia Lai) but living in Ho Chi Minh City: "
        "out of scope for a grant limited to province 52, in scope for 79.",
    ),
    (
        _P("079305000116", "Lý Gia Hân", "female", "2005-06-06", "079", home=("52", "Quy Nhơn", "Số 21 Xuân Diệu"),
           cards=[("cccd", "2021-10-10", "2030-06-06")], household=H_SINGLE["079305000116"], relation="chu_ho"),
        "born_hcm_lives_gia_lai",
        "Born 2005 in Ho Chi Minh City (079), living in Gia Lai: birth registration says nothing of residence.",
    ),
    (
        _P("052075000117", "Bùi Quang Vinh", "male", "1975-12-01", "052", cmnd=10, marital="ly_hon",
           cards=[("cmnd12", "2014-03-03", "2029-03-03"), ("cccd", "2021-03-03", None)],
           household=H_SINGLE["052075000117"], relation="chu_ho"),
        "old_cmnd_holder",
        "Holds an old 9-digit CMND (field 13) and had a 12-digit CMND before his CCCD; divorced.",
    ),
    (
        _P("052090000118", "Nguyễn Văn An", "male", "1990-01-01", "052", household=H_SINGLE["052090000118"],
           relation="chu_ho", cards=[("cccd", "2021-01-15", "2030-01-01")]),
        "same_name_same_dob_1",
        "Same name and birth date as 001090000119: only the ID tells them apart.",
    ),
    (
        _P("001090000119", "Nguyễn Văn An", "male", "1990-01-01", "001", home=("01", "Hoàn Kiếm", "Số 3 Tràng Tiền"),
           household=H_SINGLE["001090000119"], relation="chu_ho", cards=[("cccd", "2021-01-20", "2030-01-01")]),
        "same_name_same_dob_2",
        "The Hà Nội namesake of 052090000118.",
    ),
    (
        _P("040199000120", "Trương Thị Thu", "female", "1999-12-12", "040", home=None,
           temporary=("52", "Quy Nhơn Nam", "Số 40 An Dương Vương"), cards=[("cccd", "2021-12-01", "2024-12-12")]),
        "no_permanent_residence",
        "No permanent residence: only a temporary residence in Gia Lai, which is also her current place of living; "
        "no household.",
    ),
    (
        _P("052095000121", "Phan Văn Tài", "male", "1995-03-03", "052", household=H_SINGLE["052095000121"],
           relation="chu_ho", temporary=("79", "Sài Gòn", "Số 9 Lê Duẩn"),
           absence={"tuNgay": "2025-03-01", "denNgay": "2026-03-01", "lyDo": "Đi làm ăn xa",
                    "noiDen": "Số 9 Lê Duẩn, Phường Sài Gòn, Thành phố Hồ Chí Minh"},
           cards=[("cccd", "2021-03-10", "2035-03-03")]),
        "temporary_absence",
        "Permanent residence in Gia Lai with a declared temporary absence; temporary residence and current "
        "place of living in Ho Chi Minh City (province scope follows the current residence: 79).",
    ),
    (
        _P("052087000122", "Đỗ Minh Tuấn", "male", "1987-09-19", "052", household=H_COUPLE, relation="chu_ho",
           marital="da_ket_hon", cards=[("cccd", "2021-08-08", "2027-09-19")],
           relatives=[("vo_chong", "064189000123"), ("con", "052225000128")]),
        "married_couple_husband",
        "Husband in a young family: wife 064189000123, baby 052225000128.",
    ),
    (
        _P("064189000123", "Hồ Thị Ngọc Ánh", "female", "1989-04-04", "064", household=H_COUPLE, relation="vo_chong",
           marital="da_ket_hon", cards=[("can_cuoc", "2025-02-02", "2029-04-04")],
           relatives=[("vo_chong", "052087000122"), ("con", "052225000128")]),
        "married_couple_wife",
        "Wife of 052087000122; her card is a căn cước issued after July 2024.",
    ),
    (
        _P("052080000124", "Mai Văn Lộc", "male", "1980-05-05", "052", previous=["052081000125"],
           household=H_SINGLE["052080000124"], relation="chu_ho", cards=[("cccd", "2022-02-02", None)]),
        "reissued_id",
        "ID re-issued after his birth year was keyed wrongly; the cancelled 052081000125 is kept in "
        "previous_ids and answers not_found.",
    ),
    (
        _P("066193000126", "H'Hen Niê", "female", "1993-02-10", "066", eth="12", religion="02",
           home=("66", "Buôn Ma Thuột", "Buôn Ko Tam"), household=H_SINGLE["066193000126"], relation="chu_ho",
           cards=[("cccd", "2021-05-20", "2033-02-10")]),
        "ede_name",
        "Ê Đê woman: given name with H' first, clan Niê last; lives in Đắk Lắk (66).",
    ),
    (
        _P("064079000127", "Đinh Văn Hrêl", "male", "1979-11-11", "064", eth="13",
           home=("52", "Pleiku", "Làng Kon Mahar"), household=H_SINGLE["064079000127"], relation="chu_ho",
           cmnd=11, cards=[("cccd", "2021-11-01", None)]),
        "bahnar_name",
        "Bahnar man, ethnicity 13 Ba-na.",
    ),
    (
        _P("052225000128", "Đỗ Minh Khang", "male", "2025-09-15", "052", household=H_COUPLE, relation="con",
           marital=None, relatives=[("cha", "052087000122"), ("me", "064189000123")]),
        "born_after_reform",
        "Born 2025-09-15, after the 2025 merger: prefix 0 + the 2025 code of new Gia Lai (052), digit 4 = 2.",
    ),
    (
        _P("052312000129", "Nguyễn Thị Mai Anh", "female", "2012-02-29", "052", household=H_GUARDIAN,
           relation="chau", marital=None, relatives=[("nguoi_dai_dien", "052158000130")],
           named_relatives=[("cha", "Nguyễn Văn Sáu"), ("me", "Lê Thị Bích")]),
        "minor_with_guardian",
        "A girl born on 29 February 2012 whose legal representative is her grandmother (relative "
        "legal_representative).",
    ),
    (
        _P("052158000130", "Lê Thị Sen", "female", "1958-07-07", "052", household=H_GUARDIAN, relation="chu_ho",
           marital="goa", cmnd=12, cards=[("cccd", "2020-01-01", None)],
           relatives=[("nguoi_duoc_dai_dien", "052312000129")]),
        "guardian",
        "Grandmother and legal representative of 052312000129 (relative represented_person).",
    ),
    (
        _P("079083000131", "Trần Quốc Bảo", "male", "1983-03-08", "079", home=("79", "Sài Gòn", "Số 1 Tôn Đức Thắng"),
           nationality=["VN", "US"], household=H_SINGLE["079083000131"], relation="chu_ho",
           cards=[("cccd", "2021-03-01", "2023-03-08")]),
        "dual_nationality",
        "Vietnamese and US nationality.",
    ),
    (
        _P("052196000132", "Phạm Thị Yến", "female", "1996-02-02", "052", household=H_SINGLE["052196000132"],
           relation="chu_ho", cards=[("cccd", "2016-06-06", "2021-02-02")], other_names=["Út"]),
        "expired_card",
        "Her only card expired on her 25th birthday and was not renewed; also known as 'Út'.",
    ),
    (
        _P("052144000133", "Nguyễn Thị Tám", "female", "1944-01-15", "052", home=("52", "Quy Nhơn Đông", "Thôn 4"),
           household=H_WIDOW, relation="chu_ho", marital="goa", cmnd=13, cards=[("cccd", "2017-05-10", None)],
           relatives=[("vo_chong", "052041000101")]),
        "widow",
        "Widow of the deceased 052041000101, still living at their address.",
    ),
)  # fmt: skip


@cache
def _ward(province: str, name_part: str) -> tuple[str, str]:
    wards = wards_of(province)
    for w in wards:
        if name_part in w.name:
            return w.code, w.name
    return wards[0].code, wards[0].name


def _address(spec: tuple[str, str, str] | None) -> dict[str, str] | None:
    if spec is None:
        return None
    province, ward_part, detail = spec
    code, name = _ward(province, ward_part)
    p = PROVINCES_2025[province]
    label = p.name if p.kind != "tỉnh" else f"Tỉnh {p.name}"
    return {
        "maTinh": province,
        "tenTinh": p.name,
        "maXa": code,
        "tenXa": name,
        "chiTiet": detail,
        "diaChiDayDu": f"{detail}, {name}, {label}",
    }


def _place(code: str, reformed: bool) -> dict[str, str]:
    if reformed:
        p = PROVINCES_2025[code[1:]]
        return {"maTinhCu": code, "tenTinhCu": p.name, "chiTiet": f"Tỉnh {p.name}"}
    legacy = LEGACY_PROVINCES[code]
    return {"maTinhCu": code, "tenTinhCu": legacy.name, "chiTiet": legacy_label(legacy)}


def _record(p: _P, names: dict[str, str], as_of: date, k: int) -> dict[str, Any]:
    reformed = p.dob >= "2025-07-01"
    permanent = _address(p.home)
    temporary = _address(p.temporary)
    current = None if p.death is not None else (temporary or permanent)
    relatives: list[dict[str, str | None]] = [
        {"quanHe": rel, "hoVaTen": name, "quocTich": "VN"} for rel, name in p.named_relatives
    ]
    relatives += [
        {"quanHe": rel, "soDinhDanh": pid, "hoVaTen": names[pid], "quocTich": "VN"}
        for rel, pid in p.relatives
    ]
    return {
        "soDinhDanh": p.pid,
        "hoVaTen": p.name,
        "tenGoiKhac": p.other_names,
        "ngaySinh": p.dob,
        "gioiTinh": "Nam" if p.sex == "male" else "Nữ",
        "noiSinh": _place(p.reg, reformed) if len(p.dob) == 10 else None,
        "noiDangKyKhaiSinh": _place(p.reg, reformed),
        "queQuan": _place(p.reg if not reformed else "052", False),
        "danToc": {"ma": p.eth, "ten": ETHNIC[p.eth]},
        "tonGiao": {"ma": p.religion, "ten": RELIGION[p.religion]},
        "quocTich": p.nationality,
        "nhomMau": p.blood,
        "soCmnd": cmnd_number(PERSONA_CHUNK * 4 * CHUNK_SIZE + p.cmnd) if p.cmnd is not None else None,
        "soDinhDanhCu": p.previous,
        "theCanCuoc": [
            {
                "loai": kind,
                "so": p.pid,
                "ngayCap": issued,
                "noiCap": {"cccd": CCCD_ISSUER, "can_cuoc": CAN_CUOC_ISSUER}.get(
                    kind, "Công an tỉnh Bình Định"
                ),
                "ngayHetHan": expires,
            }
            for kind, issued, expires in p.cards
        ],
        "thanNhan": relatives,
        "noiThuongTru": permanent,
        "noiTamTru": temporary,
        "noiOHienTai": current,
        "tamVang": p.absence,
        "soHoSoCuTru": f"HS{p.household}" if p.household else None,
        "tinhTrangHonNhan": p.marital,
        "maHo": p.household,
        "quanHeVoiChuHo": p.relation if p.household else None,
        "ngayMat": p.death,
        "soDienThoai": p.phone,
        "email": None,
        "capNhatLuc": f"{(as_of - timedelta(days=30 + k)).isoformat()}T08:00:00Z",
    }


def personas() -> list[PersonaInfo]:
    """The documented personas, in a stable order."""
    return [PersonaInfo(p.pid, scenario, description) for p, scenario, description in PEOPLE]


def personas_markdown() -> str:
    """The persona table as published in ``docs/personas.md`` (a test keeps the two in step)."""
    lines = [
        "# mock_csdlqg scenario personas",
        "",
        "Generated by `mock-csdlqg personas --markdown`; do not edit by hand. These residents exist after every",
        "`mock-csdlqg seed`, whatever its `--seed` or `--count`, with the same IDs and records (only",
        "`capNhatLuc` follows `--as-of`). `GET /_mock/personas` serves the same list.",
        "",
        "Các nhân vật kịch bản: cư dân cố định, có mặt sau mọi lần `seed`, dùng để kiểm thử tích hợp.",
        "",
        "| personal ID | scenario | what it tests |",
        "|---|---|---|",
    ]
    lines += [f"| `{p.personal_id}` | `{p.scenario}` | {p.description} |" for p in personas()]
    return "\n".join(lines) + "\n"


def persona_rows(as_of: date) -> tuple[list[ResidentRow], list[HouseholdRow]]:
    """The personas' resident rows and household rows, as the store keeps them."""
    names = {p.pid: p.name for p, _, _ in PEOPLE}
    residents: list[ResidentRow] = []
    households: dict[str, list[_P]] = {}
    for k, (p, _, _) in enumerate(PEOPLE):
        record = _record(p, names, as_of, k)
        scope = (record["noiOHienTai"] or record["noiTamTru"] or record["noiThuongTru"])["maTinh"]
        residents.append((p.pid, p.household, scope, orjson.dumps(record)))
        if p.household:
            households.setdefault(p.household, []).append(p)
    rows: list[HouseholdRow] = []
    for ho, members in households.items():
        members.sort(key=lambda m: m.relation != "chu_ho")
        head = members[0]
        rows.append(
            (
                ho,
                orjson.dumps(
                    {
                        "maHo": ho,
                        "chuHo": {"soDinhDanh": head.pid, "hoVaTen": head.name, "quanHeVoiChuHo": "chu_ho"},
                        "diaChi": _address(head.home),
                        "thanhVien": [
                            {"soDinhDanh": m.pid, "hoVaTen": m.name, "quanHeVoiChuHo": m.relation or "khac"}
                            for m in members
                        ],
                    }
                ),
            )
        )
    return residents, rows
