"""Name keys for the matching tiers: exact, normalized (tones, apostrophes, Đ) and folded."""

from __future__ import annotations

import unicodedata
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnid import ToneStyle, canonical_tones, exact_key, folded_key, nfc, normalized_key


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"
VOWELS = "aăâeêioôơuưy"
VIETNAMESE_LETTERS = sorted(
    {nfc(v + t) for v in VOWELS + VOWELS.upper() for t in ("", *TONE_MARKS)}
    | set("bcdđfghjklmnpqrstvwxzBCDĐFGHJKLMNPQRSTVWXZ")
)
# Vietnamese letters plus what real input mixes in (spacing, apostrophes, hyphens, Đ look-alikes, loose marks)
# and characters whose case folding or normalisation changes length (ﬁ, İ, ß, U+0345).
NAME_ALPHABET = st.sampled_from(
    [
        *VIETNAMESE_LETTERS,
        *(" ", "\t", "\u00a0", "'", "’", "ʼ", "`", "-", "Ð", "ð", "Ɖ", "ɖ", *TONE_MARKS),
        *("\u0302", "\u0306", "\u031b", "\u0345", "ﬁ", "İ", "ß", "Å", "1"),
    ]
)
vietnamese_text = st.text(alphabet=NAME_ALPHABET, max_size=24)
any_text = st.one_of(vietnamese_text, st.text(max_size=24))

ONSETS = ["", "ch", "đ", "g", "gi", "h", "kh", "ng", "ngh", "nh", "qu", "th", "tr", "x"]
NUCLEI = ["a", "o", "u", "y", "oa", "oe", "uy", "ai", "ao", "ua", "ia", "oai", "uyu", "ươ", "uyê", "iê", "ư"]
CODAS = ["", "c", "ch", "m", "n", "ng", "nh", "p", "t"]


def syllable(onset: str, nucleus: str, coda: str, tone: str, toned_at: int) -> str:
    """A syllable with its tone on any vowel, so right and wrong placements both occur."""
    return nfc(onset + nucleus[: toned_at + 1] + tone + nucleus[toned_at + 1 :] + coda)


syllables = st.builds(
    syllable,
    st.sampled_from(ONSETS),
    st.sampled_from(NUCLEI),
    st.sampled_from(CODAS),
    st.sampled_from(TONE_MARKS),
    st.integers(min_value=0, max_value=2),
)
syllable_names = st.lists(syllables, min_size=1, max_size=4).map(" ".join)

TONE_VARIANTS = [
    ("hòa", "hoà"),
    ("Hòa", "Hoà"),
    ("Khỏe", "Khoẻ"),
    ("Thủy", "Thuỷ"),
    ("Thụy", "Thuỵ"),
    ("Xòe", "Xoè"),
    ("Ủy", "Uỷ"),
    ("Nguyễn Thị Hòa", "Nguyễn Thị Hoà"),
    ("Lê Thị Thúy Hằng", "Lê Thị Thuý Hằng"),
]

# Syllables with one correct tone place: both styles agree and must leave them alone.
SINGLE_PLACEMENT = [
    "Hoàng",
    "Toàn",
    "Quyết",
    "Quý",
    "Quỳnh",
    "Giàu",
    "Nguyễn",
    "Người",
    "Huỳnh",
    "hoài",
    "Thoại",
    "khuỷu",
    "Thuở",
    "Huế",
    "Tuấn",
    "của",
    "mía",
    "giữ",
    "gìn",
    "già",
    "giũ",
    "Quốc",
    "Khuê",
    "Hoạch",
    "Trần Thị Ngọc Ánh",
]


@pytest.mark.parametrize(("old", "new"), TONE_VARIANTS)
def test_tone_placement_variants_meet_under_normalized_but_not_exact(old: str, new: str) -> None:
    assert exact_key(old) != exact_key(new)
    assert normalized_key(old) == normalized_key(new)
    assert folded_key(old) == folded_key(new)


@pytest.mark.parametrize(("old", "new"), TONE_VARIANTS)
def test_canonical_tones_writes_either_style(old: str, new: str) -> None:
    assert canonical_tones(old, "new") == new
    assert canonical_tones(new, "new") == new
    assert canonical_tones(new, "old") == old
    assert canonical_tones(old) == new  # new style is the default


@pytest.mark.parametrize("word", SINGLE_PLACEMENT)
@pytest.mark.parametrize("style", ["new", "old"])
def test_syllables_with_one_correct_tone_place_are_unchanged(word: str, style: ToneStyle) -> None:
    assert canonical_tones(word, style) == word
    assert normalized_key(word) == exact_key(word)


@pytest.mark.parametrize(
    ("misplaced", "correct"),
    [("Hòang", "Hoàng"), ("qúy", "quý"), ("gìa", "già"), ("Nguỹên", "Nguyễn"), ("hóai", "hoái")],
)
def test_a_misplaced_tone_is_moved_to_its_only_correct_place(misplaced: str, correct: str) -> None:
    assert canonical_tones(misplaced, "old") == correct
    assert normalized_key(misplaced) == normalized_key(correct)


NOT_ONE_SYLLABLE = ["José", "Müller", "Ksor", "H'Hen", "Ré́", "Björn", "Rơ Châm", "Kpă", "Siu", "ḿa"]


@pytest.mark.parametrize("word", NOT_ONE_SYLLABLE)
def test_words_that_are_not_one_vietnamese_syllable_are_unchanged(word: str) -> None:
    assert canonical_tones(word, "new") == nfc(word)
    assert canonical_tones(word, "old") == nfc(word)


def test_canonical_tones_keeps_case_and_spacing() -> None:
    assert canonical_tones("NGUYỄN  THỊ HÒA", "new") == "NGUYỄN  THỊ HOÀ"
    assert canonical_tones("  hoà\t", "old") == "  hòa\t"


def test_canonical_tones_returns_nfc_for_nfd_input() -> None:
    assert canonical_tones(nfd("Nguyễn Thị Hòa")) == "Nguyễn Thị Hoà"


def test_canonical_tones_rejects_an_unknown_style() -> None:
    with pytest.raises(ValueError, match="style"):
        canonical_tones("Hòa", cast(ToneStyle, "middle"))


def test_exact_key_folds_case_and_collapses_whitespace() -> None:
    assert exact_key("  NGUYỄN\u00a0 Văn\tAn \n") == "nguyễn văn an"
    assert exact_key("Đặng") == "đặng"


def test_exact_key_does_not_unify_tones_apostrophes_or_look_alikes() -> None:
    assert exact_key("Hòa") != exact_key("Hoà")
    assert exact_key("H'Hen") != exact_key("H’Hen")
    assert exact_key("Đặng") != exact_key("Ðặng")


@pytest.mark.parametrize("look_alike", ["Ðặng", "Ɖặng", "ðặng", "ɖặng"])
def test_d_look_alikes_read_as_d_with_stroke(look_alike: str) -> None:
    assert normalized_key(look_alike) == normalized_key("Đặng") == "đặng"
    assert folded_key(look_alike) == "dang"


@pytest.mark.parametrize("apostrophe", ["’", "‘", "ʼ", "`", "´", "′", "＇", "ʻ", "ꞌ"])
def test_apostrophe_variants_are_unified(apostrophe: str) -> None:
    assert normalized_key(f"H{apostrophe}Hen Niê") == normalized_key("H'Hen Niê") == "h'hen niê"


@pytest.mark.parametrize("name", ["Nguyễn Thị Hoà", "Đặng Văn Hòa", "H'Hen Niê", "Trần Quỳnh Như"])
def test_nfd_input_gives_the_same_keys(name: str) -> None:
    decomposed = nfd(name)
    assert decomposed != name
    assert exact_key(decomposed) == exact_key(name)
    assert normalized_key(decomposed) == normalized_key(name)
    assert folded_key(decomposed) == folded_key(name)


def test_folded_key_drops_diacritics_and_maps_d_with_stroke() -> None:
    assert folded_key("Nguyễn Thị Hoà") == "nguyen thi hoa"
    assert folded_key("Đặng Thị Hòa") == "dang thi hoa"
    assert folded_key("  Lê   Thị Thuỷ ") == "le thi thuy"


def test_name_order_matters_in_every_key() -> None:
    name, reversed_name = "Nguyễn Văn An", "An Văn Nguyễn"
    for key in (exact_key, normalized_key, folded_key):
        assert key(name) != key(reversed_name)


def test_i_and_y_stay_distinct() -> None:
    # Mỹ/Mĩ is a weak equivalence for the fuzzy tier, never a normalized match.
    assert normalized_key("Mỹ") != normalized_key("Mĩ")


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_exact_key_is_nfc_stable_and_collapsed(text: str) -> None:
    key = exact_key(text)
    assert unicodedata.is_normalized("NFC", key)
    assert exact_key(key) == key
    assert key == " ".join(key.split())
    assert exact_key(nfd(text)) == key


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_normalized_key_is_stable_and_depends_only_on_the_exact_key(text: str) -> None:
    key = normalized_key(text)
    assert unicodedata.is_normalized("NFC", key)
    assert normalized_key(key) == key
    assert normalized_key(exact_key(text)) == key
    assert normalized_key(nfd(text)) == key


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_folded_key_is_stable(text: str) -> None:
    key = folded_key(text)
    assert folded_key(key) == key
    assert folded_key(normalized_key(text)) == key
    assert folded_key(nfd(text)) == key
    assert not any(unicodedata.combining(c) for c in key)
    assert "đ" not in key


@settings(max_examples=400, deadline=None)
@given(st.one_of(any_text, syllable_names))
def test_both_tone_styles_give_the_same_normalized_key(text: str) -> None:
    old, new = canonical_tones(text, "old"), canonical_tones(text, "new")
    assert normalized_key(old) == normalized_key(new) == normalized_key(text)
    assert folded_key(old) == folded_key(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(any_text, syllable_names), st.sampled_from(["new", "old"]))
def test_canonical_tones_only_moves_tone_marks(text: str, style: ToneStyle) -> None:
    styled = canonical_tones(text, style)
    assert unicodedata.is_normalized("NFC", styled)
    assert canonical_tones(styled, style) == styled
    assert canonical_tones(canonical_tones(text, "old"), style) == canonical_tones(text, style)

    def without_tones(s: str) -> str:
        return nfc("".join(c for c in nfd(s) if c not in TONE_MARKS))

    def tone_marks(s: str) -> list[str]:
        return sorted(c for c in nfd(s) if c in TONE_MARKS)

    assert without_tones(styled) == without_tones(text)
    assert tone_marks(styled) == tone_marks(text)
