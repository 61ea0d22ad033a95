"""The backend contract: a small Protocol every adapter implements, and the records it returns.

Records carry the API's field names (``personal_id``, ``full_name``, ...), already mapped from the
upstream's wire names, so nothing above this layer knows the upstream's format. Adapters raise only the
errors in ``app.backends.errors``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, TypeGuard

RESIDENT_FIELDS: tuple[str, ...] = (
    "personal_id",
    "full_name",
    "other_names",
    "date_of_birth",
    "gender",
    "place_of_birth",
    "birth_registration_place",
    "hometown",
    "ethnicity",
    "religion",
    "nationality",
    "blood_type",
    "old_id_number",
    "previous_ids",
    "id_cards",
    "relatives",
    "permanent_address",
    "temporary_address",
    "current_address",
    "temporary_absence",
    "residence_file_number",
    "marital_status",
    "household_id",
    "relation_to_head",
    "date_of_death",
    "phone",
    "email",
)
"""The API's resident fields (docs/contract.md, Resident fields), in contract order."""

VERIFY_FIELDS: tuple[str, ...] = ("full_name", "date_of_birth", "gender", "date_of_death")
"""What a verification compares (and ``date_of_death``: a deceased resident is reported as such)."""
RESIDENCE_FIELDS: tuple[str, ...] = ("current_address", "temporary_address", "permanent_address")
"""What ``ResidentRecord.province`` reads."""

SENSITIVE_FIELDS: frozenset[str] = frozenset({"ethnicity", "religion", "blood_type"})
"""Named one by one in a grant; a ``"*"`` never reaches them; their release is flagged in the audit log."""


PERSONAL_ID = re.compile(r"[0-9]{12}")
"""A personal ID as the register keys it: anything else cannot be on record, so no adapter asks for it."""
HOUSEHOLD_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
"""The household codes the upstream's ``GET /api/v1/households/{maHo}`` accepts (safe in a URL path)."""


def may_be_on_record(personal_id: object) -> TypeGuard[str]:
    """Whether ``personal_id`` is worth asking the register for (a well-formed ID)."""
    return type(personal_id) is str and PERSONAL_ID.fullmatch(personal_id) is not None


def may_be_a_household(household_id: object) -> bool:
    """Whether ``household_id`` is worth asking the register for (a well-formed household code)."""
    return type(household_id) is str and HOUSEHOLD_ID.fullmatch(household_id) is not None


def ids_to_ask(personal_ids: Iterable[object]) -> list[str]:
    """The IDs of a ``get_many`` call an adapter asks for: the well-formed ones, each once, in the order given."""
    return [pid for pid in dict.fromkeys(personal_ids) if may_be_on_record(pid)]


def chunks(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    """``ids`` in consecutive chunks of at most ``size`` (a store's query or request limit)."""
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


@dataclass(frozen=True, slots=True)
class ResidentRecord:
    """One resident as the upstream holds it, in the API's names (every field of RESIDENT_FIELDS present)."""

    personal_id: str
    fields: Mapping[str, Any]
    record_updated_at: str
    """RFC 3339 UTC, from the upstream."""
    source: str
    """Which backend answered: ``csdlqg`` (http), ``mock_csdlqg`` (embedded) or ``fake``."""

    @property
    def province(self) -> str | None:
        """The 2025 province of residence that province scope is judged by (current, then temporary, then permanent)."""
        for key in RESIDENCE_FIELDS:
            address = self.fields.get(key)
            if address:
                code: str = address["province_code"]
                return code
        return None


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    personal_id: str
    full_name: str
    relation_to_head: str


@dataclass(frozen=True, slots=True)
class Household:
    household_id: str
    head: HouseholdMember
    members: tuple[HouseholdMember, ...]
    """Every member, the head included (relation ``head``)."""


STATS_DIMENSIONS: tuple[str, ...] = (
    "ward",
    "age_band",
    "age_group",
    "sex",
    "ethnicity",
    "residence_status",
    "household_size",
    "marital_status",
)
"""What population statistics may group by (docs/contract.md, section 14), in contract order."""
AGE_BANDS: tuple[str, ...] = (*(f"{low}-{low + 4}" for low in range(0, 85, 5)), "85+")
AGE_GROUPS: tuple[str, ...] = ("0-5", "6-10", "11-14", "15-17", "18-59", "60+")
SEXES: tuple[str, ...] = ("male", "female")
RESIDENCE_STATUSES: tuple[str, ...] = ("permanent", "temporary", "other")
HOUSEHOLD_SIZES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6+")
MARITAL_STATUSES: tuple[str, ...] = ("single", "married", "divorced", "widowed", "unknown")
STATS_VALUES: dict[str, tuple[str, ...]] = {
    "age_band": AGE_BANDS,
    "age_group": AGE_GROUPS,
    "sex": SEXES,
    "residence_status": RESIDENCE_STATUSES,
    "household_size": HOUSEHOLD_SIZES,
    "marital_status": MARITAL_STATUSES,
}
"""The closed vocabularies (``ward`` and ``ethnicity`` are codes), each in the order items are sorted by."""


@dataclass(frozen=True, slots=True)
class PopulationQuery:
    """A raw-aggregate question: residents alive at ``as_of`` living in ``province`` (and ``wards``)."""

    province: str
    as_of: date | None = None
    """None: the data set's own date."""
    group_by: tuple[str, ...] = ()
    wards: tuple[str, ...] | None = None
    sex: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    ethnicity: tuple[str, ...] | None = None
    residence_status: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class RawCell:
    """One non-empty cell: its values (in ``group_by`` order), its count and the sum of its record keys."""

    values: tuple[str, ...]
    count: int
    key_sum: int


@dataclass(frozen=True, slots=True)
class RawAggregate:
    """Raw counts: never published as they are (app.stats perturbs them)."""

    province: str
    as_of: date
    group_by: tuple[str, ...]
    cells: tuple[RawCell, ...]
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Names of coded values: ``ward`` and ``ethnicity`` code -> name."""


@dataclass(frozen=True, slots=True)
class CodeSent:
    """A one-time code the population database sent to the resident's registered mobile (the gateway never
    sees the code): the challenge to check a code against, and the number with its middle digits hidden."""

    challenge_id: str
    destination_hint: str
    channel: str = "sms"


class Backend(Protocol):
    """Read access to the population register. Every method is a read, safe to retry."""

    name: str

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        """The record of a current ID, or None (unknown or cancelled IDs alike).

        ``fields``: the only fields of ``record.fields`` the caller reads; a backend may leave the others out
        (the embedded one then maps only those); None: every field."""
        ...

    async def get_many(
        self, personal_ids: Sequence[str], fields: Collection[str] | None = None
    ) -> dict[str, ResidentRecord]:
        """Records for the IDs that exist; absent keys are unknown. ``fields`` as for ``get``."""
        ...

    async def household(self, household_id: str) -> Household | None: ...

    async def population_aggregate(self, query: PopulationQuery) -> RawAggregate:
        """Per non-empty cell of the query, the count and the sum of record keys (the query is valid)."""
        ...

    async def send_code(self, personal_id: str, about: str) -> CodeSent | None:
        """Have the database send a 6-digit code to the resident's registered mobile; ``about`` (at most 120
        characters, no control characters) says in the SMS what it confirms. None: no such resident;
        ``NoRegisteredContact``: no mobile on record. Not a read: never retried (a retry would send twice)."""
        ...

    async def check_code(self, challenge_id: str, code: str) -> bool:
        """Whether ``code`` (6 digits) is the one sent for ``challenge_id``; False for an unknown, used-up or
        expired challenge. Never retried: a check counts against the challenge."""
        ...

    async def check(self) -> None:
        """Raise when the backend cannot answer (used by ``/readyz``)."""
        ...

    async def close(self) -> None: ...
