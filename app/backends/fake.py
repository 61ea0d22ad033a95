"""An in-memory backend for unit tests, with hooks to inject failures and a record builder.

Not in the registry: tests construct it themselves (``FakeBackend(records=[resident("052090000118")])``)
and hand it to whatever they test. It records every call, so a test can assert that something was answered
without an upstream call.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from app.backends.base import (
    RESIDENCE_FIELDS,
    RESIDENT_FIELDS,
    STATS_VALUES,
    CodeSent,
    Household,
    HouseholdMember,
    PopulationQuery,
    RawAggregate,
    RawCell,
    ResidentRecord,
    ids_to_ask,
)
from app.backends.errors import NoRegisteredContact, UpstreamUnavailable

SOURCE = "fake"


def resident(personal_id: str, *, province: str = "52", **fields: Any) -> ResidentRecord:
    """A complete record (every field of RESIDENT_FIELDS) for ``personal_id``; ``fields`` override defaults.

    Gender and birth year follow the ID's digits 4-6 (sex and century, year), so the record never
    contradicts its own ID unless a test says so.
    """
    unknown = fields.keys() - set(RESIDENT_FIELDS) - {"record_updated_at"}
    if unknown:
        raise ValueError(f"not resident fields: {sorted(unknown)}")
    century_sex = int(personal_id[3])
    year = 1900 + 100 * (century_sex // 2) + int(personal_id[4:6])
    address = {
        "province_code": province,
        "province_name": "Gia Lai" if province == "52" else f"Tỉnh {province}",
        "ward_code": "21601",
        "ward_name": "Phường Quy Nhơn Đông",
        "detail": "Số 12 Lê Lợi",
        "text": "Số 12 Lê Lợi, Phường Quy Nhơn Đông, Tỉnh Gia Lai",
    }
    place = {"legacy_province_code": "052", "legacy_province_name": "Bình Định", "text": "Tỉnh Bình Định"}
    values: dict[str, Any] = {
        "personal_id": personal_id,
        "full_name": "Nguyễn Văn An" if century_sex % 2 == 0 else "Nguyễn Thị An",
        "other_names": [],
        "date_of_birth": f"{year:04d}-01-15",
        "gender": "male" if century_sex % 2 == 0 else "female",
        "place_of_birth": place,
        "birth_registration_place": place,
        "hometown": place,
        "ethnicity": {"code": "01", "name": "Kinh"},
        "religion": {"code": "00", "name": "Không"},
        "nationality": ["VN"],
        "blood_type": None,
        "old_id_number": None,
        "previous_ids": [],
        "id_cards": [],
        "relatives": [],
        "permanent_address": address,
        "temporary_address": None,
        "current_address": address,
        "temporary_absence": None,
        "residence_file_number": None,
        "marital_status": "single",
        "household_id": None,
        "relation_to_head": None,
        "date_of_death": None,
        "phone": None,
        "email": None,
    }
    updated = fields.pop("record_updated_at", "2025-12-01T08:00:00Z")
    values.update(fields)
    return ResidentRecord(personal_id=personal_id, fields=values, record_updated_at=updated, source=SOURCE)


class FakeBackend:
    """Records and households in memory. Failure hooks, checked on every call in this order:

    * ``fail_next(error, times)``: the next ``times`` calls raise ``error`` (queued, first in first out);
    * ``failure``: every call raises it while set (``fail_always(error)``, ``fail_always(None)`` clears);
    * ``failures_by_id``: a ``get``/``get_many`` naming that ID raises the error given for it;
    * ``delay``: seconds every call sleeps first (to test deadlines above the backend);
    * ``healthy``: ``check()`` raises ``check_error`` while False.
    """

    name: str = "fake"

    def __init__(
        self,
        records: Mapping[str, ResidentRecord] | Iterable[ResidentRecord] = (),
        households: Mapping[str, Household] | Iterable[Household] = (),
    ) -> None:
        self.records: dict[str, ResidentRecord] = (
            dict(records) if isinstance(records, Mapping) else {r.personal_id: r for r in records}
        )
        self.households: dict[str, Household] = (
            dict(households) if isinstance(households, Mapping) else {h.household_id: h for h in households}
        )
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        """Every call as ``(method, arguments)``: ``("get", (pid,))``, ``("get_many", pids)``, ..."""
        self.failure: BaseException | None = None
        self.failures_by_id: dict[str, BaseException] = {}
        self.delay = 0.0
        self.healthy = True
        self.check_error: BaseException | None = None
        self.closed = False
        self.dataset_date = date(2026, 1, 1)
        """``as_of`` of a statistics query that names none."""
        self._queued: deque[BaseException] = deque()
        self.codes: dict[str, tuple[str, str]] = {}
        """Challenge id -> (personal ID, code): a fake keeps codes in clear, the mock and the real database
        never do."""
        self.outbox: list[tuple[str, str, str]] = []
        """``(personal_id, phone, text)`` of every code sent."""

    def fail_next(self, error: BaseException, times: int = 1) -> None:
        self._queued.extend([error] * times)

    def fail_always(self, error: BaseException | None) -> None:
        self.failure = error

    def add(self, *records: ResidentRecord) -> None:
        for record in records:
            self.records[record.personal_id] = record

    def add_household(self, household_id: str, head: HouseholdMember, *others: HouseholdMember) -> Household:
        household = Household(household_id=household_id, head=head, members=(head, *others))
        self.households[household_id] = household
        return household

    async def _enter(self, method: str, args: tuple[str, ...]) -> None:
        self.calls.append((method, args))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._queued:
            raise self._queued.popleft()
        if self.failure is not None:
            raise self.failure
        for arg in args:
            if arg in self.failures_by_id:
                raise self.failures_by_id[arg]

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        await self._enter("get", (personal_id,))
        return self.records.get(personal_id)

    async def get_many(
        self, personal_ids: Sequence[str], fields: Collection[str] | None = None
    ) -> dict[str, ResidentRecord]:
        await self._enter("get_many", tuple(personal_ids))
        return {pid: self.records[pid] for pid in ids_to_ask(personal_ids) if pid in self.records}

    async def household(self, household_id: str) -> Household | None:
        await self._enter("household", (household_id,))
        return self.households.get(household_id)

    async def population_aggregate(self, query: PopulationQuery) -> RawAggregate:
        """Counted from the records, each with the record key ``sha256(personal_id)[0]``."""
        await self._enter("population_aggregate", (query.province,))
        as_of = query.as_of or self.dataset_date
        counts: Counter[tuple[str, ...]] = Counter()
        sums: Counter[tuple[str, ...]] = Counter()
        labels: dict[str, dict[str, str]] = {"ward": {}, "ethnicity": {}}
        for record in self.records.values():
            facts = _stats_facts(record, self.households, as_of)
            if facts is None or not _counted(facts, query):
                continue
            cell = tuple(str(facts[dim]) for dim in query.group_by)
            counts[cell] += 1
            sums[cell] += hashlib.sha256(record.personal_id.encode()).digest()[0]
            labels["ward"][str(facts["ward"])] = str(facts["ward_name"])
            labels["ethnicity"][str(facts["ethnicity"])] = str(facts["ethnicity_name"])
        cells = tuple(RawCell(values, n, sums[values]) for values, n in sorted(counts.items()))
        return RawAggregate(query.province, as_of, query.group_by, cells, labels)

    async def send_code(self, personal_id: str, about: str) -> CodeSent | None:
        await self._enter("send_code", (personal_id,))
        record = self.records.get(personal_id)
        if record is None:
            return None
        phone = record.fields.get("phone")
        if not phone:
            raise NoRegisteredContact()
        challenge_id = secrets.token_urlsafe(12)
        code = f"{secrets.randbelow(10**6):06d}"
        self.codes[challenge_id] = (personal_id, code)
        self.outbox.append((personal_id, phone, f"{code} {about}"))
        return CodeSent(challenge_id, phone[:2] + "******" + phone[-2:])

    async def check_code(self, challenge_id: str, code: str) -> bool:
        await self._enter("check_code", (challenge_id,))
        sent = self.codes.get(challenge_id)
        if sent is None or sent[1] != code:
            return False
        del self.codes[challenge_id]
        return True

    async def check(self) -> None:
        await self._enter("check", ())
        if not self.healthy:
            raise self.check_error or UpstreamUnavailable()

    async def close(self) -> None:
        self.closed = True


def _partial_date(value: str) -> date:
    parts = [int(part) for part in value.split("-")]
    return date(
        parts[0],
        parts[1] if len(parts) > 1 else 7,
        parts[2] if len(parts) > 2 else (15 if len(parts) == 2 else 1),
    )


def _stats_facts(
    record: ResidentRecord, households: Mapping[str, Household], as_of: date
) -> dict[str, Any] | None:
    """What statistics read of a record, or None when the resident is not alive at ``as_of``."""
    f = record.fields
    born = _partial_date(f["date_of_birth"])
    died = f["date_of_death"]
    if born > as_of or (died is not None and _partial_date(died) <= as_of):
        return None
    home = next((f[key] for key in RESIDENCE_FIELDS if f.get(key)), None)
    if home is None:
        return None
    age = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
    bands, groups = STATS_VALUES["age_band"], STATS_VALUES["age_group"]
    household = households.get(f["household_id"]) if f["household_id"] else None
    size = len(household.members) if household is not None else 1
    status = (
        "permanent"
        if home == f["permanent_address"]
        else "temporary"
        if home == f["temporary_address"]
        else "other"
    )
    return {
        "province": home["province_code"],
        "ward": home["ward_code"],
        "ward_name": home["ward_name"],
        "age": age,
        "age_band": bands[min(age // 5, len(bands) - 1)],
        "age_group": groups[sum(age > top for top in (5, 10, 14, 17, 59))],
        "sex": f["gender"],
        "ethnicity": f["ethnicity"]["code"],
        "ethnicity_name": f["ethnicity"]["name"],
        "residence_status": status,
        "household_size": str(size) if size < 6 else "6+",
        "marital_status": f["marital_status"] or "unknown",
    }


def _counted(facts: Mapping[str, Any], q: PopulationQuery) -> bool:
    age: int = facts["age"]
    return (
        facts["province"] == q.province
        and (q.wards is None or facts["ward"] in q.wards)
        and (q.sex is None or facts["sex"] == q.sex)
        and (q.age_min is None or age >= q.age_min)
        and (q.age_max is None or age <= q.age_max)
        and (q.ethnicity is None or facts["ethnicity"] in q.ethnicity)
        and (q.residence_status is None or facts["residence_status"] in q.residence_status)
    )
