"""Seeding: generate chunks in worker processes, write them in chunk order, swap the data set in.

Chunks are independent and deterministic, so the content depends only on (seed, count, as-of date,
home provinces) and never on how many processes ran or which finished first: results are consumed in
chunk order, with a bounded number in flight so memory stays flat at any count.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from multiprocessing import get_context

import orjson

from mock_csdlqg.generator.ids import CHUNK_SIZE, MAX_COUNT, GenerationError
from mock_csdlqg.generator.population import (
    HouseholdRow,
    PopulationSpec,
    ResidentRow,
    generate_chunk_with_stats,
)
from mock_csdlqg.personas import persona_rows
from mock_csdlqg.statistics import StatsBuilder, StatsChunk, pack, record_keys, stats_row
from mock_csdlqg.store import open_writer
from vnid import PROVINCES_2025

DEFAULT_COUNT = 20_000
DEFAULT_SEED = 2025
DEFAULT_AS_OF = date(2026, 1, 1)
DEFAULT_PROVINCES = ("52",)
FORMAT_VERSION = "1"

Chunk = tuple[list[ResidentRow], list[HouseholdRow], StatsChunk]


@dataclass(frozen=True, slots=True)
class SeedReport:
    residents: int
    personas: int
    households: int
    seconds: float


def check_provinces(codes: tuple[str, ...]) -> tuple[str, ...]:
    """Validate 2025 province codes (two digits, one of the 34); returns them de-duplicated in order."""
    unique = tuple(dict.fromkeys(code.strip().zfill(2) for code in codes if code.strip()))
    unknown = [code for code in unique if code not in PROVINCES_2025]
    if not unique or unknown:
        raise GenerationError(f"unknown 2025 province code(s): {', '.join(unknown) or '(none given)'}")
    return unique


def _chunks(count: int) -> list[tuple[int, int]]:
    return [
        (index, min(CHUNK_SIZE, count - start)) for index, start in enumerate(range(0, count, CHUNK_SIZE))
    ]


def _generate(spec: PopulationSpec, count: int, workers: int) -> Iterator[Chunk]:
    plan = _chunks(count)
    if workers <= 1 or len(plan) <= 2:
        for index, size in plan:
            yield generate_chunk_with_stats(spec, index, size)
        return
    # fork: workers inherit the imported tables instead of re-importing them
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        pending: deque[Future[Chunk]] = deque()
        queue = iter(plan)
        for index, size in queue:
            pending.append(pool.submit(generate_chunk_with_stats, spec, index, size))
            if len(pending) >= workers * 2:
                break
        while pending:
            chunk = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(generate_chunk_with_stats, spec, *nxt))
            yield chunk


def persona_stats(seed: int, residents: list[ResidentRow], households: list[HouseholdRow]) -> StatsChunk:
    """The personas' statistics rows, derived from their records as the generator derives its own."""
    sizes = {ho: len(orjson.loads(blob)["thanhVien"]) for ho, blob in households}
    keys = record_keys(seed, "personas")
    return pack(
        stats_row(orjson.loads(blob), sizes.get(ho, 1) if ho else 1, keys.getrandbits(8))
        for _, ho, _, blob in residents
    )


async def seed_database(
    url: str,
    *,
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    provinces: tuple[str, ...] = DEFAULT_PROVINCES,
    as_of: date = DEFAULT_AS_OF,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Replace the mock database's content with ``count`` generated residents plus the personas."""
    if not 0 <= count <= MAX_COUNT:
        raise GenerationError(f"--count must be between 0 and {MAX_COUNT}")
    spec = PopulationSpec(seed=seed, as_of=as_of, home_provinces=check_provinces(provinces))
    started = time.perf_counter()
    workers = workers if workers is not None else max(1, min(os.cpu_count() or 1, 8))
    writer = await open_writer(url)
    residents = households = 0
    try:
        stats = StatsBuilder()
        personas, persona_households = persona_rows(as_of)
        await writer.write(personas, persona_households)
        stats.add(persona_stats(seed, personas, persona_households))
        households += len(persona_households)
        for chunk_residents, chunk_households, chunk_stats in _generate(spec, count, workers):
            await writer.write(chunk_residents, chunk_households)
            stats.add(chunk_stats)
            residents += len(chunk_residents)
            households += len(chunk_households)
            if progress is not None:
                progress(residents)
        await writer.finish(
            stats.rows(),
            {
                "format_version": FORMAT_VERSION,
                "seed": str(seed),
                "count": str(count),
                "as_of": as_of.isoformat(),
                "provinces": ",".join(spec.home_provinces),
                "personas": str(len(personas)),
            },
        )
    except BaseException:
        await writer.abort()
        raise
    return SeedReport(residents, len(personas), households, time.perf_counter() - started)
