"""Households of synthetic residents, one chunk at a time.

A chunk is a pure function of (seed, chunk index, as-of date, home provinces): the same inputs give the
same residents byte for byte, whichever process generates them and in whatever order chunks finish.
Everything is relative to ``as_of``, never to today. Household members are generated together so that
ages, family names, relations and cross-references agree; deceased parents and spouses are separate
records (no residence, no household) that the living ones point to.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Literal

import orjson

from mock_csdlqg.generator import data
from mock_csdlqg.generator.ids import IdAllocator
from mock_csdlqg.statistics import StatsChunk, StatsRow, pack, record_keys, stats_row
from vnid import (
    LEGACY_PROVINCES,
    PROVINCES_2025,
    LegacyProvince,
    canonical_tones,
    folded_key,
    legacy_codes_of,
    wards_of,
)

Sex = Literal["male", "female"]
ResidentRow = tuple[str, str | None, str, bytes]
"""(personal ID, household code, 2025 province of residence, wire JSON)."""
HouseholdRow = tuple[str, bytes]

HOME_SHARE = 0.8
NATIVE_SHARE = 0.8
"""How many people born before the reform were registered at birth in a legacy province of where they live."""
REFORM_DAY = date(2025, 7, 1)
CARD_START = date(2016, 1, 1)
CAN_CUOC_START = date(2024, 7, 1)
CMND12_START = date(2012, 1, 1)
DAYS_PER_YEAR = 365.2425
CCCD_ISSUER = "Cục Cảnh sát quản lý hành chính về trật tự xã hội"
CAN_CUOC_ISSUER = "Bộ Công an"
MIGRANT_DESTINATIONS = ("79", "01", "75", "24", "48", "31")


@dataclass(frozen=True, slots=True)
class PopulationSpec:
    seed: int
    as_of: date
    home_provinces: tuple[str, ...]


class _Weighted:
    """Weighted choice by bisecting a cumulative table (much faster than ``random.choices`` per call)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, weights: dict[str, float] | Sequence[tuple[Any, float]]) -> None:
        pairs = list(weights.items()) if isinstance(weights, dict) else list(weights)
        self._items = [item for item, _ in pairs]
        self._cum = list(itertools.accumulate(weight for _, weight in pairs))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> Any:
        return self._items[bisect.bisect_right(self._cum, rng.random() * self._total)]


@cache
def _tables(home: tuple[str, ...]) -> _Tables:
    return _Tables(home)


class _Tables:
    """Per-home-province lookup tables, built once per process."""

    def __init__(self, home: tuple[str, ...]) -> None:
        new_pop: dict[str, float] = {}
        for code, pop in data.LEGACY_POPULATION.items():
            new_code = LEGACY_PROVINCES[code].new_code
            new_pop[new_code] = new_pop.get(new_code, 0.0) + pop
        self.nationwide = _Weighted(new_pop)
        self.home = _Weighted({code: new_pop[code] for code in home})
        self.legacy_nationwide = _Weighted(data.LEGACY_POPULATION)
        self.legacy_of = {
            new: _Weighted({old: data.LEGACY_POPULATION[old] for old in legacy_codes_of(new)})
            for new in new_pop
        }
        self.wards = {new: wards_of(new) for new in new_pop}
        self.ethnic = {
            new: _Weighted([*mix.items(), ("01", 1.0 - sum(mix.values()))])
            for new, mix in data.ETHNIC_MIX.items()
        }
        self.religion = {eth: _Weighted(mix) for eth, mix in data.RELIGION_MIX.items()}
        self.kinh_family = _Weighted(data.KINH_FAMILY)
        self.adult_age = _Weighted([(age, w) for age, w in data.AGE_BANDS.items() if age >= 20])
        self.blood = _Weighted({"O": 42.0, "B": 30.0, "A": 22.0, "AB": 6.0})
        self.province_label = {
            code: (p.name, p.name if p.kind != "tỉnh" else f"Tỉnh {p.name}")
            for code, p in PROVINCES_2025.items()
        }


class Person:
    """One generated resident while its household is being built."""

    __slots__ = (
        "birth",
        "children",
        "death",
        "eth",
        "family",
        "father",
        "father_name",
        "hometown",
        "marital",
        "mother",
        "mother_name",
        "name",
        "pid",
        "precision",
        "previous",
        "reg_code",
        "relation",
        "sex",
        "spouse",
    )

    def __init__(self, sex: Sex, birth: date, eth: str) -> None:
        self.sex: Sex = sex
        self.birth = birth
        self.eth = eth
        self.precision = "day"
        self.name = ""
        self.family = ""
        self.pid = ""
        self.previous: list[str] = []
        self.reg_code = ""
        self.hometown = ""
        self.relation: str | None = None
        self.marital: str | None = None
        self.death: date | None = None
        self.father: Person | None = None
        self.mother: Person | None = None
        self.father_name: str | None = None
        self.mother_name: str | None = None
        self.spouse: Person | None = None
        self.children: list[Person] = []


@dataclass(slots=True)
class _Home:
    """A household as it is built: where, the ethnicity it is drawn from, its records so far, and the most
    records it may have (``budget``, what is left of the chunk)."""

    province: str
    eth: str
    budget: int
    members: list[Person] = field(default_factory=list)
    deceased: list[Person] = field(default_factory=list)

    @property
    def room(self) -> int:
        """How many more records the household may have."""
        return self.budget - len(self.members) - len(self.deceased)


class ChunkGenerator:
    """Generates exactly ``size`` residents (households plus their deceased relatives) for one chunk."""

    def __init__(self, spec: PopulationSpec, chunk: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"dancu:{spec.seed}:{chunk}")
        self.ids = IdAllocator(chunk)
        self.t = _tables(spec.home_provinces)
        self.as_of = spec.as_of
        self.as_of_ord = spec.as_of.toordinal()
        self.residents: list[ResidentRow] = []
        self.households: list[HouseholdRow] = []
        # Record keys come from a stream of their own: the records are what they were before keys existed.
        self.keys = record_keys(spec.seed, str(chunk))
        self.stats: list[StatsRow] = []

    # ----------------------------------------------------------------------------------------- helpers
    # random.choice/randint cost ~1.5 µs each through _randbelow; indexing by random() is 5x cheaper and
    # just as deterministic. Biases of order 2**-53 do not matter to synthetic data.
    def _choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.random() * len(seq))]

    def _randint(self, lo: int, hi: int) -> int:
        return lo + int(self.rng.random() * (hi - lo + 1))

    # ----------------------------------------------------------------------------------------- people
    def _birth(self, age: float) -> date:
        return date.fromordinal(self.as_of_ord - int((age + self.rng.random()) * DAYS_PER_YEAR) - 1)

    def _age(self, birth: date) -> int:
        a = self.as_of
        return a.year - birth.year - ((a.month, a.day) < (birth.month, birth.day))

    def _name(self, person: Person, family: str | None) -> None:
        """Give a name in the person's naming system; ``family`` is the inherited family or clan name."""
        rng, eth, male = self.rng, person.eth, person.sex == "male"
        if eth == "10":  # Jrai: clan first
            clan = family or self._choice(data.JRAI_CLANS)
            given = self._choice(data.JRAI_GIVEN_MALE if male else data.JRAI_GIVEN_FEMALE)
            person.family, person.name = clan, f"{clan} {given}"
        elif eth == "12":  # Ê Đê: clan last
            clan = family or self._choice(data.EDE_CLANS)
            given = self._choice(data.EDE_GIVEN_MALE if male else data.EDE_GIVEN_FEMALE)
            person.family, person.name = clan, f"{given} {clan}"
        elif eth == "13":  # Bahnar
            fam = family or self._choice(data.BAHNAR_FAMILY)
            person.family = fam
            person.name = f"{fam} {'Văn' if male else 'Thị'} {self._choice(data.BAHNAR_GIVEN)}"
        else:
            if family:
                fam = family
            elif eth in data.MINORITY_FAMILY:
                fam = self._choice(data.MINORITY_FAMILY[eth])
            else:
                fam = self.t.kinh_family.pick(rng)
            middle = self._choice(data.MIDDLE_MALE if male else data.MIDDLE_FEMALE)
            if not male and rng.random() < 0.12:
                middle = f"{middle} {self._choice(('Thu', 'Ngọc', 'Kim', 'Bích', 'Minh'))}"
            given = self._choice(data.GIVEN_MALE if male else data.GIVEN_FEMALE)
            person.family, person.name = fam, f"{fam} {middle} {given}"
        if rng.random() < 0.25:  # registries hold both tone placements (hòa / hoà)
            person.name = canonical_tones(person.name, "new")

    def _person(
        self, sex: Sex, age: float, eth: str, family: str | None, province: str, native: float
    ) -> Person:
        person = Person(sex, self._birth(age), eth)
        self._name(person, family)
        rng = self.rng
        if person.birth >= REFORM_DAY:
            person.reg_code = "0" + province  # births after the reform: "0" + 2025 code (docs/mock-csdlqg.md)
        elif rng.random() < native:
            person.reg_code = self.t.legacy_of[province].pick(rng)
        else:
            person.reg_code = self.t.legacy_nationwide.pick(rng)
        person.hometown = (
            person.reg_code if person.birth < REFORM_DAY else self.t.legacy_of[province].pick(rng)
        )
        if person.birth.year < 1950 and rng.random() < 0.2:
            person.precision = "year" if rng.random() < 0.75 else "month"
        return person

    def _marry(self, a: Person, b: Person) -> None:
        a.spouse, b.spouse = b, a
        a.marital = b.marital = "da_ket_hon"

    def _child_of(self, child: Person, father: Person | None, mother: Person | None) -> None:
        child.father, child.mother = father, mother
        for parent in (father, mother):
            if parent is not None:
                parent.children.append(child)

    def _inherited(self, eth: str, father: Person | None, mother: Person | None) -> str | None:
        parent = mother if eth in data.MATRILINEAL else father
        return parent.family if parent is not None else None

    # ------------------------------------------------------------------------------------- households
    # The steps below draw from ``self.rng`` in a fixed order: the population of a seed depends on it
    # (tests/mock_csdlqg/test_generator.py pins one), so a change of order is a change of population.
    def household(self, budget: int) -> tuple[list[Person], list[Person], str]:
        """Build one household of at most ``budget`` records: (members, deceased relatives, province)."""
        home = self._home(budget)
        kind = self.rng.random()
        if budget == 1 or kind < 0.13:
            self._living_alone(home)
        else:
            self._family(home, kind)
        return home.members, home.deceased, home.province

    def _home(self, budget: int) -> _Home:
        """Where the household lives and the ethnicity it is drawn from."""
        rng, t = self.rng, self.t
        province = t.home.pick(rng) if rng.random() < HOME_SHARE else t.nationwide.pick(rng)
        mix = t.ethnic.get(province)
        return _Home(province, mix.pick(rng) if mix is not None else "01", budget)

    def _new(
        self, home: _Home, sex: Sex, age: float, family: str | None = None, ethnic: str | None = None
    ) -> Person:
        """A person of ``home``'s province (of its ethnicity unless ``ethnic`` says otherwise)."""
        return self._person(sex, age, ethnic or home.eth, family, home.province, NATIVE_SHARE)

    def _living_alone(self, home: _Home) -> None:
        """One person living alone; an older one is often widowed, the late spouse on record."""
        rng = self.rng
        age = self.t.adult_age.pick(rng) + rng.random() * 5
        head = self._new(home, "male" if rng.random() < 0.45 else "female", age)
        head.relation = "chu_ho"
        home.members.append(head)
        if age >= 60 and rng.random() < 0.6:
            head.marital = "goa"
            if home.budget >= 2:
                late = self._new(home, "female" if head.sex == "male" else "male", age + rng.uniform(-3, 6))
                late.marital = "da_ket_hon"
                late.death = self._death(late)
                late.spouse, head.spouse = head, late
                home.deceased.append(late)
        else:
            head.marital = "ly_hon" if age > 30 and rng.random() < 0.15 else "doc_than"

    def _family(self, home: _Home, kind: float) -> None:
        """A couple; unless ``kind`` makes it just the two, their children (one parent may have died or
        left), sometimes a widowed parent of the head living in; then the head's parents named."""
        husband, wife, head = self._couple(home, kind)
        if kind < 0.25 or home.budget == 2:
            return
        wife_age = self._age(wife.birth)
        single_parent = kind > 0.90
        if single_parent:
            head = self._one_parent_left(home, husband, wife)
        self._children(home, husband, wife, wife_age)
        self._widowed_parent_lives_in(home, head, may=not single_parent)
        self._parents_of_head(head, home)

    def _couple(self, home: _Home, kind: float) -> tuple[Person, Person, Person]:
        """A married couple, both members: (husband, wife, head)."""
        rng, eth = self.rng, home.eth
        husband_age = 22 + rng.random() * 58
        if kind < 0.73 and home.budget >= 3:  # parents and children, sometimes a grandparent
            husband_age = 24 + rng.random() * 46
        husband = self._new(home, "male", husband_age)
        wife_eth = eth if eth in data.MATRILINEAL or rng.random() < 0.95 else "01"
        wife = self._new(home, "female", max(18.0, husband_age - rng.uniform(-2, 7)), ethnic=wife_eth)
        while wife.family == husband.family and eth in data.MATRILINEAL:
            self._name(wife, None)
        self._marry(husband, wife)
        head, partner = (husband, wife) if rng.random() < 0.82 else (wife, husband)
        head.relation, partner.relation = "chu_ho", "vo_chong"
        home.members += (head, partner)
        return husband, wife, head

    def _one_parent_left(self, home: _Home, husband: Person, wife: Person) -> Person:
        """The other parent died (on record) or left after a divorce; the one who stayed is the head."""
        rng = self.rng
        head = wife if rng.random() < 0.8 else husband
        head.relation = "chu_ho"
        other = husband if head is wife else wife
        if rng.random() < 0.5 and home.budget >= 3:
            head.marital, other.marital = "goa", "da_ket_hon"
            other.death = self._death(other)
            other.relation = None
            home.deceased.append(other)
        else:
            head.marital = "ly_hon"
            head.spouse = other.spouse = None
            other.marital = "ly_hon"
        home.members = [head]
        return head

    def _children(self, home: _Home, husband: Person, wife: Person, wife_age: int) -> None:
        """The couple's children; at most one married child lives in with their own family."""
        rng = self.rng
        n_children = 1 + int(rng.random() * (4 if wife_age > 45 else 3))
        married_in = False
        for _ in range(n_children):
            child_age = wife_age - rng.uniform(19, 40)
            if child_age < 0 or home.room <= 0:
                continue
            sex: Sex = "male" if rng.random() < 0.512 else "female"
            child = self._new(home, sex, child_age, self._inherited(home.eth, husband, wife), home.eth)
            # only parents who are records themselves are referenced by ID; a parent who left is named
            on_record = [*home.members, *home.deceased]
            father = husband if any(m is husband for m in on_record) else None
            mother = wife if any(m is wife for m in on_record) else None
            self._child_of(child, father, mother)
            if father is None:
                child.father_name = husband.name
            if mother is None:
                child.mother_name = wife.name
            if child_age >= 22 and not married_in and rng.random() < 0.45 and home.room >= 3:
                self._married_child_lives_in(home, child, child_age)
                married_in = True
                continue
            child.relation = "con"
            child.marital = "doc_than" if child_age >= 16 or rng.random() < 0.5 else None
            home.members.append(child)

    def _married_child_lives_in(self, home: _Home, child: Person, child_age: float) -> None:
        """A married child with their spouse and children: three generations under one roof."""
        rng = self.rng
        child.relation = "con"
        if child.sex == "male":
            in_law = self._new(home, "female", max(18.0, child_age - rng.uniform(-2, 6)), None, home.eth)
            in_law.relation = "con_dau"
        else:
            in_law = self._new(home, "male", child_age + rng.uniform(-1, 7), None, home.eth)
            in_law.relation = "con_re"
        self._marry(child, in_law)
        home.members += (child, in_law)
        young_mother = child if child.sex == "female" else in_law
        young_father = in_law if child.sex == "female" else child
        ym_age = self._age(young_mother.birth)
        for _ in range(1 + int(rng.random() * 2)):
            g_age = ym_age - rng.uniform(19, 32)
            if g_age < 0 or home.room <= 0:
                continue
            g_sex: Sex = "male" if rng.random() < 0.512 else "female"
            grandchild = self._new(home, g_sex, g_age, self._inherited(home.eth, young_father, young_mother))
            grandchild.relation = "chau"
            grandchild.marital = "doc_than" if g_age >= 1 else None
            self._child_of(grandchild, young_father, young_mother)
            home.members.append(grandchild)

    def _widowed_parent_lives_in(self, home: _Home, head: Person, *, may: bool) -> None:
        """Sometimes the head's widowed parent lives in (never with a single parent)."""
        rng = self.rng
        parent_age = self._age(head.birth) + rng.uniform(20, 35)  # drawn whether or not one lives in
        if not may or parent_age >= 96 or rng.random() >= 0.2 or home.room <= 0:
            return
        parent_sex: Sex = "female" if rng.random() < 0.7 else "male"
        inherited = head.family if (parent_sex == "male") != (home.eth in data.MATRILINEAL) else None
        elder = self._new(home, parent_sex, parent_age, inherited)
        elder.relation, elder.marital = "cha_me", "goa"
        if parent_sex == "male":
            head.father = elder
        else:
            head.mother = elder
        elder.children.append(head)
        home.members.append(elder)

    def _parents_of_head(self, head: Person, home: _Home) -> None:
        """Name the head's parents; some died recently enough to be on record."""
        rng = self.rng
        head_age = self._age(head.birth)
        matrilineal = head.eth in data.MATRILINEAL
        for parent_sex in ("male", "female"):
            if (head.father if parent_sex == "male" else head.mother) is not None:
                continue
            inherited = head.family if (parent_sex == "male") != matrilineal else None
            if head_age >= 40 and rng.random() < 0.15 and home.room > 0:
                parent = self._new(home, parent_sex, min(104.0, head_age + rng.uniform(20, 35)), inherited)
                parent.marital = "goa" if rng.random() < 0.5 else "da_ket_hon"
                parent.death = self._death(parent)
                parent.children.append(head)
                home.deceased.append(parent)
                if parent_sex == "male":
                    head.father = parent
                else:
                    head.mother = parent
            else:
                scratch = Person(parent_sex, head.birth, head.eth)
                self._name(scratch, inherited)
                if parent_sex == "male":
                    head.father_name = scratch.name
                else:
                    head.mother_name = scratch.name

    def _death(self, person: Person) -> date:
        """A death within the last nine years (the database holds those who had an ID), at 30 or older."""
        earliest = max(self.as_of_ord - 9 * 365, person.birth.toordinal() + 30 * 365)
        latest = self.as_of_ord - 2
        if earliest >= latest:
            earliest = latest - 1
        return date.fromordinal(self._randint(earliest, latest))

    # ------------------------------------------------------------------------------------------- run
    def run(self, size: int) -> tuple[list[ResidentRow], list[HouseholdRow]]:
        produced = 0
        while produced < size:
            members, deceased, province = self.household(size - produced)
            for person in itertools.chain(members, deceased):
                self._assign_id(person)
            self._emit(members, deceased, province)
            produced += len(members) + len(deceased)
        return self.residents, self.households

    def _assign_id(self, person: Person) -> None:
        person.pid = self.ids.personal_id(person.reg_code, person.sex, person.birth.year)
        if self.rng.random() < 0.004 and person.birth.year > 1901 and person.birth < REFORM_DAY:
            # the ID was cancelled and re-issued after a birth-year keying error (Circular 59/2021 Art. 6)
            wrong_year = person.birth.year + (1 if self.rng.random() < 0.5 else -1)
            person.previous.append(self.ids.personal_id(person.reg_code, person.sex, wrong_year))

    # ---------------------------------------------------------------------------------------- records
    def _address(self, province: str, eth: str) -> dict[str, str]:
        rng = self.rng
        wards = self.t.wards[province]
        ward = wards[int(rng.random() * len(wards))]
        if ward.kind == "phường":
            detail = f"Số {self._randint(1, 320)} {self._choice(data.STREETS)}"
        elif eth in ("10", "13"):
            detail = f"Làng {self._choice(('Plei', 'Kon', 'Plơi'))} {self._choice(data.BAHNAR_GIVEN)}"
        elif eth == "12":
            detail = f"Buôn {self._choice(data.EDE_CLANS)}"
        else:
            detail = f"{self._choice(('Thôn', 'Xóm', 'Ấp', 'Tổ dân phố'))} {self._randint(1, 15)}"
        name, label = self.t.province_label[province]
        return {
            "maTinh": province,
            "tenTinh": name,
            "maXa": ward.code,
            "tenXa": ward.name,
            "chiTiet": detail,
            "diaChiDayDu": f"{detail}, {ward.name}, {label}",
        }

    def _place(self, code: str, reformed: bool, detail: str | None = None) -> dict[str, str]:
        return _place(code, reformed, detail)

    def _emit(self, members: list[Person], deceased: list[Person], province: str) -> None:
        rng = self.rng
        head = members[0]
        home = self._address(province, head.eth)
        no_permanent = len(members) == 1 and not deceased and rng.random() < 0.08
        ho = None if no_permanent else self.ids.household(province)
        file_number = None if ho is None else f"HS{ho}"
        for person in members:
            permanent: dict[str, str] | None = home
            temporary: dict[str, str] | None = None
            current: dict[str, str] | None = home
            absence: dict[str, str | None] | None = None
            age = self._age(person.birth)
            if no_permanent:
                permanent, temporary, current = None, home, home
            elif person is not head and 18 <= age <= 40 and rng.random() < 0.12:
                dest = self._choice(MIGRANT_DESTINATIONS)
                if dest == province:
                    dest = "79" if province != "79" else "01"
                temporary = current = self._address(dest, "01")
                if rng.random() < 0.6:
                    start = date.fromordinal(self.as_of_ord - self._randint(30, 900))
                    end = start + timedelta(days=self._choice((180, 365, 730)))
                    absence = {
                        "tuNgay": start.isoformat(),
                        "denNgay": end.isoformat(),
                        "lyDo": self._choice(data.ABSENCE_REASONS),
                        "noiDen": temporary["diaChiDayDu"],
                    }
            record = self._record(person, ho, file_number, permanent, temporary, current, absence)
            scope = (current or temporary or permanent or home)["maTinh"]
            self.residents.append((person.pid, ho, scope, orjson.dumps(record)))
            size = len(members) if ho is not None else 1
            self.stats.append(stats_row(record, size, self.keys.getrandbits(8)))
        for person in deceased:
            record = self._record(person, None, None, home, None, None, None)
            self.residents.append((person.pid, None, province, orjson.dumps(record)))
            self.stats.append(stats_row(record, 1, self.keys.getrandbits(8)))
        if ho is not None:
            self.households.append((ho, household_json(ho, home, members)))

    def _record(
        self,
        p: Person,
        ho: str | None,
        file_number: str | None,
        permanent: dict[str, str] | None,
        temporary: dict[str, str] | None,
        current: dict[str, str] | None,
        absence: dict[str, str | None] | None,
    ) -> dict[str, Any]:
        rng = self.rng
        alive = p.death is None
        age = self._age(p.birth)
        if p.precision == "year":
            dob = f"{p.birth.year:04d}"
        elif p.precision == "month":
            dob = f"{p.birth.year:04d}-{p.birth.month:02d}"
        else:
            dob = p.birth.isoformat()
        cmnd = None
        if p.birth.year <= 2001 and rng.random() < 0.7:  # 14 before cards replaced the CMND in 2016
            cmnd = self.ids.cmnd()
        nationality = ["VN"]
        if rng.random() < 0.002:
            nationality.append(self._choice(data.FOREIGN_NATIONALITIES))
        phone = email = None
        if alive and age >= 16 and rng.random() < 0.9:
            phone = f"{self._choice(data.MOBILE_PREFIXES)}{self._randint(0, 9_999_999):07d}"
            if age <= 55 and rng.random() < 0.35:
                handle = folded_key(p.name).replace(" ", "").replace("'", "")
                email = f"{handle}{p.birth.year % 100:02d}{self._randint(0, 99)}@{self._choice(data.EMAIL_DOMAINS)}"
        reformed = p.birth >= REFORM_DAY
        religion_mix = self.t.religion.get(p.eth, self.t.religion["default"])
        religion = religion_mix.pick(rng)
        updated = max(p.birth.toordinal(), self.as_of_ord - self._randint(1, 1100))
        if p.death is not None:
            updated = max(updated, p.death.toordinal())
        updated_at = datetime.combine(date.fromordinal(updated), datetime.min.time()) + timedelta(
            seconds=self._randint(0, 86_399)
        )
        return {
            "soDinhDanh": p.pid,
            "hoVaTen": p.name,
            "tenGoiKhac": [self._choice(("Tư", "Út", "Bé", "Hai", "Ba", "Tèo"))]
            if rng.random() < 0.02
            else [],
            "ngaySinh": dob,
            "gioiTinh": "Nam" if p.sex == "male" else "Nữ",
            "noiSinh": self._place(
                p.reg_code, reformed, self._choice(("Bệnh viện đa khoa", "Trạm y tế", "Tại nhà"))
            )
            if p.precision == "day"
            else None,
            "noiDangKyKhaiSinh": self._place(p.reg_code, reformed),
            "queQuan": self._place(p.hometown, False),
            "danToc": {"ma": p.eth, "ten": data.ETHNICITIES[p.eth]},
            "tonGiao": {"ma": religion, "ten": data.RELIGIONS[religion]},
            "quocTich": nationality,
            "nhomMau": self.t.blood.pick(rng) if rng.random() < 0.35 else None,
            "soCmnd": cmnd,
            "soDinhDanhCu": p.previous,
            "theCanCuoc": self._cards(p, cmnd is not None),
            "thanNhan": _relatives(p),
            "noiThuongTru": permanent,
            "noiTamTru": temporary,
            "noiOHienTai": current,
            "tamVang": absence,
            "soHoSoCuTru": file_number,
            "tinhTrangHonNhan": p.marital,
            "maHo": ho,
            "quanHeVoiChuHo": p.relation if ho is not None else None,
            "ngayMat": p.death.isoformat() if p.death is not None else None,
            "soDienThoai": phone,
            "email": email,
            "capNhatLuc": updated_at.isoformat() + "Z",
        }

    def _cards(self, p: Person, had_cmnd: bool) -> list[dict[str, str | None]]:
        """Cards on record: CCCD (2016 to June 2024), căn cước since July 2024, rarely a 12-digit CMND."""
        rng = self.rng
        fourteen = _add_years(p.birth, 14)
        end = (p.death or self.as_of).toordinal() - 1
        start = max(fourteen, CARD_START).toordinal()
        cards: list[dict[str, str | None]] = []
        if had_cmnd and rng.random() < 0.05:
            issued = date.fromordinal(self._randint(CMND12_START.toordinal(), CARD_START.toordinal() - 1))
            if issued >= fourteen:
                cards.append(self._card("cmnd12", p, issued))
        if start < end and rng.random() < 0.93:
            issued = date.fromordinal(self._randint(start, end))
            cards.append(self._card("can_cuoc" if issued >= CAN_CUOC_START else "cccd", p, issued))
        return cards

    def _card(self, kind: str, p: Person, issued: date) -> dict[str, str | None]:
        if kind == "cmnd12":
            legacy = LEGACY_PROVINCES[p.reg_code]
            issuer = f"Công an {'thành phố' if legacy.kind == 'thành phố' else 'tỉnh'} {legacy.name}"
            expires: date | None = _add_years(issued, 15)
        else:
            issuer = CAN_CUOC_ISSUER if kind == "can_cuoc" else CCCD_ISSUER
            expires = None
            for milestone in (25, 40, 60):
                birthday = _add_years(p.birth, milestone)
                if birthday > _add_years(issued, 2):  # a card made within two years of a milestone skips it
                    expires = birthday
                    break
        return {
            "loai": kind,
            "so": p.pid,
            "ngayCap": issued.isoformat(),
            "noiCap": issuer,
            "ngayHetHan": expires.isoformat() if expires is not None else None,
        }


@cache
def _place(code: str, reformed: bool, detail: str | None) -> dict[str, str]:
    """A place in the units it was recorded in: legacy ones, or the 2025 province for later births.

    Cached and shared between records (never mutated): serialisation is all that happens to it.
    """
    if reformed:
        p = PROVINCES_2025[code[1:]]
        name, text = p.name, (p.name if p.kind != "tỉnh" else f"Tỉnh {p.name}")
    else:
        legacy = LEGACY_PROVINCES[code]
        name, text = legacy.name, legacy_label(legacy)
    return {"maTinhCu": code, "tenTinhCu": name, "chiTiet": f"{detail}, {text}" if detail else text}


def legacy_label(legacy: LegacyProvince) -> str:
    """'Tỉnh Bình Định', 'Thành phố Hồ Chí Minh': the unit as a document would name it."""
    name = legacy.name.removeprefix("TP ")
    return f"Thành phố {name}" if legacy.kind == "thành phố" else f"Tỉnh {name}"


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _relatives(p: Person) -> list[dict[str, str | None]]:
    out: list[dict[str, str | None]] = []
    for relation, person, name in (("cha", p.father, p.father_name), ("me", p.mother, p.mother_name)):
        if person is not None:
            out.append(
                {"quanHe": relation, "soDinhDanh": person.pid, "hoVaTen": person.name, "quocTich": "VN"}
            )
        elif name is not None:
            out.append({"quanHe": relation, "hoVaTen": name, "quocTich": "VN"})
    if p.spouse is not None:
        out.append(
            {"quanHe": "vo_chong", "soDinhDanh": p.spouse.pid, "hoVaTen": p.spouse.name, "quocTich": "VN"}
        )
    for child in p.children:
        out.append({"quanHe": "con", "soDinhDanh": child.pid, "hoVaTen": child.name, "quocTich": "VN"})
    return out


def household_json(ho: str, address: dict[str, str] | None, members: list[Person]) -> bytes:
    """The household record the mock serves at ``GET /api/v1/households/{maHo}``."""
    head = members[0]
    return orjson.dumps(
        {
            "maHo": ho,
            "chuHo": {"soDinhDanh": head.pid, "hoVaTen": head.name, "quanHeVoiChuHo": "chu_ho"},
            "diaChi": address,
            "thanhVien": [
                {"soDinhDanh": m.pid, "hoVaTen": m.name, "quanHeVoiChuHo": m.relation or "khac"}
                for m in members
            ],
        }
    )


def generate_chunk(
    spec: PopulationSpec, chunk: int, size: int
) -> tuple[list[ResidentRow], list[HouseholdRow]]:
    """Generate one chunk: a pure function of its arguments (run in worker processes)."""
    return ChunkGenerator(spec, chunk).run(size)


def generate_chunk_with_stats(
    spec: PopulationSpec, chunk: int, size: int
) -> tuple[list[ResidentRow], list[HouseholdRow], StatsChunk]:
    """``generate_chunk`` plus the chunk's statistics rows, packed by province (mock_csdlqg.statistics)."""
    generator = ChunkGenerator(spec, chunk)
    residents, households = generator.run(size)
    return residents, households, pack(generator.stats)
