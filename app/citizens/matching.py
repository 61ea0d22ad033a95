"""Identity verification rules for ``POST /v1/citizens/verify``: pure functions, no I/O.

The flow a route follows::

    pid = parse_personal_id(body.personal_id)          # InvalidPersonalId -> 422 invalid_personal_id
    early = precheck_verification(pid, body)           # the ID's own digits contradict the claim?
    if early is not None:
        return early                                   # mismatch, upstream never called
    record = await backend.get(pid.number)             # None: unknown or cancelled ID
    return verify_record(record.fields if record else None, body)   # verify() when a record is certain

Decisions (docs/contract.md, Verification, states their outcome for callers):

* **Name score.** ``score`` is 100 when the ``exact`` or ``normalized`` tier matched. Otherwise it is the
  ``rapidfuzz.fuzz.ratio`` of the folded keys **rounded down** to an integer, in every mode, on a mismatch
  too: with an integer threshold ``score >= threshold`` holds exactly when ``ratio >= threshold``, so the
  reported score never contradicts the result (round-half-even would show 90 for 89.6 and still say
  mismatch at threshold 90). The ratio is first snapped to the nearest integer when within 1e-6 of it,
  because rapidfuzz's float arithmetic gives 19.999999999999996 for an exact 20 (the true ratio is a
  fraction with a denominator of at most the two names' total length, so nothing else is that close).
  A ``fuzzy`` match can therefore have score 100 (the folded forms are equal, e.g. "Nguyen Van An" vs
  "Nguyễn Văn An"), and an ``exact``-mode mismatch can too ("Hòa" vs "Hoà").
* **Deceased.** A record with ``date_of_death`` answers ``match: false, reason: "deceased"`` whatever the
  fields say (it wins over ``mismatch``); the per-field detail is still computed, so a caller allowed to see
  it can tell whether the claim described that person.
* **Unverifiable fields.** A supplied field the record lacks is ``not_on_record`` and makes the answer
  ``match: false, reason: "mismatch"``: the attestation lists every supplied field as checked, so it must
  not certify one that could not be compared. A field that was not supplied is ``not_checked``, whatever
  the record holds. ``not_checked`` and ``not_on_record`` details carry only ``result``.
* **Not found.** Whether the resident exists is the caller's finding; ``verify_record(None, request)`` turns
  it into ``match: false, reason: "not_found"`` with every field ``not_checked`` (nothing was compared).
* **Bad values.** A malformed *input* value raises ``ValueError`` (request validation should have answered
  422 first). A malformed *record* value raises ``InvalidRecordValue`` (a ``ValueError``), which the caller
  maps to 502 ``upstream_bad_response``. No message repeats the value (no personal data in errors or logs).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, NotRequired, Protocol, TypedDict

from rapidfuzz import fuzz

from vnid.ids import PersonalId, id_contradicts
from vnid.names import exact_key, folded_key, normalized_key

__all__ = [
    "DEFAULT_NAME_MATCH",
    "DEFAULT_THRESHOLD",
    "DateOfBirthDetail",
    "DatePrecision",
    "DateResult",
    "FieldResult",
    "FullNameDetail",
    "GenderDetail",
    "InvalidRecordValue",
    "MatchResult",
    "NameMatchMode",
    "NameResult",
    "PartialDate",
    "Reason",
    "Verification",
    "VerificationFields",
    "VerifyQuery",
    "VerifyRequest",
    "match_date",
    "match_name",
    "precheck",
    "precheck_verification",
    "verify",
    "verify_record",
]

NameMatchMode = Literal["exact", "normalized", "fuzzy"]
DatePrecision = Literal["year", "month", "day"]
MatchResult = Literal["match", "mismatch"]
FieldResult = Literal["match", "mismatch", "not_on_record", "not_checked"]
Reason = Literal["not_found", "mismatch", "deceased"]  # only verify_record(None, ...) answers "not_found"

DEFAULT_NAME_MATCH: Final[NameMatchMode] = "normalized"
DEFAULT_THRESHOLD: Final = 90

_MODES: Final[frozenset[str]] = frozenset(("exact", "normalized", "fuzzy"))
_GENDERS: Final[frozenset[str]] = frozenset(("male", "female"))
# [0-9], never \d (which matches non-ASCII digits); used with fullmatch() so a trailing newline is refused.
_DATE_RE: Final = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_RANK: Final[dict[DatePrecision, int]] = {"year": 0, "month": 1, "day": 2}
# rapidfuzz's ratio is a fraction 100*k/n with n the two names' total length; float noise is ~1e-14.
_RATIO_SNAP: Final = 1e-6


class InvalidRecordValue(ValueError):
    """A value on the upstream record that cannot be compared; the message names the field, never the value."""

    def __init__(self, field: str) -> None:
        super().__init__(f"the record's {field} is malformed")
        self.field = field


# --- dates -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A date known to the year, the month or the day (old records often hold only a year)."""

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if self.day is not None and self.month is None:
            raise ValueError("a day needs a month")
        # date() checks the year (1..9999), the month (1..12) and the day against the calendar.
        dt.date(self.year, 1 if self.month is None else self.month, 1 if self.day is None else self.day)

    @classmethod
    def parse(cls, value: str) -> PartialDate:
        """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (a real calendar date); ValueError for anything else."""
        if type(value) is not str:
            raise ValueError("a date is YYYY, YYYY-MM or YYYY-MM-DD")
        return _parse_date(value)

    @classmethod
    def from_date(cls, value: dt.date) -> PartialDate:
        return cls(value.year, value.month, value.day)

    @property
    def precision(self) -> DatePrecision:
        if self.day is not None:
            return "day"
        return "year" if self.month is None else "month"

    def truncated(self, precision: DatePrecision) -> PartialDate:
        """This date known only to ``precision`` (which must not be finer than its own)."""
        if _RANK[precision] > _RANK[self.precision]:
            raise ValueError("cannot make a date more precise than it is")
        if precision == "year":
            return PartialDate(self.year)
        if precision == "month":
            return PartialDate(self.year, self.month)
        return self

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@lru_cache(maxsize=4096)
def _parse_date(value: str) -> PartialDate:
    """``PartialDate.parse`` of a string. Cached: a verification reads the caller's date three times (the
    request model's check, the ID pre-check, the comparison), and a PartialDate is immutable; a failed parse
    raises and is not cached. 4,096 entries are well under a MiB."""
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise ValueError("a date is YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = match.groups()
    try:
        return PartialDate(
            int(year), None if month is None else int(month), None if day is None else int(day)
        )
    except ValueError:
        raise ValueError("not a calendar date") from None


@dataclass(frozen=True, slots=True)
class DateResult:
    result: MatchResult
    precision: DatePrecision  # the coarser of the two dates' precisions: what was compared


def _as_partial_date(value: str | PartialDate) -> PartialDate:
    return value if isinstance(value, PartialDate) else PartialDate.parse(value)


def match_date(input: str | PartialDate, record: str | PartialDate) -> DateResult:
    """Compare at the coarser of the two precisions, which is the precision reported.

    Record "1938", input "1938-05-02" → match at "year". ValueError for a malformed date.
    """
    given, on_record = _as_partial_date(input), _as_partial_date(record)
    precision = min(given.precision, on_record.precision, key=_RANK.__getitem__)
    if given.year != on_record.year:
        return DateResult("mismatch", precision)
    if precision != "year" and given.month != on_record.month:
        return DateResult("mismatch", precision)
    if precision == "day" and given.day != on_record.day:
        return DateResult("mismatch", precision)
    return DateResult("match", precision)


# --- names -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameResult:
    result: MatchResult
    tier: NameMatchMode  # the strictest tier that matched, else the mode asked for
    score: int  # 0..100; 100 when exact or normalized matched, else ⌊fuzz.ratio⌋ of the folded keys


def _ratio_score(a: str, b: str) -> int:
    ratio = fuzz.ratio(a, b)
    nearest = round(ratio)
    return nearest if abs(ratio - nearest) < _RATIO_SNAP else math.floor(ratio)


def match_name(
    input: str, record: str, mode: NameMatchMode = DEFAULT_NAME_MATCH, threshold: int = DEFAULT_THRESHOLD
) -> NameResult:
    """Match a claimed full name against the recorded one, trying tiers from strict up to ``mode``.

    ``exact``: equal exact keys (NFC, case folding, whitespace collapse). ``normalized``: also equal
    normalized keys (tone placement, apostrophes, Đ look-alikes). ``fuzzy``: also ⌊fuzz.ratio⌋ of the
    folded keys ≥ ``threshold``. Word order counts in every tier. ValueError for an unknown mode, a
    threshold outside 1..100 or a name that is empty after whitespace collapse.
    """
    if mode not in _MODES:
        raise ValueError('name_match must be "exact", "normalized" or "fuzzy"')
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 100:
        raise ValueError("threshold must be an integer in 1..100")
    given, on_record = exact_key(input), exact_key(record)
    if not given or not on_record:
        raise ValueError("a name to compare is empty")
    if given == on_record:
        return NameResult("match", "exact", 100)
    # The keys are idempotent (normalized_key(exact_key(s)) == normalized_key(s)), so reuse the exact keys.
    if mode != "exact" and normalized_key(given) == normalized_key(on_record):
        return NameResult("match", "normalized", 100)
    score = _ratio_score(folded_key(given), folded_key(on_record))
    if mode == "fuzzy" and score >= threshold:
        return NameResult("match", "fuzzy", score)
    return NameResult("mismatch", mode, score)


# --- verification ----------------------------------------------------------------------------------------


class FullNameDetail(TypedDict):
    result: FieldResult
    tier: NotRequired[NameMatchMode]  # present for match / mismatch
    score: NotRequired[int]  # present for match / mismatch


class DateOfBirthDetail(TypedDict):
    result: FieldResult
    precision: NotRequired[DatePrecision]  # present for match / mismatch


class GenderDetail(TypedDict):
    result: FieldResult


class VerificationFields(TypedDict):
    full_name: FullNameDetail
    date_of_birth: DateOfBirthDetail
    gender: GenderDetail


@dataclass(frozen=True, slots=True)
class Verification:
    """``match`` is false exactly when ``reason`` is not None; ``fields`` is the API's per-field detail."""

    match: bool
    reason: Reason | None
    fields: VerificationFields

    def __post_init__(self) -> None:
        if self.match != (self.reason is None):
            raise ValueError("match must be false exactly when there is a reason")


class VerifyQuery(Protocol):
    """What verification reads from a request body; the route's model or a ``VerifyRequest`` fit.

    None for ``name_match`` / ``threshold`` means the API's default (normalized / 90).
    """

    @property
    def full_name(self) -> str | None: ...
    @property
    def date_of_birth(self) -> str | None: ...
    @property
    def gender(self) -> str | None: ...
    @property
    def name_match(self) -> NameMatchMode | None: ...
    @property
    def threshold(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """The verification claim (the body of ``POST /v1/citizens/verify`` without the personal ID)."""

    full_name: str | None = None
    date_of_birth: str | None = None
    gender: str | None = None
    name_match: NameMatchMode = DEFAULT_NAME_MATCH
    threshold: int = DEFAULT_THRESHOLD


_NOT_CHECKED: Final = "not_checked"
_NOT_ON_RECORD: Final = "not_on_record"


def _input_gender(value: str) -> str:
    if value not in _GENDERS:
        raise ValueError('gender must be "male" or "female"')
    return value


def precheck(pid: PersonalId, *, gender: str | None, date_of_birth: str | None) -> list[str]:
    """The supplied fields the ID's structure contradicts: "gender" (digit 4's parity) and/or
    "date_of_birth" (the birth year against digit 4's century and digits 5–6), in that order.

    A non-empty answer is a ``mismatch`` found without calling upstream. ValueError for a malformed date
    or a gender other than "male"/"female".
    """
    birth_year = None if date_of_birth is None else PartialDate.parse(date_of_birth).year
    return id_contradicts(pid, sex=None if gender is None else _input_gender(gender), birth_year=birth_year)


def precheck_verification(pid: PersonalId, request: VerifyQuery) -> Verification | None:
    """The answer when the ID's structure contradicts the claim, else None (go on and ask upstream).

    The detail compares ``gender`` and the birth year (precision ``year``) with the ID's digits and reports
    ``full_name`` (and any field not supplied) as ``not_checked``.
    """
    contradicted = precheck(pid, gender=request.gender, date_of_birth=request.date_of_birth)
    if not contradicted:
        return None
    gender: GenderDetail = {"result": _NOT_CHECKED}
    if request.gender is not None:
        gender = {"result": "mismatch" if "gender" in contradicted else "match"}
    date_of_birth: DateOfBirthDetail = {"result": _NOT_CHECKED}
    if request.date_of_birth is not None:
        result: MatchResult = "mismatch" if "date_of_birth" in contradicted else "match"
        date_of_birth = {"result": result, "precision": "year"}
    fields: VerificationFields = {
        "full_name": {"result": _NOT_CHECKED},
        "date_of_birth": date_of_birth,
        "gender": gender,
    }
    return Verification(match=False, reason="mismatch", fields=fields)


def _present(value: object) -> bool:
    return value is not None and value != ""


def _record_str(record: Mapping[str, object], field: str) -> str | None:
    value = record.get(field)
    if not _present(value):
        return None
    if not isinstance(value, str):
        raise InvalidRecordValue(field)
    return value


def _record_date(record: Mapping[str, object], field: str) -> PartialDate | None:
    value = record.get(field)
    if not _present(value):
        return None
    if isinstance(value, dt.datetime):  # a datetime is a date subclass, and never a date of birth
        raise InvalidRecordValue(field)
    if isinstance(value, dt.date):
        return PartialDate.from_date(value)
    if not isinstance(value, str):
        raise InvalidRecordValue(field)
    try:
        return PartialDate.parse(value)
    except ValueError:
        raise InvalidRecordValue(field) from None


def verify(record: Mapping[str, object], request: VerifyQuery) -> Verification:
    """Compare a claim with a found resident's record (fields under the API's names).

    Reads ``full_name``, ``date_of_birth`` (``YYYY[-MM[-DD]]`` or a ``date``), ``gender`` ("male" /
    "female") and ``date_of_death`` from ``record``; other members are ignored. ``match`` is true only when
    every supplied field matched and the resident is not deceased. ValueError when the request supplies no
    field or a malformed one; InvalidRecordValue for a malformed record value.
    """
    if request.full_name is None and request.date_of_birth is None and request.gender is None:
        raise ValueError("at least one of full_name, date_of_birth and gender is needed")
    all_match = True

    full_name: FullNameDetail = {"result": _NOT_CHECKED}
    if request.full_name is not None:
        recorded_name = _record_str(record, "full_name")
        if recorded_name is None:
            full_name, all_match = {"result": _NOT_ON_RECORD}, False
        else:
            name = match_name(
                request.full_name,
                recorded_name,
                request.name_match or DEFAULT_NAME_MATCH,
                DEFAULT_THRESHOLD if request.threshold is None else request.threshold,
            )
            full_name = {"result": name.result, "tier": name.tier, "score": name.score}
            all_match = all_match and name.result == "match"

    date_of_birth: DateOfBirthDetail = {"result": _NOT_CHECKED}
    if request.date_of_birth is not None:
        claimed = PartialDate.parse(request.date_of_birth)
        recorded_date = _record_date(record, "date_of_birth")
        if recorded_date is None:
            date_of_birth, all_match = {"result": _NOT_ON_RECORD}, False
        else:
            born = match_date(claimed, recorded_date)
            date_of_birth = {"result": born.result, "precision": born.precision}
            all_match = all_match and born.result == "match"

    gender: GenderDetail = {"result": _NOT_CHECKED}
    if request.gender is not None:
        claimed_gender = _input_gender(request.gender)
        recorded_gender = _record_str(record, "gender")
        if recorded_gender is None:
            gender, all_match = {"result": _NOT_ON_RECORD}, False
        elif recorded_gender not in _GENDERS:
            raise InvalidRecordValue("gender")
        else:
            same = claimed_gender == recorded_gender
            gender = {"result": "match" if same else "mismatch"}
            all_match = all_match and same

    fields: VerificationFields = {"full_name": full_name, "date_of_birth": date_of_birth, "gender": gender}
    if _present(record.get("date_of_death")):
        return Verification(match=False, reason="deceased", fields=fields)
    if not all_match:
        return Verification(match=False, reason="mismatch", fields=fields)
    return Verification(match=True, reason=None, fields=fields)


def verify_record(record: Mapping[str, object] | None, request: VerifyQuery) -> Verification:
    """``verify`` for a lookup that may have found nobody: None (unknown or cancelled ID) answers
    ``reason: "not_found"`` with every field ``not_checked``."""
    if record is None:
        if request.full_name is None and request.date_of_birth is None and request.gender is None:
            raise ValueError("at least one of full_name, date_of_birth and gender is needed")
        fields: VerificationFields = {
            "full_name": {"result": _NOT_CHECKED},
            "date_of_birth": {"result": _NOT_CHECKED},
            "gender": {"result": _NOT_CHECKED},
        }
        return Verification(match=False, reason="not_found", fields=fields)
    return verify(record, request)
