"""What a form field may be filled from, how its value is written, and the filling itself.

A template field's ``source`` is a resident field (``full_name``) or one member of a structured field
(``permanent_address.text``, ``ethnicity.name``), in the API's names (docs/contract.md, Resident fields); null
for a field the resident or the officer fills by hand (the office addressed, the request itself). Its
``format`` writes the value as the printed form has it:

- ``date_dmy``: a partial date as ``dd/mm/yyyy``, ``mm/yyyy`` or ``yyyy`` (the precision the record holds);
- ``upper``: the text in capitals (Vietnamese letters included: ``đ`` becomes ``Đ``);
- ``gender_vi``: ``Nam`` or ``Nữ``;
- ``relation_vi``: a relation to the head of household in Vietnamese (``Chủ hộ``, ``Con``, ...).

A format applies only to the sources whose values it can write (``gender_vi`` to ``gender``, ...); any other
pairing, an unknown field or member, or an unknown format is refused when the template is defined, never when a
form is prefilled. Pure functions: nothing here reads a database or a backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from app.backends.base import RESIDENT_FIELDS
from app.errors import FieldError

_ADDRESS: Final = ("province_code", "province_name", "ward_code", "ward_name", "detail", "text")
_PLACE: Final = ("legacy_province_code", "legacy_province_name", "text")
_CODED: Final = ("code", "name")

MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "permanent_address": _ADDRESS,
    "temporary_address": _ADDRESS,
    "current_address": _ADDRESS,
    "place_of_birth": _PLACE,
    "birth_registration_place": _PLACE,
    "hometown": _PLACE,
    "ethnicity": _CODED,
    "religion": _CODED,
    "temporary_absence": ("from", "to", "reason", "destination"),
}
"""The members a source may name, per structured field (docs/contract.md, Resident fields)."""

DATE_SOURCES: Final = frozenset(
    {"date_of_birth", "date_of_death", "temporary_absence.from", "temporary_absence.to"}
)
_LISTS: Final = frozenset({"other_names", "nationality", "previous_ids", "id_cards", "relatives"})
TEXT_SOURCES: Final = (
    frozenset(
        {
            f
            for f in RESIDENT_FIELDS
            if f not in MEMBERS and f not in _LISTS and f not in DATE_SOURCES and f != "gender"
        }
        | {f"{field}.{member}" for field, members in MEMBERS.items() for member in members}
    )
    - DATE_SOURCES
)
"""Sources whose value is text (``upper`` writes them in capitals)."""

RELATIONS_VI: Final[Mapping[str, str]] = {
    "head": "Chủ hộ",
    "spouse": "Vợ/chồng",
    "child": "Con",
    "parent": "Cha/mẹ",
    "grandchild": "Cháu",
    "grandparent": "Ông/bà",
    "sibling": "Anh/chị/em",
    "daughter_in_law": "Con dâu",
    "son_in_law": "Con rể",
    "other": "Khác",
}
GENDERS_VI: Final[Mapping[str, str]] = {"male": "Nam", "female": "Nữ"}

FORMATS: Final[Mapping[str, frozenset[str]]] = {
    "date_dmy": DATE_SOURCES,
    "upper": TEXT_SOURCES,
    "gender_vi": frozenset({"gender"}),
    "relation_vi": frozenset({"relation_to_head"}),
}
"""Each format and the sources it can write."""

_PARTIAL_DATE: Final = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")


def field_of(source: str) -> str:
    """The resident field a source reads (what a grant must hold for it to be released)."""
    return source.partition(".")[0]


def source_problems(fields: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """Why these template fields cannot be defined (empty when they can); messages never echo a value."""
    problems: list[FieldError] = []
    seen: set[str] = set()
    for index, item in enumerate(fields):
        name, source, fmt = item.get("name"), item.get("source"), item.get("format")
        if name in seen:
            problems.append(
                _error(index, "name", "duplicate_name", "Two fields of the form share this name.")
            )
        seen.add(str(name))
        if source is not None and not known_source(source):
            problems.append(
                _error(index, "source", "unknown_source", "Not a resident field or a member of one.")
            )
            continue
        if fmt is None:
            continue
        if fmt not in FORMATS:
            problems.append(
                _error(index, "format", "unknown_format", f"One of {', '.join(sorted(FORMATS))}.")
            )
        elif source is None or source not in FORMATS[fmt]:
            problems.append(
                _error(index, "format", "format_not_applicable", "This format cannot write this source.")
            )
    return problems


def known_source(source: str) -> bool:
    field, dot, member = source.partition(".")
    if not dot:
        return field in RESIDENT_FIELDS
    return member in MEMBERS.get(field, ())


def _error(index: int, member: str, code: str, message: str) -> FieldError:
    return {"loc": ["body", "fields", index, member], "code": code, "message": message}


# --- filling ----------------------------------------------------------------------------------------------


def read_source(record: Mapping[str, Any], personal_id: str, source: str) -> Any:
    """The value ``source`` names in a record (null when the field or its structure is absent)."""
    field, dot, member = source.partition(".")
    value = personal_id if field == "personal_id" else record.get(field)
    if dot:
        value = value.get(member) if isinstance(value, Mapping) else None
    return value


def write(value: Any, fmt: str | None) -> Any:
    """``value`` as ``fmt`` writes it; a value the format cannot write is left as the record holds it."""
    if value is None or fmt is None:
        return value
    if fmt == "date_dmy" and isinstance(value, str):
        return date_dmy(value)
    if fmt == "upper" and isinstance(value, str):
        return value.upper()
    if fmt == "gender_vi" and isinstance(value, str):
        return GENDERS_VI.get(value, value)
    if fmt == "relation_vi" and isinstance(value, str):
        return RELATIONS_VI.get(value, value)
    return value


def date_dmy(value: str) -> str:
    """``1968-04-15`` → ``15/04/1968``, ``1945-05`` → ``05/1945``, ``1938`` → ``1938``."""
    found = _PARTIAL_DATE.fullmatch(value)
    if found is None:
        return value
    year, month, day = found.groups()
    return "/".join(part for part in (day, month, year) if part)
