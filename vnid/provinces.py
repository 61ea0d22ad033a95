"""Province codes: the 63 legacy codes of birth registration and the 2025 units (34 provinces, 3,321 wards).

Two code systems share numbers, so keep them apart:

* A personal ID starts with a **legacy three-digit code** (``"052"``) naming the province where the birth was
  registered, from the pre-2025 list of 63 (Circular 07/2016/TT-BCA Annex 1, carried on by Circular
  59/2021/TT-BCA). It never changes with a merger.
* The **2025 two-digit code** (``"52"``) names one of the 34 units created by Resolution 202/2025/QH15. The
  new Gia Lai is ``52`` (old Bình Định's number) and holds both ``052`` (old Bình Định) and ``064`` (old Gia
  Lai). 2025 units come from the ``vietnam_provinces`` package (GSO data); never feed it an ID prefix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "LEGACY_PROVINCES",
    "PROVINCES_2025",
    "LegacyProvince",
    "Province2025",
    "UnknownProvince",
    "UnknownWard",
    "Ward2025",
    "legacy_codes_of",
    "legacy_province",
    "province_2025",
    "ward",
    "wards_of",
]


class _UnknownCode(ValueError, KeyError):
    """An administrative code that is not on the list; a ValueError that ``except KeyError`` also catches."""

    def __init__(self, message: str, code: object = None) -> None:
        super().__init__(message)
        self.code = code  # kept off the message: codes arrive from request bodies

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


class UnknownProvince(_UnknownCode):
    """A province code (legacy three-digit or 2025 two-digit) that does not exist."""


class UnknownWard(_UnknownCode):
    """A 2025 ward (commune-level unit) code that does not exist."""


@dataclass(frozen=True, slots=True)
class LegacyProvince:
    """One of the 63 pre-2025 provinces, as a personal ID's birth-registration code names it."""

    code: str  # three digits, the personal-ID prefix, e.g. "052"
    name: str  # as in the code table, e.g. "Bình Định", "TP Hồ Chí Minh", "Thừa Thiên Huế"
    kind: str  # "tỉnh" | "thành phố" (centrally-run city)
    new_code: str  # the 2025 province it lies in, two digits, e.g. "52"


_CITY: Final = "thành phố"
_PROVINCE: Final = "tỉnh"

# Source: Circular 07/2016/TT-BCA Annex 1 (province codes of birth registration), kept by Circular
# 59/2021/TT-BCA; the codes equal the pre-2025 GSO province codes. Last column: the 2025 unit per
# Resolution 202/2025/QH15. Checked against the annex and against vietnam-provinces 0.6.0 ward codes.
# "kind" is the status on that list: five centrally-run cities. Thừa Thiên Huế is listed as a province under
# its old name (it became Thành phố Huế on 1 Jan 2025, after the annex was written).
_LEGACY_ROWS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("001", "Hà Nội", _CITY, "01"),
    ("002", "Hà Giang", _PROVINCE, "08"),
    ("004", "Cao Bằng", _PROVINCE, "04"),
    ("006", "Bắc Kạn", _PROVINCE, "19"),
    ("008", "Tuyên Quang", _PROVINCE, "08"),
    ("010", "Lào Cai", _PROVINCE, "15"),
    ("011", "Điện Biên", _PROVINCE, "11"),
    ("012", "Lai Châu", _PROVINCE, "12"),
    ("014", "Sơn La", _PROVINCE, "14"),
    ("015", "Yên Bái", _PROVINCE, "15"),
    ("017", "Hòa Bình", _PROVINCE, "25"),
    ("019", "Thái Nguyên", _PROVINCE, "19"),
    ("020", "Lạng Sơn", _PROVINCE, "20"),
    ("022", "Quảng Ninh", _PROVINCE, "22"),
    ("024", "Bắc Giang", _PROVINCE, "24"),
    ("025", "Phú Thọ", _PROVINCE, "25"),
    ("026", "Vĩnh Phúc", _PROVINCE, "25"),
    ("027", "Bắc Ninh", _PROVINCE, "24"),
    ("030", "Hải Dương", _PROVINCE, "31"),
    ("031", "Hải Phòng", _CITY, "31"),
    ("033", "Hưng Yên", _PROVINCE, "33"),
    ("034", "Thái Bình", _PROVINCE, "33"),
    ("035", "Hà Nam", _PROVINCE, "37"),
    ("036", "Nam Định", _PROVINCE, "37"),
    ("037", "Ninh Bình", _PROVINCE, "37"),
    ("038", "Thanh Hóa", _PROVINCE, "38"),
    ("040", "Nghệ An", _PROVINCE, "40"),
    ("042", "Hà Tĩnh", _PROVINCE, "42"),
    ("044", "Quảng Bình", _PROVINCE, "44"),
    ("045", "Quảng Trị", _PROVINCE, "44"),
    ("046", "Thừa Thiên Huế", _PROVINCE, "46"),
    ("048", "Đà Nẵng", _CITY, "48"),
    ("049", "Quảng Nam", _PROVINCE, "48"),
    ("051", "Quảng Ngãi", _PROVINCE, "51"),
    ("052", "Bình Định", _PROVINCE, "52"),
    ("054", "Phú Yên", _PROVINCE, "66"),
    ("056", "Khánh Hòa", _PROVINCE, "56"),
    ("058", "Ninh Thuận", _PROVINCE, "56"),
    ("060", "Bình Thuận", _PROVINCE, "68"),
    ("062", "Kon Tum", _PROVINCE, "51"),
    ("064", "Gia Lai", _PROVINCE, "52"),
    ("066", "Đắk Lắk", _PROVINCE, "66"),
    ("067", "Đắk Nông", _PROVINCE, "68"),
    ("068", "Lâm Đồng", _PROVINCE, "68"),
    ("070", "Bình Phước", _PROVINCE, "75"),
    ("072", "Tây Ninh", _PROVINCE, "80"),
    ("074", "Bình Dương", _PROVINCE, "79"),
    ("075", "Đồng Nai", _PROVINCE, "75"),
    ("077", "Bà Rịa - Vũng Tàu", _PROVINCE, "79"),
    ("079", "TP Hồ Chí Minh", _CITY, "79"),
    ("080", "Long An", _PROVINCE, "80"),
    ("082", "Tiền Giang", _PROVINCE, "82"),
    ("083", "Bến Tre", _PROVINCE, "86"),
    ("084", "Trà Vinh", _PROVINCE, "86"),
    ("086", "Vĩnh Long", _PROVINCE, "86"),
    ("087", "Đồng Tháp", _PROVINCE, "82"),
    ("089", "An Giang", _PROVINCE, "91"),
    ("091", "Kiên Giang", _PROVINCE, "91"),
    ("092", "Cần Thơ", _CITY, "92"),
    ("093", "Hậu Giang", _PROVINCE, "92"),
    ("094", "Sóc Trăng", _PROVINCE, "92"),
    ("095", "Bạc Liêu", _PROVINCE, "96"),
    ("096", "Cà Mau", _PROVINCE, "96"),
)

LEGACY_PROVINCES: Final[Mapping[str, LegacyProvince]] = MappingProxyType(
    {code: LegacyProvince(code, name, kind, new_code) for code, name, kind, new_code in _LEGACY_ROWS}
)

_LEGACY_CODES_BY_NEW_CODE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        new_code: tuple(p.code for p in LEGACY_PROVINCES.values() if p.new_code == new_code)
        for new_code in dict.fromkeys(p.new_code for p in LEGACY_PROVINCES.values())
    }
)


def legacy_province(code3: str) -> LegacyProvince:
    """The legacy province of a three-digit birth-registration code; UnknownProvince if not one of the 63."""
    try:
        return LEGACY_PROVINCES[code3]
    except (KeyError, TypeError):
        raise UnknownProvince("not one of the 63 legacy province codes", code3) from None


def legacy_codes_of(new_code: str) -> tuple[str, ...]:
    """The legacy codes whose areas make up a 2025 province, in code order ("52" -> ("052", "064"))."""
    try:
        return _LEGACY_CODES_BY_NEW_CODE[new_code]
    except (KeyError, TypeError):
        raise UnknownProvince("not one of the 34 province codes of 2025", new_code) from None


@dataclass(frozen=True, slots=True)
class Province2025:
    """A provincial-level unit since 1 Jul 2025 (Resolution 202/2025/QH15)."""

    code: str  # two digits, e.g. "52"
    name: str  # as vietnam-provinces gives it: "Gia Lai", "Thành phố Hà Nội"
    short_name: str  # without the "Thành phố " prefix: "Hà Nội"
    kind: str  # "tỉnh" | "thành phố"


@dataclass(frozen=True, slots=True)
class Ward2025:
    """A commune-level unit since 1 Jul 2025 (two-level local government, no districts)."""

    code: str  # five digits, zero-padded, e.g. "21583"
    name: str  # e.g. "Phường Quy Nhơn"
    province_code: str  # two digits, e.g. "52"
    kind: str  # "xã" | "phường" | "đặc khu"


_CITY_PREFIX: Final = "Thành phố "
_PROVINCE_CODE_RE: Final = re.compile(r"[0-9]{2}")
_WARD_CODE_RE: Final = re.compile(r"[0-9]{5}")


@functools.cache
def _load_provinces_2025() -> Mapping[str, Province2025]:
    # Imported here: vietnam_provinces builds ~3,400 enum members on import (~40 ms).
    from vietnam_provinces import Province, VietNamDivisionType

    provinces: dict[str, Province2025] = {}
    for source in sorted(Province.iter_all(), key=lambda p: int(p.code)):
        is_city = source.division_type is VietNamDivisionType.THANH_PHO_TRUNG_UONG
        short_name = source.name.removeprefix(_CITY_PREFIX) if is_city else source.name
        code = f"{int(source.code):02d}"
        provinces[code] = Province2025(code, source.name, short_name, _CITY if is_city else _PROVINCE)
    return MappingProxyType(provinces)


class _LazyProvinces2025(Mapping[str, Province2025]):
    """Read-only view of the 34 provinces that loads vietnam_provinces on first use."""

    __slots__ = ()

    def __getitem__(self, code: str) -> Province2025:
        return _load_provinces_2025()[code]

    def __iter__(self) -> Iterator[str]:
        return iter(_load_provinces_2025())

    def __len__(self) -> int:
        return len(_load_provinces_2025())

    def __repr__(self) -> str:
        return f"PROVINCES_2025({dict(_load_provinces_2025())!r})"


PROVINCES_2025: Final[Mapping[str, Province2025]] = _LazyProvinces2025()


def province_2025(code2: str) -> Province2025:
    """The 2025 province with this two-digit code; UnknownProvince otherwise."""
    if isinstance(code2, str) and _PROVINCE_CODE_RE.fullmatch(code2):
        found = _load_provinces_2025().get(code2)
        if found is not None:
            return found
    raise UnknownProvince("not one of the 34 province codes of 2025", code2)


@functools.cache
def _wards_of_known_province(code2: str) -> tuple[Ward2025, ...]:
    from vietnam_provinces import ProvinceCode, Ward

    return tuple(
        # the GSO data has stray double spaces in some names ("Phường  Buôn Ma Thuột"): collapse them
        Ward2025(f"{int(w.code):05d}", " ".join(w.name.split()), code2, w.division_type.value)
        for w in Ward.iter_by_province(ProvinceCode(int(code2)))
    )


def wards_of(province_code: str) -> tuple[Ward2025, ...]:
    """The wards of a 2025 province, in vietnam-provinces (GSO) order; UnknownProvince for other codes."""
    return _wards_of_known_province(province_2025(province_code).code)


@functools.cache
def _ward_index() -> Mapping[str, Ward2025]:
    return MappingProxyType({w.code: w for code2 in _load_provinces_2025() for w in wards_of(code2)})


def ward(code5: str) -> Ward2025:
    """The 2025 ward with this five-digit code; UnknownWard otherwise."""
    if isinstance(code5, str) and _WARD_CODE_RE.fullmatch(code5):
        found = _ward_index().get(code5)
        if found is not None:
            return found
    raise UnknownWard("not a ward code of 2025", code5)
