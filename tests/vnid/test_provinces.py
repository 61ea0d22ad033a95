"""The 63 legacy codes of birth registration and the 2025 units (Resolution 202/2025/QH15)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from vietnam_provinces import Province

from vnid import (
    LEGACY_PROVINCES,
    PROVINCES_2025,
    LegacyProvince,
    UnknownProvince,
    UnknownWard,
    legacy_codes_of,
    legacy_province,
    province_2025,
    ward,
    wards_of,
)

# Typed again from Circular 07/2016/TT-BCA Annex 1 so a slip in the vendored table shows up here.
EXPECTED_LEGACY_CODES = (
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 037 038 "
    "040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 077 079 080 082 "
    "083 084 086 087 089 091 092 093 094 095 096"
)

# Resolution 202/2025/QH15: eleven provinces were not merged.
UNMERGED_2025_CODES = {"01", "04", "11", "12", "14", "20", "22", "38", "40", "42", "46"}


def test_the_legacy_table_has_exactly_the_63_codes_in_code_order() -> None:
    assert len(LEGACY_PROVINCES) == 63
    assert " ".join(LEGACY_PROVINCES) == EXPECTED_LEGACY_CODES
    for code, province in LEGACY_PROVINCES.items():
        assert province.code == code
        assert province.kind in ("tỉnh", "thành phố")
        assert len(province.new_code) == 2
        assert province.new_code.isascii()
        assert province.new_code.isdigit()


def test_the_legacy_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        LEGACY_PROVINCES["050"] = LegacyProvince("050", "X", "tỉnh", "52")  # type: ignore[index]


def test_every_legacy_area_lies_in_one_of_the_34_provinces_of_2025() -> None:
    new_codes = {p.new_code for p in LEGACY_PROVINCES.values()}
    library_codes = {f"{int(p.code):02d}" for p in Province.iter_all()}
    assert new_codes == library_codes
    assert len(new_codes) == 34


def test_each_2025_code_prefixed_with_zero_is_a_legacy_code_inside_that_province() -> None:
    # The mock gives births registered after 1 Jul 2025 the prefix "0" + 2025 code; this keeps it valid.
    for code in PROVINCES_2025:
        assert LEGACY_PROVINCES["0" + code].new_code == code


def test_resolution_202_merged_52_units_into_23_and_kept_11() -> None:
    sizes = {code: len(legacy_codes_of(code)) for code in PROVINCES_2025}
    assert {code for code, size in sizes.items() if size == 1} == UNMERGED_2025_CODES
    merged = {code: size for code, size in sizes.items() if size > 1}
    assert len(merged) == 23
    assert sum(merged.values()) == 52


@pytest.mark.parametrize(
    ("code", "name", "new_code"),
    [
        ("001", "Hà Nội", "01"),
        ("002", "Hà Giang", "08"),
        ("017", "Hòa Bình", "25"),
        ("030", "Hải Dương", "31"),
        ("044", "Quảng Bình", "44"),
        ("045", "Quảng Trị", "44"),
        ("046", "Thừa Thiên Huế", "46"),
        ("049", "Quảng Nam", "48"),
        ("052", "Bình Định", "52"),
        ("054", "Phú Yên", "66"),
        ("062", "Kon Tum", "51"),
        ("064", "Gia Lai", "52"),
        ("067", "Đắk Nông", "68"),
        ("074", "Bình Dương", "79"),
        ("077", "Bà Rịa - Vũng Tàu", "79"),
        ("079", "TP Hồ Chí Minh", "79"),
        ("080", "Long An", "80"),
        ("087", "Đồng Tháp", "82"),
        ("091", "Kiên Giang", "91"),
        ("095", "Bạc Liêu", "96"),
    ],
)
def test_legacy_rows_match_the_table(code: str, name: str, new_code: str) -> None:
    province = legacy_province(code)
    assert (province.name, province.new_code) == (name, new_code)


def test_the_five_centrally_run_cities_of_the_legacy_list() -> None:
    cities = {code for code, p in LEGACY_PROVINCES.items() if p.kind == "thành phố"}
    assert cities == {"001", "031", "048", "079", "092"}


@pytest.mark.parametrize(
    ("new_code", "legacy_codes"),
    [
        ("52", ("052", "064")),
        ("79", ("074", "077", "079")),
        ("44", ("044", "045")),
        ("68", ("060", "067", "068")),
        ("01", ("001",)),
    ],
)
def test_legacy_codes_of_a_2025_province(new_code: str, legacy_codes: tuple[str, ...]) -> None:
    assert legacy_codes_of(new_code) == legacy_codes


@pytest.mark.parametrize("code", ["050", "52", "0052", " 052", "٠٥٢", ""])
def test_unknown_legacy_codes_raise(code: str) -> None:
    with pytest.raises(UnknownProvince) as caught:
        legacy_province(code)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, KeyError)
    assert caught.value.code == code


@pytest.mark.parametrize("code", ["53", "052", "2", "64"])
def test_legacy_codes_of_an_unknown_2025_code_raises(code: str) -> None:
    with pytest.raises(UnknownProvince):
        legacy_codes_of(code)


def test_the_34_provinces_of_2025() -> None:
    assert len(PROVINCES_2025) == 34
    assert list(PROVINCES_2025) == sorted(PROVINCES_2025)
    assert all(len(code) == 2 and code.isdigit() for code in PROVINCES_2025)
    kinds = Counter(p.kind for p in PROVINCES_2025.values())
    assert kinds == {"tỉnh": 28, "thành phố": 6}
    assert province_2025("52") == PROVINCES_2025["52"]


@pytest.mark.parametrize(
    ("code", "name", "short_name", "kind"),
    [
        ("01", "Thành phố Hà Nội", "Hà Nội", "thành phố"),
        ("46", "Thành phố Huế", "Huế", "thành phố"),
        ("79", "Thành phố Hồ Chí Minh", "Hồ Chí Minh", "thành phố"),
        ("52", "Gia Lai", "Gia Lai", "tỉnh"),
        ("08", "Tuyên Quang", "Tuyên Quang", "tỉnh"),
    ],
)
def test_province_2025_rows(code: str, name: str, short_name: str, kind: str) -> None:
    province = province_2025(code)
    assert province.code == code
    assert (province.name, province.short_name, province.kind) == (name, short_name, kind)


@pytest.mark.parametrize("code", ["64", "052", "1", "5", "00", "99", "٥٢"])
def test_unknown_2025_province_codes_raise(code: str) -> None:
    # 64 was old Gia Lai's number; in 2025 data it does not exist.
    with pytest.raises(UnknownProvince):
        province_2025(code)
    with pytest.raises(UnknownProvince):
        wards_of(code)


def test_wards_of_2025() -> None:
    all_wards = [w for code in PROVINCES_2025 for w in wards_of(code)]
    assert len(all_wards) == 3321
    assert Counter(w.kind for w in all_wards) == {"xã": 2621, "phường": 687, "đặc khu": 13}
    assert len({w.code for w in all_wards}) == 3321
    assert all(len(w.code) == 5 and w.code.isdigit() for w in all_wards)
    for code in PROVINCES_2025:
        assert {w.province_code for w in wards_of(code)} == {code}


def test_new_gia_lai_has_135_wards_including_quy_nhon() -> None:
    gia_lai = wards_of("52")
    assert len(gia_lai) == 135
    assert Counter(w.kind for w in gia_lai) == {"xã": 110, "phường": 25}
    assert "Phường Quy Nhơn" in {w.name for w in gia_lai}
    assert wards_of("52") is gia_lai  # cached


def test_ward_lookup() -> None:
    quy_nhon = ward("21583")
    assert (quy_nhon.name, quy_nhon.province_code, quy_nhon.kind) == ("Phường Quy Nhơn", "52", "phường")
    assert ward("00004").name == "Phường Ba Đình"  # codes are zero-padded to five digits


@pytest.mark.parametrize("code", ["4", "0004", "000004", "99999", "21583 ", "２１５８３"])
def test_unknown_ward_codes_raise(code: str) -> None:
    with pytest.raises(UnknownWard) as caught:
        ward(code)
    assert isinstance(caught.value, ValueError)


def test_import_does_not_load_the_2025_tables() -> None:
    probe = "import sys, vnid; print('vietnam_provinces' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_ward_names_have_single_spaces() -> None:
    from vnid import PROVINCES_2025, wards_of

    for code in PROVINCES_2025:
        for w in wards_of(code):
            assert w.name == " ".join(w.name.split())
