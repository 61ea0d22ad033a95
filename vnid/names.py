"""Comparison keys for Vietnamese names, one per matching tier of docs/contract.md, Verification.

* ``exact_key``: NFC, case folding, whitespace runs collapsed to one space.
* ``normalized_key``: also apostrophe variants unified to ``'``, Đ look-alikes (Ð, Ɖ) read as Đ, and tone
  marks moved to one canonical place, so "Hòa"/"Hoà", "Khỏe"/"Khoẻ", "Thủy"/"Thuỷ" meet.
* ``folded_key``: the normalized key without any diacritics and with đ → d; the fuzzy tier scores it.

Name order is kept in every key; none of them sorts or drops words. Stored values stay as recorded (NFC);
keys are for comparison only.

Tone placement (source: vietnamesetypography.com/tone-marks, cited as [S26] in the project's reference
notes). Only open syllables with the clusters ``oa``, ``oe``, ``uy`` are written two ways: old style marks the
first vowel (hòa, khỏe, thủy), new style the second (hoà, khoẻ, thuỷ). The canonical form here is the
**new style**. Every other syllable has one correct place, shared by both styles, and keeps it:

* a vowel with a shape mark carries the tone (ơ in ươ): Nguyễn, người, thuở, khuấy;
* in a closed syllable, the last vowel: Hoàng, Toàn, huỳnh, hoạch;
* in a three-vowel open cluster, the middle one: hoài, xoáy, khuỷu, ngoẹo;
* in the other two-vowel open clusters, the first: mía, múa, tài, hảo, túi;
* ``u`` after ``q`` and ``i`` after ``g`` belong to the initial consonant: Quý, quà, Quỳnh, giò, Giàu, gìn.

A misplaced tone in one of these (e.g. "Hòang", "qúy") is moved to its correct place, which only makes
more spellings of the same name meet. Words that do not parse as one Vietnamese syllable (foreign names,
letters outside the Vietnamese alphabet, several tone marks) are left as they are.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Final, Literal

__all__ = [
    "ToneStyle",
    "canonical_tones",
    "exact_key",
    "folded_key",
    "nfc",
    "normalized_key",
]

ToneStyle = Literal["new", "old"]

# Tone marks (dấu thanh) as NFD gives them: huyền, sắc, ngã, hỏi, nặng.
_TONE_MARKS: Final = frozenset("\u0300\u0301\u0303\u0309\u0323")
# Vowel-shape marks that make letters of their own: circumflex (â ê ô), breve (ă), horn (ơ ư).
_SHAPE_MARKS: Final = frozenset("\u0302\u0306\u031b")

_VOWELS: Final = frozenset("aăâeêioôơuưy")
_SHAPED_VOWELS: Final = frozenset("ăâêôơư")
# f, j, w, z occur in names of ethnic minorities and in loan words.
_CONSONANTS: Final = frozenset("bcdđfghjklmnpqrstvwxz")
_CODAS: Final = frozenset({"", "c", "ch", "m", "n", "ng", "nh", "p", "t"})
# In qu- and gi- the glide belongs to the initial consonant when another vowel follows (quý, già, giữ).
_ONSET_GLIDES: Final = frozenset({("q", "u"), ("g", "i")})

# Vowel clusters (after "qu"/"gi" are split off) and where the tone goes in them, as an index.
_SHAPED_NUCLEI: Final = frozenset(
    {"ă", "â", "ê", "ô", "ơ", "ư"}
    | {"iê", "yê", "uô", "ươ", "uâ", "uê", "uơ", "oă", "âu", "ây", "êu", "ôi", "ơi", "ưi", "ưu", "ưa"}
    | {"iêu", "yêu", "uôi", "ươi", "ươu", "uây", "uyê"}
)
_CLOSED_PLAIN_NUCLEI: Final = frozenset({"a", "e", "i", "o", "u", "y", "oa", "oe", "oo", "uy"})
# Open syllables without a shape mark: (new-style index, old-style index).
_OPEN_PLAIN_NUCLEI: Final[dict[str, tuple[int, int]]] = {
    **dict.fromkeys(("a", "e", "i", "o", "u", "y"), (0, 0)),
    **dict.fromkeys(("ai", "ao", "au", "ay", "eo", "ia", "iu", "oi", "ua", "ui"), (0, 0)),
    **dict.fromkeys(("oa", "oe", "uy"), (1, 0)),
    **dict.fromkeys(("oai", "oay", "oeo", "uya", "uyu"), (1, 1)),
}

_APOSTROPHE_VARIANTS: Final = (
    "\u2019\u2018\u201b\u02bc\u02bb\u02bd\u02b9\u0060\u00b4\u2032\u2035\uff07\uff40\u055a\ua78b\ua78c"
)
_NORMALIZED_TRANSLATION: Final = str.maketrans(
    {**dict.fromkeys(_APOSTROPHE_VARIANTS, "'"), **dict.fromkeys("\u00d0\u0189\u00f0\u0256", "đ")}
)
_ASCII_NORMALIZED_TRANSLATION: Final = str.maketrans({"`": "'"})
_FOLD_TRANSLATION: Final = str.maketrans({"đ": "d", "Đ": "D"})

# canonical_tones() keeps case and sees any run of letters as a word (apostrophe-like modifier letters split
# words: "KʼHòa" is two). normalized_key() works on folded case and only on runs of Vietnamese letters.
_LETTER_RUN: Final = re.compile(r"[^\W\d_\u02b9\u02bb\u02bc\u02bd\ua78b\ua78c]+")
_VIETNAMESE_LOWER_LETTERS: Final = "".join(sorted(_CONSONANTS)) + "".join(
    sorted({unicodedata.normalize("NFC", v + t) for v in _VOWELS for t in ("", *_TONE_MARKS)})
)
_VIETNAMESE_LOWER_RUN: Final = re.compile(f"[{_VIETNAMESE_LOWER_LETTERS}]+")


def nfc(s: str) -> str:
    """``s`` in Unicode NFC, the form every name is stored and compared in."""
    return unicodedata.normalize("NFC", s)


def exact_key(s: str) -> str:
    """NFC, case-folded, whitespace runs collapsed to one space and stripped."""
    # NFD before case folding: Unicode's canonical caseless match (D145), so NFD and NFC input agree.
    return " ".join(unicodedata.normalize("NFC", unicodedata.normalize("NFD", s).casefold()).split())


def normalized_key(s: str) -> str:
    """exact_key plus unified apostrophes, Đ look-alikes as đ and tones at the canonical (new-style) place."""
    return " ".join(map(_normalized_token, exact_key(s).split(" ")))


def folded_key(s: str) -> str:
    """normalized_key with every combining mark removed and đ → d: "Đặng Thị Hòa" → "dang thi hoa"."""
    folded = (_folded_token(_normalized_token(token)) for token in exact_key(s).split(" "))
    # A token that was only a stray mark folds to nothing; dropping it keeps single spaces.
    return " ".join(token for token in folded if token)


def canonical_tones(s: str, style: ToneStyle = "new") -> str:
    """``s`` in NFC with tone marks placed in the given style; case, spacing and everything else kept."""
    if style not in ("new", "old"):
        raise ValueError('style must be "new" or "old"')
    new_style = style == "new"
    # Splitting on " " alone is lossless; other whitespace stays inside tokens and ends letter runs there.
    return " ".join(_styled_token(token, new_style) for token in nfc(s).split(" "))


# Names run on the request hot path and reuse a small vocabulary of syllables, so results are cached per
# space-separated token (a name part, never a whole name).
_TOKEN_CACHE_SIZE: Final = 32_768


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _normalized_token(token: str) -> str:
    if token.isascii():
        return token.translate(_ASCII_NORMALIZED_TRANSLATION)
    return _retone_runs(token.translate(_NORMALIZED_TRANSLATION), _VIETNAMESE_LOWER_RUN, new_style=True)


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _folded_token(token: str) -> str:
    if token.isascii():
        return token
    bare = "".join(c for c in unicodedata.normalize("NFD", token) if not _is_mark(c))
    return unicodedata.normalize("NFC", bare.translate(_FOLD_TRANSLATION))


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _styled_token(token: str, new_style: bool) -> str:
    if token.isascii():
        return token
    return _retone_runs(token, _LETTER_RUN, new_style=new_style)


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _retone_runs(text: str, word_pattern: re.Pattern[str], *, new_style: bool) -> str:
    def retone_match(match: re.Match[str]) -> str:
        end = match.end()
        # A following combining mark could compose with a re-toned last letter into a different letter.
        if end < len(text) and _is_mark(text[end]):
            return match.group()
        return _retone_word(match.group(), new_style)

    return word_pattern.sub(retone_match, text)


def _retone_word(word: str, new_style: bool) -> str:
    """``word`` (NFC) with its tone at the canonical place; unchanged unless it is one Vietnamese syllable."""
    bases: list[str] = []
    shape_marks: list[str] = []
    tone_mark = ""
    toned_at = -1
    for char in unicodedata.normalize("NFD", word):
        if char in _TONE_MARKS:
            if tone_mark or not bases:
                return word
            tone_mark, toned_at = char, len(bases) - 1
        elif char in _SHAPE_MARKS:
            if not bases:
                return word
            shape_marks[-1] += char
        elif unicodedata.combining(char):
            return word
        else:
            bases.append(char)
            shape_marks.append("")
    if not tone_mark:
        return word

    letters = [
        unicodedata.normalize("NFC", base + marks).lower()
        for base, marks in zip(bases, shape_marks, strict=True)
    ]
    vowel_at = [i for i, letter in enumerate(letters) if letter in _VOWELS]
    if not vowel_at or toned_at not in vowel_at:
        return word
    first, last = vowel_at[0], vowel_at[-1]
    if last - first + 1 != len(vowel_at):
        return word  # two vowel groups: not one syllable
    if any(letter not in _CONSONANTS for letter in letters[:first]):
        return word
    coda = "".join(letters[last + 1 :])
    if coda not in _CODAS:
        return word

    onset = "".join(letters[:first])
    if last > first and (onset, letters[first]) in _ONSET_GLIDES:
        first += 1
    nucleus = "".join(letters[first : last + 1])

    if _SHAPED_VOWELS.intersection(nucleus):
        if nucleus not in _SHAPED_NUCLEI:
            return word
        target = first + max(i for i, letter in enumerate(nucleus) if letter in _SHAPED_VOWELS)
    elif coda:
        if nucleus not in _CLOSED_PLAIN_NUCLEI:
            return word
        target = last
    else:
        placement = _OPEN_PLAIN_NUCLEI.get(nucleus)
        if placement is None:
            return word
        target = first + placement[0 if new_style else 1]

    if target == toned_at:
        return word
    return unicodedata.normalize(
        "NFC",
        "".join(
            base + marks + (tone_mark if i == target else "")
            for i, (base, marks) in enumerate(zip(bases, shape_marks, strict=True))
        ),
    )
