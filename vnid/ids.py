"""Personal identification number (số định danh cá nhân) and the old 9-digit CMND number.

Structure ``PPP G YY RRRRRR`` (Decree 137/2015/NĐ-CP Art. 13, code tables in Circular 07/2016/TT-BCA and
Circular 59/2021/TT-BCA, still described the same way under Decree 70/2024/NĐ-CP):

* ``PPP``: legacy province code where the birth was registered (one of 63; see ``vnid.provinces``). It says
  nothing about where the person lives now.
* ``G``: sex and century. Even = male, odd = female; ``G // 2`` counts centuries from 1900:
  0/1 → 1900–1999, 2/3 → 2000–2099, 4/5 → 2100–2199, 6/7 → 2200–2299, 8/9 → 2300–2399.
* ``YY``: last two digits of the birth year.
* ``RRRRRR``: a random serial. There is no check digit, so a typo in it cannot be detected.

Births registered abroad carry a country code instead of ``PPP``; that list is not public, so such IDs are
rejected as ``province``. The 9-digit CMND (void since 31 Dec 2024, still stored) encodes nothing checkable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final, Literal

from vnid.provinces import LEGACY_PROVINCES, UnknownProvince

__all__ = [
    "CMND9_RE",
    "PERSONAL_ID_RE",
    "InvalidPersonalId",
    "PersonalId",
    "Sex",
    "id_contradicts",
    "is_cmnd9",
    "is_valid_personal_id",
    "make_personal_id",
    "parse_personal_id",
    "sex_century_digit",
]

Sex = Literal["male", "female"]
InvalidReason = Literal["format", "province"]

# [0-9], never \d: in Python \d also matches Arabic-Indic, full-width and other non-ASCII digits.
# Match with fullmatch(): "$" alone also matches just before a trailing newline.
PERSONAL_ID_RE: Final = re.compile(r"^([0-9]{3})([0-9])([0-9]{2})([0-9]{6})$")
CMND9_RE: Final = re.compile(r"^[0-9]{9}$")

FIRST_BIRTH_YEAR: Final = 1900
LAST_BIRTH_YEAR: Final = 2399
SERIAL_MAX: Final = 999_999

_MESSAGES: Final[dict[InvalidReason, str]] = {
    "format": "a personal ID is exactly 12 ASCII digits",
    "province": "the first three digits of the personal ID are not a province code of birth registration",
}


class InvalidPersonalId(ValueError):
    """A personal ID that is structurally impossible; the message never repeats the ID."""

    def __init__(self, reason: InvalidReason) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason: InvalidReason = reason


@dataclass(frozen=True, slots=True)
class PersonalId:
    """What the structure of a valid personal ID says; the number and serial stay out of repr() (and logs)."""

    number: str = field(repr=False)
    province_code: str  # legacy three-digit birth-registration code, e.g. "052"
    sex: Sex
    century_start: int  # 1900, 2000, ..., 2300
    birth_year: int
    serial: str = field(repr=False)  # last six digits


def parse_personal_id(value: str) -> PersonalId:
    """Split a personal ID into its parts; InvalidPersonalId("format" | "province") if it cannot exist."""
    match = PERSONAL_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidPersonalId("format")
    province_code, sex_century, year_in_century, serial = match.groups()
    if province_code not in LEGACY_PROVINCES:
        raise InvalidPersonalId("province")
    digit = int(sex_century)
    century_start = FIRST_BIRTH_YEAR + 100 * (digit // 2)
    return PersonalId(
        number=value,
        province_code=province_code,
        sex="male" if digit % 2 == 0 else "female",
        century_start=century_start,
        birth_year=century_start + int(year_in_century),
        serial=serial,
    )


def is_valid_personal_id(value: str) -> bool:
    """True when ``value`` is a structurally possible personal ID."""
    try:
        parse_personal_id(value)
    except InvalidPersonalId:
        return False
    return True


def sex_century_digit(sex: Sex, birth_year: int) -> int:
    """Digit 4 of the personal ID for this sex and birth year (1900–2399)."""
    if not FIRST_BIRTH_YEAR <= birth_year <= LAST_BIRTH_YEAR:
        raise ValueError(f"birth year must be in {FIRST_BIRTH_YEAR}–{LAST_BIRTH_YEAR}")
    if sex not in ("male", "female"):
        raise ValueError('sex must be "male" or "female"')
    return 2 * ((birth_year - FIRST_BIRTH_YEAR) // 100) + (0 if sex == "male" else 1)


def make_personal_id(province_code: str, sex: Sex, birth_year: int, serial: int) -> str:
    """Build a personal ID from a legacy province code, sex, birth year and a serial 0..999999."""
    if province_code not in LEGACY_PROVINCES:
        raise UnknownProvince("not one of the 63 legacy province codes", province_code)
    if isinstance(serial, bool) or not 0 <= serial <= SERIAL_MAX:
        raise ValueError(f"serial must be an integer in 0–{SERIAL_MAX}")
    digit = sex_century_digit(sex, birth_year)
    return f"{province_code}{digit}{birth_year % 100:02d}{serial:06d}"


def is_cmnd9(value: str) -> bool:
    """True when ``value`` has the shape of an old 9-digit CMND number (digits only; no prefix check)."""
    return isinstance(value, str) and CMND9_RE.fullmatch(value) is not None


# The gateway speaks "male"/"female"; registry records say "Nam"/"Nữ".
_SEX_ALIASES: Final[dict[str, Sex]] = {"male": "male", "female": "female", "nam": "male", "nữ": "female"}


def id_contradicts(pid: PersonalId, *, sex: str | None = None, birth_year: int | None = None) -> list[str]:
    """Which claimed facts the ID's own structure rules out: "gender" and/or "date_of_birth", in that order.

    A sex value that is neither "male"/"female" nor "Nam"/"Nữ" counts as contradicting, since every ID
    encodes one of the two.
    """
    contradicted: list[str] = []
    if sex is not None and _SEX_ALIASES.get(unicodedata.normalize("NFC", sex).strip().casefold()) != pid.sex:
        contradicted.append("gender")
    if birth_year is not None and birth_year != pid.birth_year:
        contradicted.append("date_of_birth")
    return contradicted
