"""Pure domain rules shared by the gateway and the mock: personal-ID structure, province codes, name keys.

No I/O beyond the package's own data; ``import vnid`` stays cheap because the 2025 tables load on first use.
"""

from vnid.ids import (
    CMND9_RE,
    PERSONAL_ID_RE,
    InvalidPersonalId,
    PersonalId,
    Sex,
    id_contradicts,
    is_cmnd9,
    is_valid_personal_id,
    make_personal_id,
    parse_personal_id,
    sex_century_digit,
)
from vnid.names import ToneStyle, canonical_tones, exact_key, folded_key, nfc, normalized_key
from vnid.provinces import (
    LEGACY_PROVINCES,
    PROVINCES_2025,
    LegacyProvince,
    Province2025,
    UnknownProvince,
    UnknownWard,
    Ward2025,
    legacy_codes_of,
    legacy_province,
    province_2025,
    ward,
    wards_of,
)

__all__ = [
    "CMND9_RE",
    "LEGACY_PROVINCES",
    "PERSONAL_ID_RE",
    "PROVINCES_2025",
    "InvalidPersonalId",
    "LegacyProvince",
    "PersonalId",
    "Province2025",
    "Sex",
    "ToneStyle",
    "UnknownProvince",
    "UnknownWard",
    "Ward2025",
    "canonical_tones",
    "exact_key",
    "folded_key",
    "id_contradicts",
    "is_cmnd9",
    "is_valid_personal_id",
    "legacy_codes_of",
    "legacy_province",
    "make_personal_id",
    "nfc",
    "normalized_key",
    "parse_personal_id",
    "province_2025",
    "sex_century_digit",
    "ward",
    "wards_of",
]
