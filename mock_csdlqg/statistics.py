"""Raw population aggregates: per cell of up to three dimensions, the count and the sum of record keys.

Every resident has a **record key**, a fixed random integer in 0..255 drawn from the seed when seeding
(a separate random stream, so the records themselves are exactly what they were without it). The key never
leaves the database: the aggregate answers only a cell's count and the sum of its members' keys, from which
a caller applying the cell-key method derives the cell key (sum mod 256).

Storage (built while seeding, see ``mock_csdlqg.store``): table ``csdlqg_thong_ke`` holds, per 2025
province of residence, one row per column below, the column being a little-endian array with one entry per
resident of that province (deceased ones included: whether a resident counts depends on ``as_of``):

=========  =====  ==========================================================================================
column     type   meaning
=========  =====  ==========================================================================================
xa         int32  ward code of the residence (current address, else temporary, else permanent)
sinh       int32  birth date as YYYYMMDD; a year-only date counts as 1 July, a month-only one as the 15th
mat        int32  date of death as YYYYMMDD, 99999999 when alive
gioi       int8   0 Nam, 1 Nữ
dan_toc    int8   GSO ethnic code (1..54)
cu_tru     int8   0 lives at the permanent address, 1 at a registered temporary address, 2 other
ho         int8   members of the resident's household (1 without a household)
hon_nhan   int8   0 doc_than, 1 da_ket_hon, 2 ly_hon, 3 goa, 4 not recorded
khoa       uint8  the record key
=========  =====  ==========================================================================================

A query loads its province's columns once (a few megabytes for a million residents) and aggregates with
numpy: a mask for who counts, one small integer code per dimension, one ``bincount`` for the counts and one
for the key sums. Residents counted: alive at ``as_of`` (born on or before it, dead after it, if at all),
residence in the province (and in ``wards`` when given). Ages are completed years at ``as_of``.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mock_csdlqg.generator.data import ETHNICITIES
from mock_csdlqg.store import ResidentStore
from mock_csdlqg.wire import ThongKeRequest
from vnid import PROVINCES_2025, wards_of

RECORD_KEY_RANGE: Final = 256
ALIVE: Final = 99_999_999

COLUMNS: Final = ("xa", "sinh", "mat", "gioi", "dan_toc", "cu_tru", "ho", "hon_nhan", "khoa")
_TYPECODES: Final = {
    "xa": "i",
    "sinh": "i",
    "mat": "i",
    "gioi": "b",
    "dan_toc": "b",
    "cu_tru": "b",
    "ho": "b",
    "hon_nhan": "b",
    "khoa": "B",
}
_DTYPES: Final = {"i": "<i4", "b": "i1", "B": "u1"}

MARITAL: Final = ("doc_than", "da_ket_hon", "ly_hon", "goa", "chua_ro")
RESIDENCE: Final = ("thuong_tru", "tam_tru", "khac")
SEX: Final = ("Nam", "Nữ")
AGE_BANDS: Final = (*(f"{lo}-{lo + 4}" for lo in range(0, 85, 5)), "85+")
AGE_GROUPS: Final = ("0-5", "6-10", "11-14", "15-17", "18-59", "60+")
HOUSEHOLD_SIZES: Final = ("1", "2", "3", "4", "5", "6+")
DIMENSIONS: Final = ("xa", "doTuoi", "nhomTuoi", "gioiTinh", "danToc", "cuTru", "quyMoHo", "honNhan")
MAX_DIMENSIONS: Final = 3
MAX_WARDS: Final = 200

_AGE_GROUP_LUT = np.array(
    [0] * 6 + [1] * 5 + [2] * 4 + [3] * 3 + [4] * 42 + [5] * 200, dtype=np.int32
)  # index: age in years (0..259)

StatsRow = tuple[str, int, int, int, int, int, int, int, int, int]
"""(province, ward, birth, death, sex, ethnicity, residence, household size, marital, record key)."""
StatsChunk = dict[str, dict[str, bytes]]
"""Province -> column -> packed column bytes: one chunk's rows, columnar (built in the worker)."""


# ------------------------------------------------------------------------------------- while seeding


def _yyyymmdd(value: str) -> int:
    """A wire date (YYYY, YYYY-MM or YYYY-MM-DD) as YYYYMMDD; year only -> 1 July, month only -> the 15th."""
    parts = value.split("-")
    year = int(parts[0])
    month = int(parts[1]) if len(parts) > 1 else 7
    day = int(parts[2]) if len(parts) > 2 else (15 if len(parts) == 2 else 1)
    return year * 10_000 + month * 100 + day


def stats_row(record: Mapping[str, Any], household_size: int, key: int) -> StatsRow:
    """What the statistics table keeps of one wire record (the same function for generated and personas)."""
    current, temporary, permanent = record["noiOHienTai"], record["noiTamTru"], record["noiThuongTru"]
    address = current or temporary or permanent
    if permanent is not None and address == permanent:
        residence = 0
    elif temporary is not None and address == temporary:
        residence = 1
    else:
        residence = 2
    marital = record["tinhTrangHonNhan"]
    death = record["ngayMat"]
    return (
        address["maTinh"],
        int(address["maXa"]),
        _yyyymmdd(record["ngaySinh"]),
        ALIVE if death is None else _yyyymmdd(death),
        0 if record["gioiTinh"] == "Nam" else 1,
        int(record["danToc"]["ma"]),
        residence,
        max(1, household_size),
        MARITAL.index(marital) if marital is not None else 4,
        key,
    )


def pack(rows: Iterable[StatsRow]) -> StatsChunk:
    """Rows grouped by province into packed columns (cheap to ship between processes and to concatenate)."""
    by_province: dict[str, list[array[int]]] = {}
    for row in rows:
        cols = by_province.get(row[0])
        if cols is None:
            cols = by_province[row[0]] = [array(_TYPECODES[name]) for name in COLUMNS]
        for col, value in zip(cols, row[1:], strict=True):
            col.append(value)
    return {
        province: {name: col.tobytes() for name, col in zip(COLUMNS, cols, strict=True)}
        for province, cols in by_province.items()
    }


def record_keys(seed: int, stream: str) -> random.Random:
    """The random stream record keys are drawn from: separate from the one that makes the records."""
    return random.Random(f"dancu:record-key:{seed}:{stream}")  # noqa: S311 - synthetic data


class StatsBuilder:
    """Collects packed chunks per province while seeding; ``columns()`` gives what the table stores."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, list[bytes]]] = {}

    def add(self, chunk: StatsChunk) -> None:
        for province, cols in chunk.items():
            parts = self._parts.setdefault(province, {name: [] for name in COLUMNS})
            for name, blob in cols.items():
                parts[name].append(blob)

    def rows(self) -> list[tuple[str, str, bytes]]:
        """``(province, column, bytes)`` rows for ``csdlqg_thong_ke``."""
        return [
            (province, name, b"".join(parts[name]))
            for province, parts in sorted(self._parts.items())
            for name in COLUMNS
        ]


# -------------------------------------------------------------------------------------- when querying


class StatsQueryError(ValueError):
    """A query the aggregate cannot answer; ``loc`` names the member (body-relative), ``code`` the problem."""

    def __init__(self, loc: tuple[str | int, ...], code: str) -> None:
        super().__init__(code)
        self.loc = loc
        self.code = code


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """One raw-aggregate question, in the mock's own terms (see ``wire.ThongKeRequest``)."""

    province: str
    as_of: date
    dimensions: tuple[str, ...] = ()
    wards: tuple[str, ...] | None = None
    sex: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    ethnicities: tuple[str, ...] | None = None
    residence: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    values: tuple[str, ...]
    count: int
    key_sum: int


class ProvinceColumns:
    """One province's statistics columns as numpy arrays, plus the small codes each dimension groups by."""

    def __init__(self, province: str, blobs: Mapping[str, bytes]) -> None:
        self.province = province
        arrays = {name: np.frombuffer(blobs[name], dtype=_DTYPES[_TYPECODES[name]]) for name in COLUMNS}
        self.size = len(arrays["khoa"])
        self.birth = arrays["sinh"]
        self.death = arrays["mat"]
        self.key = arrays["khoa"].astype(np.float64)  # bincount weights; sums stay exact below 2**53
        wards = wards_of(province)
        self.ward_codes = tuple(sorted(w.code for w in wards))
        self.ward_names = {w.code: w.name for w in wards}
        ward_ints = np.array([int(code) for code in self.ward_codes], dtype=np.int32)
        ward_index = np.searchsorted(ward_ints, arrays["xa"])
        if len(ward_ints) and (ward_index >= len(ward_ints)).any():
            raise ValueError("a resident lives in a ward unknown to vnid")
        # Codes as int32 over every resident: a query works on whole arrays (no gather of the selected rows).
        self.ward = ward_index.astype(np.int32)
        self.eth_codes = tuple(sorted(ETHNICITIES))  # "01".."54": index = code - 1
        self.eth = arrays["dan_toc"].astype(np.int32) - 1
        self.sex = arrays["gioi"].astype(np.int32)
        self.residence = arrays["cu_tru"].astype(np.int32)
        self.household = np.minimum(arrays["ho"].astype(np.int32), 6) - 1
        self.marital = arrays["hon_nhan"].astype(np.int32)
        self._dated: dict[int, tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]] = {}

    def dated(self, as_of: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
        """Who is alive at ``as_of`` (YYYYMMDD) and everyone's age then; the last few dates asked are kept."""
        found = self._dated.get(as_of)
        if found is None:
            alive = (self.birth <= as_of) & (self.death > as_of)
            age = np.maximum((as_of - self.birth) // 10_000, 0).astype(np.int32)
            if len(self._dated) >= 4:
                self._dated.pop(next(iter(self._dated)))
            found = self._dated[as_of] = (alive, age)
        return found


def check_query(query: StatsQuery, ward_codes: Sequence[str]) -> None:
    """Raise StatsQueryError for a query the aggregate refuses (members named as in the wire request)."""
    dims = query.dimensions
    if len(dims) > MAX_DIMENSIONS:
        raise StatsQueryError(("nhomTheo",), "too_many_dimensions")
    for i, dim in enumerate(dims):
        if dim not in DIMENSIONS:
            raise StatsQueryError(("nhomTheo", i), "unknown_dimension")
        if dim in dims[:i]:
            raise StatsQueryError(("nhomTheo", i), "repeated_dimension")
    if query.wards is not None:
        if len(query.wards) > MAX_WARDS:
            raise StatsQueryError(("maXa",), "too_many_wards")
        known = set(ward_codes)
        for i, code in enumerate(query.wards):
            if code not in known:
                raise StatsQueryError(("maXa", i), "ward_not_in_province")
    if query.sex is not None and query.sex not in SEX:
        raise StatsQueryError(("loc", "gioiTinh"), "unknown_value")
    if query.age_min is not None and query.age_max is not None and query.age_min > query.age_max:
        raise StatsQueryError(("loc", "tuoiTu"), "age_min_above_age_max")
    for i, code in enumerate(query.ethnicities or ()):
        if code not in ETHNICITIES:
            raise StatsQueryError(("loc", "danToc", i), "unknown_value")
    for i, value in enumerate(query.residence or ()):
        if value not in RESIDENCE:
            raise StatsQueryError(("loc", "cuTru", i), "unknown_value")


def aggregate(cols: ProvinceColumns, query: StatsQuery) -> list[Cell]:
    """Every non-empty cell of the query, in the order of its dimensions' codes.

    Whole-array work only: each resident gets the flat index of its cell (mixed radix over the dimensions'
    codes), those not counted get one index past the last, and two ``bincount`` calls give the counts and the
    key sums of every cell at once."""
    check_query(query, cols.ward_codes)
    as_of = query.as_of.year * 10_000 + query.as_of.month * 100 + query.as_of.day
    alive, age = cols.dated(as_of)
    mask = alive.copy()
    if query.wards is not None:
        wanted = np.zeros(len(cols.ward_codes), dtype=bool)
        position = {code: i for i, code in enumerate(cols.ward_codes)}
        wanted[[position[code] for code in query.wards]] = True
        mask &= wanted[cols.ward]
    if query.sex is not None:
        mask &= cols.sex == SEX.index(query.sex)
    if query.ethnicities is not None:
        wanted = np.zeros(len(cols.eth_codes), dtype=bool)
        wanted[[int(code) - 1 for code in query.ethnicities]] = True
        mask &= wanted[cols.eth]
    if query.residence is not None:
        wanted = np.zeros(len(RESIDENCE), dtype=bool)
        wanted[[RESIDENCE.index(value) for value in query.residence]] = True
        mask &= wanted[cols.residence]
    if query.age_min is not None:
        mask &= age >= query.age_min
    if query.age_max is not None:
        mask &= age <= query.age_max
    radix: list[tuple[str, tuple[str, ...]]] = []
    combined: npt.NDArray[np.int32] | None = None
    for dim in query.dimensions:
        codes, labels = _codes(cols, dim, age)
        combined = codes if combined is None else combined * len(labels) + codes
        radix.append((dim, labels))
    size = 1
    for _, labels in radix:
        size *= len(labels)
    if combined is None:
        combined = np.zeros(cols.size, dtype=np.int32)
    combined = np.where(mask, combined, size)  # the uncounted share one bin past the cells
    counts = np.bincount(combined, minlength=size + 1)[:size]
    sums = np.bincount(combined, weights=cols.key, minlength=size + 1)[:size]
    flat = np.flatnonzero(counts)
    columns: list[list[str]] = []
    rest = flat
    for _, labels in reversed(radix):  # the mixed-radix digits, last dimension first, for every cell at once
        rest, code = np.divmod(rest, len(labels))
        columns.append(np.array(labels, dtype=object)[code].tolist())
    columns.reverse()
    values = zip(*columns, strict=True) if columns else itertools.repeat((), len(flat))
    return [
        Cell(tuple(v), n, k)
        for v, n, k in zip(values, counts[flat].tolist(), sums[flat].astype(np.int64).tolist(), strict=True)
    ]


_AGE_BAND_LUT = np.minimum(np.arange(260) // 5, len(AGE_BANDS) - 1).astype(np.int32)


def _codes(
    cols: ProvinceColumns, dim: str, age: npt.NDArray[np.int32]
) -> tuple[npt.NDArray[np.int32], tuple[str, ...]]:
    if dim == "xa":
        return cols.ward, cols.ward_codes
    if dim == "doTuoi":
        return _AGE_BAND_LUT[np.minimum(age, len(_AGE_BAND_LUT) - 1)], AGE_BANDS
    if dim == "nhomTuoi":
        return _AGE_GROUP_LUT[np.minimum(age, len(_AGE_GROUP_LUT) - 1)], AGE_GROUPS
    if dim == "gioiTinh":
        return cols.sex, SEX
    if dim == "danToc":
        return cols.eth, cols.eth_codes
    if dim == "cuTru":
        return cols.residence, RESIDENCE
    if dim == "quyMoHo":
        return cols.household, HOUSEHOLD_SIZES
    if dim == "honNhan":
        return cols.marital, MARITAL
    raise StatsQueryError(("nhomTheo",), "unknown_dimension")  # pragma: no cover - checked before


def labels(
    cols: ProvinceColumns, cells: Sequence[Cell], dimensions: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Names for the coded values in the answer: wards and ethnic groups."""
    out: dict[str, dict[str, str]] = {}
    for i, dim in enumerate(dimensions):
        if dim == "xa":
            out["xa"] = {cell.values[i]: cols.ward_names[cell.values[i]] for cell in cells}
        elif dim == "danToc":
            out["danToc"] = {cell.values[i]: ETHNICITIES[cell.values[i]] for cell in cells}
    return out


class StatsEngine:
    """Answers ``POST /api/v1/statistics/population`` bodies from an open store; caches loaded provinces.

    The mock's route and the gateway's embedded backend both call ``answer`` with the wire body, so the two
    give the same answer to the same question.
    """

    def __init__(self, store: ResidentStore) -> None:
        self.store = store
        self._columns: dict[str, ProvinceColumns | None] = {}
        self._as_of: date | None = None

    async def dataset_date(self) -> date:
        if self._as_of is None:
            info = await self.store.info()
            self._as_of = date.fromisoformat(info.get("as_of", "2026-01-01"))
        return self._as_of

    async def columns(self, province: str) -> ProvinceColumns | None:
        if province not in self._columns:
            blobs = await self.store.stats_columns(province)
            self._columns[province] = ProvinceColumns(province, blobs) if blobs else None
        return self._columns[province]

    async def answer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A wire answer (``ThongKeResponse``) for a wire body; raises ``ValidationError`` or ``StatsQueryError``."""
        request = ThongKeRequest.model_validate(body)
        if request.maTinh not in PROVINCES_2025:
            raise StatsQueryError(("maTinh",), "unknown_province")
        loc = request.loc
        query = StatsQuery(
            province=request.maTinh,
            as_of=request.ngayTinh or await self.dataset_date(),
            dimensions=tuple(request.nhomTheo),
            wards=None if request.maXa is None else tuple(request.maXa),
            sex=loc.gioiTinh,
            age_min=loc.tuoiTu,
            age_max=loc.tuoiDen,
            ethnicities=None if loc.danToc is None else tuple(loc.danToc),
            residence=None if loc.cuTru is None else tuple(loc.cuTru),
        )
        cols = await self.columns(query.province)
        if cols is None:
            check_query(query, tuple(w.code for w in wards_of(query.province)))
            cells: list[Cell] = []
            names: dict[str, dict[str, str]] = {}
        else:
            cells = aggregate(cols, query)
            names = labels(cols, cells, query.dimensions)
        return {
            "maTinh": query.province,
            "ngayTinh": query.as_of.isoformat(),
            "nhomTheo": list(query.dimensions),
            "o": [{"giaTri": list(c.values), "soNguoi": c.count, "tongKhoa": c.key_sum} for c in cells],
            "nhan": names,
        }
