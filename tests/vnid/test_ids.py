"""Personal-ID structure, pinned to the legal table (Decree 137/2015 Art. 13; Circulars 07/2016, 59/2021)."""

from __future__ import annotations

import string
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnid import (
    LEGACY_PROVINCES,
    InvalidPersonalId,
    PersonalId,
    Sex,
    UnknownProvince,
    id_contradicts,
    is_cmnd9,
    is_valid_personal_id,
    make_personal_id,
    parse_personal_id,
    sex_century_digit,
)

# Digit 4 as the law tables it: even = male, odd = female; digit // 2 counts centuries from 1900.
LEGAL_DIGIT_TABLE: list[tuple[int, Sex, int]] = [
    (0, "male", 1900),
    (1, "female", 1900),
    (2, "male", 2000),
    (3, "female", 2000),
    (4, "male", 2100),
    (5, "female", 2100),
    (6, "male", 2200),
    (7, "female", 2200),
    (8, "male", 2300),
    (9, "female", 2300),
]

NOT_PROVINCE_CODES = ["000", "003", "005", "050", "053", "063", "065", "097", "099", "100", "999"]

MALFORMED_IDS = [
    "",
    "05219001234",  # 11 digits
    "0521900123456",  # 13 digits
    "052190012345\n",  # "$" alone would let a trailing newline through
    " 052190012345",
    "052 190 012345",
    "052-190-012345",
    "05219001234a",
    "０５２１９００１２３４５",  # full-width digits
    "٠٥٢١٩٠٠١٢٣٤٥",  # Arabic-Indic digits
    "۰۵۲۱۹۰۰۱۲۳۴۵",  # Extended Arabic-Indic (Persian) digits
    "०५२१९००१२३४५",  # Devanagari digits
    "05219001234٥",  # one non-ASCII digit at the end
    "05219001234²",  # superscript two: str.isdigit() says yes
]


@pytest.mark.parametrize(("digit", "sex", "century_start"), LEGAL_DIGIT_TABLE)
def test_digit_four_gives_sex_and_century(digit: int, sex: Sex, century_start: int) -> None:
    pid = parse_personal_id(f"052{digit}85123456")
    assert pid.sex == sex
    assert pid.century_start == century_start
    assert pid.birth_year == century_start + 85


@pytest.mark.parametrize(("digit", "sex", "century_start"), LEGAL_DIGIT_TABLE)
def test_sex_century_digit_follows_the_legal_table(digit: int, sex: Sex, century_start: int) -> None:
    assert sex_century_digit(sex, century_start) == digit
    assert sex_century_digit(sex, century_start + 99) == digit


def test_even_digit_is_male_and_odd_is_female() -> None:
    # Public code gets this backwards; the legal table is the authority.
    assert parse_personal_id("001085000001").sex == "male"
    assert parse_personal_id("001185000001").sex == "female"


def test_parse_splits_every_part() -> None:
    pid = parse_personal_id("052190012345")
    assert pid == PersonalId(
        number="052190012345",
        province_code="052",
        sex="female",
        century_start=1900,
        birth_year=1990,
        serial="012345",
    )


@pytest.mark.parametrize(
    ("number", "province_code", "sex", "birth_year"),
    [
        ("064203000000", "064", "male", 2003),
        ("079099999999", "079", "male", 1999),
        ("001300000001", "001", "female", 2000),
        ("096999123456", "096", "female", 2399),
        ("048800000000", "048", "male", 2300),
    ],
)
def test_parse_examples(number: str, province_code: str, sex: Sex, birth_year: int) -> None:
    pid = parse_personal_id(number)
    assert (pid.province_code, pid.sex, pid.birth_year) == (province_code, sex, birth_year)


def test_repr_keeps_the_number_out_of_logs() -> None:
    pid = parse_personal_id("052190012345")
    assert "052190012345" not in repr(pid)
    assert "012345" not in repr(pid)


@pytest.mark.parametrize("code", sorted(LEGACY_PROVINCES))
def test_every_legacy_province_code_is_accepted(code: str) -> None:
    assert is_valid_personal_id(f"{code}190123456")
    assert parse_personal_id(f"{code}290123456").province_code == code


@pytest.mark.parametrize("code", NOT_PROVINCE_CODES)
def test_a_prefix_outside_the_63_codes_is_rejected_as_province(code: str) -> None:
    number = f"{code}190123456"
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(number)
    assert caught.value.reason == "province"
    assert number not in str(caught.value)
    assert not is_valid_personal_id(number)


@pytest.mark.parametrize("value", MALFORMED_IDS)
def test_malformed_ids_are_rejected_as_format(value: str) -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(value)
    assert caught.value.reason == "format"
    assert not is_valid_personal_id(value)


@pytest.mark.parametrize("value", [*MALFORMED_IDS[1:], "050190012345", "999912345678"])
def test_the_error_message_never_contains_the_id(value: str) -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(value)
    for text in (str(caught.value), repr(caught.value), *map(str, caught.value.args)):
        assert value.strip() not in text
        assert value[-6:] not in text


def test_a_non_string_is_rejected_as_format() -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(cast(str, 52190012345))
    assert caught.value.reason == "format"


def test_invalid_personal_id_is_a_value_error() -> None:
    assert issubclass(InvalidPersonalId, ValueError)


@pytest.mark.parametrize(("sex", "birth_year"), [("male", 1899), ("female", 2400), ("male", 0)])
def test_sex_century_digit_rejects_years_outside_the_table(sex: Sex, birth_year: int) -> None:
    with pytest.raises(ValueError, match="birth year"):
        sex_century_digit(sex, birth_year)


def test_sex_century_digit_rejects_other_sex_values() -> None:
    with pytest.raises(ValueError, match="sex"):
        sex_century_digit(cast(Sex, "Nam"), 1990)


def test_make_personal_id_examples() -> None:
    assert make_personal_id("052", "male", 1990, 12345) == "052090012345"
    assert make_personal_id("064", "female", 2005, 0) == "064305000000"
    assert make_personal_id("079", "female", 2399, 999_999) == "079999999999"


def test_make_personal_id_rejects_codes_outside_the_63() -> None:
    for code in ["050", "52", "0052", "٠٥٢"]:
        with pytest.raises(UnknownProvince):
            make_personal_id(code, "male", 1990, 1)


@pytest.mark.parametrize("serial", [-1, 1_000_000, True])
def test_make_personal_id_rejects_serials_outside_six_digits(serial: int) -> None:
    with pytest.raises(ValueError, match="serial"):
        make_personal_id("052", "male", 1990, serial)


def test_make_personal_id_rejects_years_outside_the_table() -> None:
    with pytest.raises(ValueError, match="birth year"):
        make_personal_id("052", "male", 2400, 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123456789", True),
        ("012345678", True),
        ("12345678", False),
        ("1234567890", False),
        ("123456789\n", False),
        ("12345678٩", False),
        ("１２３４５６７８９", False),
        ("12345678x", False),
    ],
)
def test_is_cmnd9(value: str, expected: bool) -> None:
    assert is_cmnd9(value) is expected


def test_id_contradicts_names_the_fields_the_structure_rules_out() -> None:
    pid = parse_personal_id("052190012345")  # female, born 1990
    assert id_contradicts(pid) == []
    assert id_contradicts(pid, sex="female", birth_year=1990) == []
    assert id_contradicts(pid, sex="male", birth_year=1990) == ["gender"]
    assert id_contradicts(pid, sex="female", birth_year=2090) == ["date_of_birth"]
    assert id_contradicts(pid, sex="male", birth_year=1991) == ["gender", "date_of_birth"]


def test_id_contradicts_reads_registry_sex_values() -> None:
    female = parse_personal_id("052190012345")
    male = parse_personal_id("052090012345")
    assert id_contradicts(female, sex="Nữ") == []
    assert id_contradicts(female, sex="Nu\u031b\u0303") == []  # NFD
    assert id_contradicts(male, sex="Nam") == []
    assert id_contradicts(male, sex="Nữ") == ["gender"]
    assert id_contradicts(male, sex="unknown") == ["gender"]


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from(sorted(LEGACY_PROVINCES)),
    sex=st.sampled_from(["male", "female"]),
    birth_year=st.integers(min_value=1900, max_value=2399),
    serial=st.integers(min_value=0, max_value=999_999),
)
def test_make_then_parse_round_trips(code: str, sex: Sex, birth_year: int, serial: int) -> None:
    number = make_personal_id(code, sex, birth_year, serial)
    assert len(number) == 12
    assert number.isascii()
    pid = parse_personal_id(number)
    assert pid == PersonalId(
        number=number,
        province_code=code,
        sex=sex,
        century_start=birth_year - birth_year % 100,
        birth_year=birth_year,
        serial=f"{serial:06d}",
    )
    assert id_contradicts(pid, sex=sex, birth_year=birth_year) == []


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=string.digits, min_size=12, max_size=12),
        st.text(min_size=12, max_size=12),
    )
)
def test_any_twelve_characters_are_rejected_or_parse_consistently(value: str) -> None:
    if not is_valid_personal_id(value):
        with pytest.raises(InvalidPersonalId) as caught:
            parse_personal_id(value)
        assert value not in str(caught.value)
        if value.isascii() and value.isdigit():
            assert caught.value.reason == "province"
            assert value[:3] not in LEGACY_PROVINCES
        else:
            assert caught.value.reason == "format"
        return
    pid = parse_personal_id(value)
    assert value.isascii()
    assert value.isdigit()
    assert pid.province_code == value[:3]
    assert pid.province_code in LEGACY_PROVINCES
    digit = int(value[3])
    assert pid.sex == ("male" if digit % 2 == 0 else "female")
    assert pid.century_start == 1900 + 100 * (digit // 2)
    assert pid.birth_year == pid.century_start + int(value[4:6])
    assert make_personal_id(pid.province_code, pid.sex, pid.birth_year, int(pid.serial)) == value
