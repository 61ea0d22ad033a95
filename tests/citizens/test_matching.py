"""Verification rules: partial dates, the three name tiers, the ID pre-check and the combined answer."""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Mapping
from typing import Any, get_args

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from app.citizens.matching import (
    DateResult,
    InvalidRecordValue,
    NameMatchMode,
    NameResult,
    PartialDate,
    Verification,
    VerifyRequest,
    match_date,
    match_name,
    precheck,
    precheck_verification,
    verify,
    verify_record,
)
from vnid import exact_key, folded_key, make_personal_id, nfc, normalized_key, parse_personal_id

MODES: tuple[NameMatchMode, ...] = get_args(NameMatchMode)


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


# --- dates -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "precision"),
    [
        ("1938", (1938, None, None), "year"),
        ("1938-05", (1938, 5, None), "month"),
        ("1938-05-02", (1938, 5, 2), "day"),
        ("2024-02-29", (2024, 2, 29), "day"),
        ("2000-02-29", (2000, 2, 29), "day"),
        ("0001-01-01", (1, 1, 1), "day"),
        ("9999-12", (9999, 12, None), "month"),
    ],
)
def test_partial_dates_parse_at_their_precision(
    text: str, parts: tuple[int, int | None, int | None], precision: str
) -> None:
    date = PartialDate.parse(text)
    assert (date.year, date.month, date.day) == parts
    assert date.precision == precision
    assert str(date) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "38",
        "938",
        "19380",
        "1938-5",
        "1938-05-2",
        "1938-1-02",
        "1938-00",
        "1938-13",
        "1938-05-00",
        "1938-05-32",
        "1938-02-30",
        "1900-02-29",
        "2023-02-29",
        "1938-04-31",
        "0000",
        "0000-01-01",
        "1938-05-02T00:00:00",
        "1938-05-02\n",
        " 1938",
        "1938/05/02",
        "02-05-1938",
        "1938--05",
        "1938-",
        "１９３８",  # full-width digits
        "١٩٣٨",  # Arabic-Indic digits
        "+1938",
    ],
)
def test_invalid_dates_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"^(a date is|not a calendar date)"):
        PartialDate.parse(text)


def test_date_errors_never_repeat_the_value() -> None:
    with pytest.raises(ValueError, match="calendar") as caught:
        PartialDate.parse("1938-02-30")
    assert "1938" not in str(caught.value)


def test_partial_dates_check_themselves() -> None:
    with pytest.raises(ValueError, match="a day needs a month"):
        PartialDate(1938, None, 2)
    with pytest.raises(ValueError, match="month must be"):
        PartialDate(1938, 13)
    assert PartialDate.from_date(dt.date(1938, 5, 2)) == PartialDate(1938, 5, 2)
    assert PartialDate(1938, 5, 2).truncated("year") == PartialDate(1938)
    assert PartialDate(1938, 5, 2).truncated("month") == PartialDate(1938, 5)
    with pytest.raises(ValueError, match="more precise"):
        PartialDate(1938).truncated("day")


@pytest.mark.parametrize(
    ("claimed", "recorded", "expected"),
    [
        # the record holds only a year (or a month): compared, and reported, at that precision
        ("1938-05-02", "1938", DateResult("match", "year")),
        ("1938-12-31", "1938", DateResult("match", "year")),
        ("1938-05", "1938", DateResult("match", "year")),
        ("1939-01-01", "1938", DateResult("mismatch", "year")),
        ("1938-05-17", "1938-05", DateResult("match", "month")),
        ("1938-06-17", "1938-05", DateResult("mismatch", "month")),
        ("1937-05-17", "1938-05", DateResult("mismatch", "month")),
        # the input is the coarser one
        ("1938", "1938-05-02", DateResult("match", "year")),
        ("1937", "1938-05-02", DateResult("mismatch", "year")),
        ("1938-05", "1938-05-02", DateResult("match", "month")),
        ("1938-04", "1938-05-02", DateResult("mismatch", "month")),
        # both to the day
        ("1938-05-02", "1938-05-02", DateResult("match", "day")),
        ("1938-05-03", "1938-05-02", DateResult("mismatch", "day")),
        ("1938-06-02", "1938-05-02", DateResult("mismatch", "day")),
        ("1838-05-02", "1938-05-02", DateResult("mismatch", "day")),
    ],
)
def test_dates_are_compared_at_the_coarser_precision(
    claimed: str, recorded: str, expected: DateResult
) -> None:
    assert match_date(claimed, recorded) == expected
    assert match_date(recorded, claimed) == expected  # symmetric
    assert match_date(PartialDate.parse(claimed), PartialDate.parse(recorded)) == expected


def test_match_date_rejects_invalid_dates() -> None:
    with pytest.raises(ValueError, match="calendar"):
        match_date("1938-02-30", "1938")
    with pytest.raises(ValueError, match="YYYY"):
        match_date("1938", "05/1938")


partial_dates = st.builds(
    lambda day, precision: PartialDate(
        day.year, *[(None, None), (day.month, None), (day.month, day.day)][precision]
    ),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)),
    st.integers(min_value=0, max_value=2),
)


@settings(max_examples=300, deadline=None)
@given(partial_dates, partial_dates)
def test_date_match_agrees_with_truncation(a: PartialDate, b: PartialDate) -> None:
    result = match_date(str(a), str(b))
    assert PartialDate.parse(str(a)) == a
    assert result.precision == min((a.precision, b.precision), key=["year", "month", "day"].index)
    assert (result.result == "match") == (a.truncated(result.precision) == b.truncated(result.precision))


# --- names -----------------------------------------------------------------------------------------------


def tiers(claimed: str, recorded: str, threshold: int = 90) -> dict[str, NameResult]:
    return {mode: match_name(claimed, recorded, mode, threshold) for mode in MODES}


def test_nfd_input_matches_an_nfc_record_exactly() -> None:
    recorded = "Nguyễn Thị Hoà"
    claimed = nfd(recorded)
    assert claimed != recorded
    for mode in MODES:
        assert match_name(claimed, recorded, mode) == NameResult("match", "exact", 100)
        assert match_name(recorded, claimed, mode) == NameResult("match", "exact", 100)


@pytest.mark.parametrize(
    ("claimed", "recorded"),
    [
        ("  nguyễn   văn\tAN ", "Nguyễn Văn An"),
        ("NGUYỄN VĂN AN", "Nguyễn Văn An"),
        ("nguyễn\u00a0văn\nan", "Nguyễn Văn An"),
        ("ĐẶNG THỊ HƯƠNG", "Đặng Thị Hương"),
    ],
)
def test_case_and_whitespace_are_exact(claimed: str, recorded: str) -> None:
    for mode in MODES:
        assert match_name(claimed, recorded, mode) == NameResult("match", "exact", 100)


@pytest.mark.parametrize(
    ("claimed", "recorded"),
    [
        ("Nguyễn Thị Hòa", "Nguyễn Thị Hoà"),  # tone placement: old vs new style
        ("Lê Văn Khỏe", "Lê Văn Khoẻ"),
        ("Trần Thị Thủy", "Trần Thị Thuỷ"),
        ("Ðặng Văn Ðức", "Đặng Văn Đức"),  # Ð U+00D0, the Icelandic eth capital
        ("Ɖặng Văn Ɖức", "Đặng Văn Đức"),  # Ɖ U+0189, the African D
        ("ðặng văn ɖức", "Đặng Văn Đức"),
        ("H’Hen Niê", "H'Hen Niê"),  # typographic vs ASCII apostrophe
        ("Hʼ Hen Niê", "H' Hen Niê"),
        ("h’hen niê", "H'Hen Niê"),  # with a case difference on top
        (nfd("Trần Thị Thủy"), "Trần Thị Thuỷ"),
    ],
)
def test_normalized_variants_match_from_the_normalized_tier_up(claimed: str, recorded: str) -> None:
    assert exact_key(claimed) != exact_key(recorded)
    results = tiers(claimed, recorded)
    assert results["exact"] == NameResult("mismatch", "exact", 100)  # the folded forms are equal
    assert results["normalized"] == NameResult("match", "normalized", 100)
    assert results["fuzzy"] == NameResult("match", "normalized", 100)  # the strictest tier that matched
    assert match_name(recorded, claimed, "normalized") == NameResult("match", "normalized", 100)


def test_tone_placement_is_spelled_with_different_code_points() -> None:
    for old, new in [("hòa", "hoà"), ("Khỏe", "Khoẻ"), ("Thủy", "Thuỷ")]:
        assert nfc(old) != nfc(new)
        assert match_name(old, new, "exact").result == "mismatch"
        assert match_name(old, new, "normalized").tier == "normalized"


def test_diacritic_free_input_matches_only_in_fuzzy() -> None:
    results = tiers("Nguyen Van An", "Nguyễn Văn An")
    assert results["exact"] == NameResult("mismatch", "exact", 100)
    assert results["normalized"] == NameResult("mismatch", "normalized", 100)
    assert results["fuzzy"] == NameResult("match", "fuzzy", 100)


def test_fuzzy_absorbs_a_typo_and_reports_the_floored_ratio() -> None:
    claimed, recorded = "Nguyen Van Anh", "Nguyễn Văn An"
    ratio = fuzz.ratio(folded_key(claimed), folded_key(recorded))
    assert 96 < ratio < 97
    assert match_name(claimed, recorded, "fuzzy") == NameResult("match", "fuzzy", 96)
    assert match_name(claimed, recorded, "normalized") == NameResult("mismatch", "normalized", 96)


def test_i_and_y_spellings_meet_only_in_fuzzy() -> None:
    results = tiers("Nguyễn Thị Mĩ", "Nguyễn Thị Mỹ")
    assert results["normalized"].result == "mismatch"
    assert results["fuzzy"].tier == "fuzzy"
    assert results["fuzzy"].result == "match"


@pytest.mark.parametrize(
    ("claimed", "recorded"),
    [
        ("An Văn Nguyễn", "Nguyễn Văn An"),
        ("Văn An Nguyễn", "Nguyễn Văn An"),
        ("An Nguyen Van", "Nguyễn Văn An"),
        ("Niê H'Hen", "H'Hen Niê"),
        ("Hoa Thi Nguyen", "Nguyễn Thị Hoà"),
        ("Nguyễn Văn An", "An Văn Nguyễn"),
    ],
)
def test_swapped_word_order_never_matches_in_any_tier(claimed: str, recorded: str) -> None:
    for mode, result in tiers(claimed, recorded).items():
        assert result.result == "mismatch", mode
        assert result.tier == mode
        assert result.score < 90


def test_no_token_sorting_scorer_is_used() -> None:
    # A token-sort or token-set scorer would call these identical.
    assert fuzz.token_sort_ratio("an van nguyen", "nguyen van an") == 100
    assert match_name("An Văn Nguyễn", "Nguyễn Văn An", "fuzzy").score == round(
        fuzz.ratio("an van nguyen", "nguyen van an") - 0.5
    )


@pytest.mark.parametrize(
    ("claimed", "recorded", "score"),
    [
        ("Le Van Hai", "Lê Văn Hau", 90),  # 2 edits over 20 characters: exactly 90
        ("Le Van Hai", "Lê Văn Hà", 94),  # 18/19 = 94.7…, floored
        ("An", "Tuong Vy", 20),  # rapidfuzz says 19.999999999999996 for an exact 20
    ],
)
def test_threshold_boundaries(claimed: str, recorded: str, score: int) -> None:
    assert math.floor(fuzz.ratio(folded_key(claimed), folded_key(recorded)) + 1e-6) == score
    at = match_name(claimed, recorded, "fuzzy", threshold=score)
    assert at == NameResult("match", "fuzzy", score)  # score == threshold matches
    above = match_name(claimed, recorded, "fuzzy", threshold=score + 1)
    assert above == NameResult("mismatch", "fuzzy", score)
    assert match_name(claimed, recorded, "fuzzy", threshold=1).result == "match"


def test_rapidfuzz_float_noise_is_snapped() -> None:
    assert fuzz.ratio("an", "tuong vy") < 20  # the reason for the snap
    assert match_name("An", "Tuong Vy", "fuzzy", threshold=20).score == 20


@pytest.mark.parametrize("threshold", [0, 101, -5, True, 90.0])
def test_threshold_must_be_an_integer_in_1_to_100(threshold: Any) -> None:
    with pytest.raises(ValueError, match="threshold"):
        match_name("Nguyễn Văn An", "Nguyễn Văn An", "fuzzy", threshold)


def test_unknown_mode_and_empty_names_are_rejected() -> None:
    bad_mode: Any = "token_set"
    with pytest.raises(ValueError, match="name_match"):
        match_name("Nguyễn Văn An", "Nguyễn Văn An", bad_mode)
    for empty in ("", "   ", "\t\n"):
        with pytest.raises(ValueError, match="empty"):
            match_name(empty, "Nguyễn Văn An", "fuzzy")
        with pytest.raises(ValueError, match="empty"):
            match_name("Nguyễn Văn An", empty, "fuzzy")


def test_the_default_mode_is_normalized_at_90() -> None:
    assert match_name("Nguyễn Thị Hòa", "Nguyễn Thị Hoà").tier == "normalized"
    assert match_name("Nguyen Van An", "Nguyễn Văn An") == NameResult("mismatch", "normalized", 100)


TONES = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
ONSETS = ["", "b", "ch", "đ", "Đ", "Ð", "g", "gi", "h", "kh", "ng", "nh", "qu", "th", "tr", "v", "H'", "H’"]
NUCLEI = [
    "a",
    "ă",
    "â",
    "e",
    "ê",
    "i",
    "o",
    "ô",
    "ơ",
    "u",
    "ư",
    "y",
    "oa",
    "oe",
    "uy",
    "ươ",
    "iê",
    "uyê",
    "ai",
]
CODAS = ["", "c", "ch", "m", "n", "ng", "nh", "p", "t"]


def word(onset: str, nucleus: str, coda: str, tone: str, toned_at: int, upper: bool, decompose: bool) -> str:
    at = min(toned_at, len(nucleus) - 1)
    text = nfc(onset + nucleus[: at + 1] + tone + nucleus[at + 1 :] + coda)
    text = text.capitalize() if upper else text
    return nfd(text) if decompose else text


words = st.builds(
    word,
    st.sampled_from(ONSETS),
    st.sampled_from(NUCLEI),
    st.sampled_from(CODAS),
    st.sampled_from(TONES),
    st.integers(min_value=0, max_value=2),
    st.booleans(),
    st.booleans(),
)
word_lists = st.lists(words, min_size=2, max_size=5)


def key_words(key: Any, ws: list[str]) -> list[str]:
    return [key(w) for w in ws]


@settings(max_examples=300, deadline=None)
@given(word_lists, st.integers(min_value=1, max_value=100))
def test_reversed_names_do_not_match(ws: list[str], threshold: int) -> None:
    assume(len({normalized_key(w) for w in ws}) >= 2)
    name, reversed_name = " ".join(ws), " ".join(reversed(ws))
    exact_words, normalized_words = key_words(exact_key, ws), key_words(normalized_key, ws)

    exact = match_name(reversed_name, name, "exact", threshold)
    assert exact.result == ("match" if exact_words == exact_words[::-1] else "mismatch")
    normalized = match_name(reversed_name, name, "normalized", threshold)
    if normalized_words != normalized_words[::-1]:  # two distinct words are not a palindrome
        assert exact.result == normalized.result == "mismatch"
        assert normalized.tier == "normalized"

    fuzzy = match_name(reversed_name, name, "fuzzy", threshold)
    ratio = fuzz.ratio(folded_key(reversed_name), folded_key(name))
    if ratio < threshold - 1e-6:
        assert fuzzy == NameResult("mismatch", "fuzzy", fuzzy.score)
    if fuzzy.tier == "fuzzy":  # neither exact nor normalized: the score is rapidfuzz's ratio, floored
        assert fuzzy.score == math.floor(ratio + 1e-6)
        assert (fuzzy.result == "match") == (ratio >= threshold - 1e-6)


@settings(max_examples=300, deadline=None)
@given(word_lists, word_lists, st.sampled_from(MODES), st.integers(min_value=1, max_value=100))
def test_name_results_are_consistent(a: list[str], b: list[str], mode: NameMatchMode, threshold: int) -> None:
    claimed, recorded = " ".join(a), " ".join(b)
    result = match_name(claimed, recorded, mode, threshold)
    assert 0 <= result.score <= 100
    assert isinstance(result.score, int)
    assert MODES.index(result.tier) <= MODES.index(mode)
    if result.result == "mismatch":
        assert result.tier == mode
    if result.tier in ("exact", "normalized") and result.result == "match":
        assert result.score == 100
    assert (result.result == "match" and result.tier == "exact") == (
        exact_key(claimed) == exact_key(recorded)
    )
    if mode == "fuzzy":
        assert (result.result == "match") == (result.score >= threshold)
    # NFD input never changes the answer
    assert match_name(nfd(claimed), recorded, mode, threshold) == result


# --- pre-check -------------------------------------------------------------------------------------------

CENTURIES = [1900, 2000, 2100, 2200, 2300]


@pytest.mark.parametrize("digit", range(10))
@pytest.mark.parametrize("claimed_sex", ["male", "female"])
@pytest.mark.parametrize("claimed_century", CENTURIES)
def test_precheck_for_every_sex_and_century_digit(digit: int, claimed_sex: str, claimed_century: int) -> None:
    pid = parse_personal_id(f"052{digit}68000108")
    id_sex = "male" if digit % 2 == 0 else "female"
    id_century = 1900 + 100 * (digit // 2)
    assert (pid.sex, pid.birth_year) == (id_sex, id_century + 68)

    claimed_year = claimed_century + 68
    expected = []
    if claimed_sex != id_sex:
        expected.append("gender")
    if claimed_century != id_century:
        expected.append("date_of_birth")
    for dob in (f"{claimed_year}", f"{claimed_year}-05", f"{claimed_year}-05-02"):
        assert precheck(pid, gender=claimed_sex, date_of_birth=dob) == expected
    assert precheck(pid, gender=claimed_sex, date_of_birth=None) == (
        ["gender"] if claimed_sex != id_sex else []
    )
    assert precheck(pid, gender=None, date_of_birth=f"{claimed_year}") == (
        ["date_of_birth"] if claimed_century != id_century else []
    )
    # the same century but another year (digits 5–6) contradicts too
    assert precheck(pid, gender=None, date_of_birth=f"{id_century + 69}-01-01") == ["date_of_birth"]
    assert precheck(pid, gender=None, date_of_birth=None) == []


def test_precheck_rejects_malformed_input() -> None:
    pid = parse_personal_id("052068000108")
    with pytest.raises(ValueError, match="calendar"):
        precheck(pid, gender=None, date_of_birth="1968-02-30")
    with pytest.raises(ValueError, match="gender"):
        precheck(pid, gender="Nam", date_of_birth=None)


def test_precheck_verification_reports_the_checked_fields() -> None:
    pid = parse_personal_id(make_personal_id("052", "female", 1968, 108))
    both_wrong = VerifyRequest(full_name="Nguyễn Văn An", date_of_birth="2068-05-02", gender="male")
    assert precheck_verification(pid, both_wrong) == Verification(
        match=False,
        reason="mismatch",
        fields={
            "full_name": {"result": "not_checked"},
            "date_of_birth": {"result": "mismatch", "precision": "year"},
            "gender": {"result": "mismatch"},
        },
    )
    wrong_sex = VerifyRequest(date_of_birth="1968-05-02", gender="male")
    answer = precheck_verification(pid, wrong_sex)
    assert answer is not None
    assert answer.fields == {
        "full_name": {"result": "not_checked"},
        "date_of_birth": {"result": "match", "precision": "year"},
        "gender": {"result": "mismatch"},
    }
    wrong_year = VerifyRequest(full_name="Nguyễn Thị Hoà", date_of_birth="1969")
    answer = precheck_verification(pid, wrong_year)
    assert answer is not None
    assert answer.fields == {
        "full_name": {"result": "not_checked"},
        "date_of_birth": {"result": "mismatch", "precision": "year"},
        "gender": {"result": "not_checked"},
    }
    consistent = VerifyRequest(full_name="Nguyễn Văn An", date_of_birth="1968-05-02", gender="female")
    assert precheck_verification(pid, consistent) is None
    assert precheck_verification(pid, VerifyRequest(full_name="Nguyễn Văn An")) is None


# --- verify ----------------------------------------------------------------------------------------------

RECORD: dict[str, object] = {
    "personal_id": "052168000108",
    "full_name": "Nguyễn Thị Hoà",
    "date_of_birth": "1968-05-02",
    "gender": "female",
    "date_of_death": None,
    "current_address": {"province_code": "52"},
}


def test_verify_all_fields_match() -> None:
    request = VerifyRequest(full_name="nguyễn thị hòa", date_of_birth="1968-05-02", gender="female")
    assert verify(RECORD, request) == Verification(
        match=True,
        reason=None,
        fields={
            "full_name": {"result": "match", "tier": "normalized", "score": 100},
            "date_of_birth": {"result": "match", "precision": "day"},
            "gender": {"result": "match"},
        },
    )


def test_verify_fields_not_supplied_are_not_checked() -> None:
    answer = verify(RECORD, VerifyRequest(date_of_birth="1968"))
    assert answer == Verification(
        match=True,
        reason=None,
        fields={
            "full_name": {"result": "not_checked"},
            "date_of_birth": {"result": "match", "precision": "year"},
            "gender": {"result": "not_checked"},
        },
    )


def test_verify_one_mismatch_is_a_mismatch() -> None:
    answer = verify(RECORD, VerifyRequest(full_name="Nguyễn Thị Hoà", gender="male"))
    assert (answer.match, answer.reason) == (False, "mismatch")
    assert answer.fields["full_name"] == {"result": "match", "tier": "exact", "score": 100}
    assert answer.fields["gender"] == {"result": "mismatch"}

    answer = verify(RECORD, VerifyRequest(full_name="Nguyen Thi Hoa", name_match="exact"))
    assert answer.reason == "mismatch"
    assert answer.fields["full_name"] == {"result": "mismatch", "tier": "exact", "score": 100}


def test_verify_passes_mode_and_threshold_on() -> None:
    fuzzy = VerifyRequest(full_name="Nguyen Thi Hoa", name_match="fuzzy", threshold=100)
    assert verify(RECORD, fuzzy).fields["full_name"] == {"result": "match", "tier": "fuzzy", "score": 100}
    typo = VerifyRequest(full_name="Nguyen Thi Hoan", name_match="fuzzy", threshold=96)
    answer = verify(RECORD, typo)
    assert answer.fields["full_name"] == {"result": "match", "tier": "fuzzy", "score": 96}
    answer = verify(RECORD, VerifyRequest(full_name="Nguyen Thi Hoan", name_match="fuzzy", threshold=97))
    assert (answer.match, answer.fields["full_name"]["result"]) == (False, "mismatch")


def test_verify_partial_record_dates() -> None:
    year_only = {**RECORD, "date_of_birth": "1938"}
    answer = verify(year_only, VerifyRequest(date_of_birth="1938-05-02"))
    assert answer.match
    assert answer.fields["date_of_birth"] == {"result": "match", "precision": "year"}
    month_only = {**RECORD, "date_of_birth": "1938-05"}
    answer = verify(month_only, VerifyRequest(date_of_birth="1938-06-02"))
    assert (answer.match, answer.reason) == (False, "mismatch")
    assert answer.fields["date_of_birth"] == {"result": "mismatch", "precision": "month"}
    as_date = {**RECORD, "date_of_birth": dt.date(1968, 5, 2)}
    assert verify(as_date, VerifyRequest(date_of_birth="1968-05-02")).fields["date_of_birth"] == {
        "result": "match",
        "precision": "day",
    }


def test_verify_a_field_missing_from_the_record_is_not_on_record() -> None:
    bare: dict[str, object] = {"full_name": "Nguyễn Thị Hoà", "date_of_birth": "", "gender": None}
    request = VerifyRequest(full_name="Nguyễn Thị Hoà", date_of_birth="1968", gender="female")
    assert verify(bare, request) == Verification(
        match=False,
        reason="mismatch",
        fields={
            "full_name": {"result": "match", "tier": "exact", "score": 100},
            "date_of_birth": {"result": "not_on_record"},
            "gender": {"result": "not_on_record"},
        },
    )
    nameless = verify({"gender": "female"}, VerifyRequest(full_name="Nguyễn Thị Hoà"))
    assert nameless.fields["full_name"] == {"result": "not_on_record"}
    # not supplied wins over not on record: nothing was compared
    answer = verify({"gender": "female"}, VerifyRequest(gender="female"))
    assert answer.match
    assert answer.fields["full_name"] == answer.fields["date_of_birth"] == {"result": "not_checked"}


def test_verify_deceased_is_never_a_match_and_keeps_the_detail() -> None:
    dead = {**RECORD, "date_of_death": "2020-01-15"}
    matching = VerifyRequest(full_name="Nguyễn Thị Hoà", date_of_birth="1968-05-02", gender="female")
    assert verify(dead, matching) == Verification(
        match=False,
        reason="deceased",
        fields={
            "full_name": {"result": "match", "tier": "exact", "score": 100},
            "date_of_birth": {"result": "match", "precision": "day"},
            "gender": {"result": "match"},
        },
    )
    wrong = verify(dead, VerifyRequest(gender="male"))
    assert (wrong.match, wrong.reason, wrong.fields["gender"]) == (False, "deceased", {"result": "mismatch"})
    partial_death = verify({**RECORD, "date_of_death": "2020"}, VerifyRequest(gender="female"))
    assert partial_death.reason == "deceased"


def test_verify_record_answers_not_found_for_no_record() -> None:
    request = VerifyRequest(full_name="Nguyễn Thị Hoà", gender="female")
    assert verify_record(None, request) == Verification(
        match=False,
        reason="not_found",
        fields={
            "full_name": {"result": "not_checked"},
            "date_of_birth": {"result": "not_checked"},
            "gender": {"result": "not_checked"},
        },
    )
    assert verify_record(RECORD, request) == verify(RECORD, request)
    with pytest.raises(ValueError, match="at least one"):
        verify_record(None, VerifyRequest())


def test_verify_rejects_bad_requests() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify(RECORD, VerifyRequest())
    with pytest.raises(ValueError, match="calendar"):
        verify(RECORD, VerifyRequest(date_of_birth="1968-02-30"))
    with pytest.raises(ValueError, match="gender"):
        verify(RECORD, VerifyRequest(gender="Nữ"))
    with pytest.raises(ValueError, match="threshold"):
        verify(RECORD, VerifyRequest(full_name="Nguyễn Thị Hoà", threshold=0))


@pytest.mark.parametrize(
    ("field", "value", "request_"),
    [
        ("date_of_birth", "02/05/1968", VerifyRequest(date_of_birth="1968")),
        ("date_of_birth", 1968, VerifyRequest(date_of_birth="1968")),
        ("date_of_birth", dt.datetime(1968, 5, 2, tzinfo=dt.UTC), VerifyRequest(date_of_birth="1968")),
        ("gender", "Nữ", VerifyRequest(gender="female")),
        ("gender", 1, VerifyRequest(gender="female")),
        ("full_name", ["Nguyễn", "Thị", "Hoà"], VerifyRequest(full_name="Nguyễn Thị Hoà")),
    ],
)
def test_verify_malformed_record_values(field: str, value: object, request_: VerifyRequest) -> None:
    with pytest.raises(InvalidRecordValue, match=field) as caught:
        verify({**RECORD, field: value}, request_)
    assert caught.value.field == field
    assert str(value) not in str(caught.value)


def test_verification_enforces_the_reason_invariant() -> None:
    fields: Any = {"full_name": {"result": "not_checked"}}
    with pytest.raises(ValueError, match="reason"):
        Verification(match=True, reason="deceased", fields=fields)
    with pytest.raises(ValueError, match="reason"):
        Verification(match=False, reason=None, fields=fields)


class DuckRequest:
    """A request shaped like the route's model, with None for the defaults."""

    def __init__(self, full_name: str | None) -> None:
        self.full_name = full_name
        self.date_of_birth: str | None = None
        self.gender: str | None = None
        self.name_match: NameMatchMode | None = None
        self.threshold: int | None = None


def test_verify_accepts_any_request_shaped_object_with_api_defaults() -> None:
    answer = verify(RECORD, DuckRequest("Nguyễn Thị Hòa"))
    assert answer.fields["full_name"] == {"result": "match", "tier": "normalized", "score": 100}
    assert verify(RECORD, DuckRequest("Nguyen Thi Hoa")).fields["full_name"]["tier"] == "normalized"


NAMES = ["Nguyễn Thị Hoà", "Nguyễn Thị Hòa", "Nguyen Thi Hoa", "Hoà Thị Nguyễn", "H'Hen Niê", "Trần Văn Bình"]
DATES = ["1968", "1968-05", "1968-05-02", "1969-05-02", "1968-06"]
optional = st.one_of(st.none(), st.just(""))
records = st.fixed_dictionaries(
    {
        "full_name": st.one_of(optional, st.sampled_from(NAMES)),
        "date_of_birth": st.one_of(optional, st.sampled_from(DATES)),
        "gender": st.one_of(optional, st.sampled_from(["male", "female"])),
        "date_of_death": st.one_of(optional, st.sampled_from(["2020", "2020-01-15"])),
    }
)
requests = st.builds(
    VerifyRequest,
    full_name=st.one_of(st.none(), st.sampled_from(NAMES)),
    date_of_birth=st.one_of(st.none(), st.sampled_from(DATES)),
    gender=st.one_of(st.none(), st.sampled_from(["male", "female"])),
    name_match=st.sampled_from(MODES),
    threshold=st.integers(min_value=1, max_value=100),
).filter(lambda r: (r.full_name, r.date_of_birth, r.gender) != (None, None, None))


@settings(max_examples=400, deadline=None)
@given(records, requests)
def test_match_is_false_exactly_when_there_is_a_reason(
    record: dict[str, object], request: VerifyRequest
) -> None:
    not_found = verify_record(None, request)
    assert (not_found.match, not_found.reason) == (False, "not_found")
    answer = verify_record(record, request)
    assert answer == verify(record, request)
    assert answer.match == (answer.reason is None)
    assert set(answer.fields) == {"full_name", "date_of_birth", "gender"}
    deceased = record["date_of_death"] not in (None, "")
    assert (answer.reason == "deceased") == deceased
    supplied = {
        "full_name": request.full_name is not None,
        "date_of_birth": request.date_of_birth is not None,
        "gender": request.gender is not None,
    }
    fields = answer.fields
    details: dict[str, Mapping[str, object]] = {
        "full_name": fields["full_name"],
        "date_of_birth": fields["date_of_birth"],
        "gender": fields["gender"],
    }
    results = {name: detail["result"] for name, detail in details.items()}
    for name, was_supplied in supplied.items():
        assert (results[name] == "not_checked") == (not was_supplied)
        if was_supplied:
            assert (results[name] == "not_on_record") == (record[name] in (None, ""))
    all_matched = all(results[name] == "match" for name, was in supplied.items() if was)
    assert answer.match == (all_matched and not deceased)
    if answer.reason == "mismatch":
        assert not all_matched
    compared_keys = {"full_name": {"tier", "score"}, "date_of_birth": {"precision"}, "gender": set()}
    for name, detail in details.items():
        compared = detail["result"] in ("match", "mismatch")
        assert set(detail) == {"result"} | (compared_keys[name] if compared else set())
