"""An independent count of residents, read straight from the mock's SQLite file (records and households).

Statistics tests check published counts against this, never against the code under test: it parses every
record's JSON, dates with ``datetime.date`` and dimensions from the contract's wording (docs/contract.md,
section 14), sharing nothing with ``mock_csdlqg.statistics`` but the file.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Person:
    province: str
    ward: str
    born: date
    died: date | None
    sex: str
    ethnicity: str
    residence_status: str
    household_size: int
    marital_status: str


def _partial(value: str) -> date:
    parts = [int(p) for p in value.split("-")]
    if len(parts) == 1:
        return date(parts[0], 7, 1)
    if len(parts) == 2:
        return date(parts[0], parts[1], 15)
    return date(*parts)


def read_people(path: str) -> list[Person]:
    """Every resident on record (deceased ones too) with what statistics group and filter by."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sizes = {
            ho: len(orjson.loads(blob)["thanhVien"])
            for ho, blob in conn.execute("SELECT ma_ho, ban_ghi FROM csdlqg_ho_gia_dinh")
        }
        people = []
        for (blob,) in conn.execute("SELECT ban_ghi FROM csdlqg_cong_dan"):
            r: dict[str, Any] = orjson.loads(blob)
            current, temporary, permanent = r["noiOHienTai"], r["noiTamTru"], r["noiThuongTru"]
            home = current or temporary or permanent
            if home == permanent:
                status = "permanent"
            elif home == temporary:
                status = "temporary"
            else:
                status = "other"
            people.append(
                Person(
                    province=home["maTinh"],
                    ward=home["maXa"],
                    born=_partial(r["ngaySinh"]),
                    died=date.fromisoformat(r["ngayMat"]) if r["ngayMat"] else None,
                    sex={"Nam": "male", "Nữ": "female"}[r["gioiTinh"]],
                    ethnicity=r["danToc"]["ma"],
                    residence_status=status,
                    household_size=sizes[r["maHo"]] if r["maHo"] else 1,
                    marital_status={
                        None: "unknown",
                        "doc_than": "single",
                        "da_ket_hon": "married",
                        "ly_hon": "divorced",
                        "goa": "widowed",
                    }[r["tinhTrangHonNhan"]],
                )
            )
        return people
    finally:
        conn.close()


def age_at(person: Person, day: date) -> int:
    born = person.born
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _age_band(age: int) -> str:
    if age >= 85:
        return "85+"
    low = age - age % 5
    return f"{low}-{low + 4}"


def _age_group(age: int) -> str:
    for top, name in ((5, "0-5"), (10, "6-10"), (14, "11-14"), (17, "15-17"), (59, "18-59")):
        if age <= top:
            return name
    return "60+"


def value_of(person: Person, dimension: str, day: date) -> str:
    """A dimension's value in the API's vocabulary (ward and ethnicity: the code)."""
    if dimension == "ward":
        return person.ward
    if dimension == "age_band":
        return _age_band(age_at(person, day))
    if dimension == "age_group":
        return _age_group(age_at(person, day))
    if dimension == "household_size":
        return str(person.household_size) if person.household_size < 6 else "6+"
    value: str = getattr(person, dimension)
    return value


def raw_counts(
    people: Iterable[Person],
    *,
    province: str,
    as_of: date,
    group_by: Sequence[str] = (),
    wards: Sequence[str] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> Counter[tuple[str, ...]]:
    """Residents alive at ``as_of`` living in the province (and wards), per combination of values."""
    f = filters or {}
    out: Counter[tuple[str, ...]] = Counter()
    for p in people:
        if p.province != province or p.born > as_of or (p.died is not None and p.died <= as_of):
            continue
        if wards is not None and p.ward not in wards:
            continue
        if f.get("sex") is not None and p.sex != f["sex"]:
            continue
        age = age_at(p, as_of)
        if f.get("age_min") is not None and age < f["age_min"]:
            continue
        if f.get("age_max") is not None and age > f["age_max"]:
            continue
        if f.get("ethnicity") is not None and p.ethnicity not in f["ethnicity"]:
            continue
        if f.get("residence_status") is not None and p.residence_status not in f["residence_status"]:
            continue
        out[tuple(value_of(p, d, as_of) for d in group_by)] += 1
    return out
