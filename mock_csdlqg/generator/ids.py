"""Unique, deterministic identifiers for generated residents, households and old ID cards.

Generation runs in chunks (possibly in several processes), so no global counter exists. Each chunk owns
a block of raw numbers; a fixed affine bijection turns a raw number into a serial that looks random.
Two residents can only share a personal ID if they share its first six digits (birth-registration code,
century/sex digit, birth year) *and* its serial; within one chunk the per-bucket counter prevents that,
across chunks the disjoint blocks do. Personas use serials below ``GENERATED_SERIAL_FLOOR``, which the
generator never produces, so a persona ID never collides with a generated one, whatever the seed.
"""

from __future__ import annotations

from typing import Literal

from vnid import make_personal_id

CHUNK_SIZE = 2000
"""Residents per chunk; part of the seed's meaning (changing it changes every dataset)."""
PER_CHUNK_BUCKET = 500
"""Raw serials each chunk owns per (code, century/sex, year) bucket."""
GENERATED_SERIAL_FLOOR = 1000
SERIAL_SPACE = 1_000_000 - GENERATED_SERIAL_FLOOR
PERSONA_CHUNK = SERIAL_SPACE // PER_CHUNK_BUCKET - 1
"""The last block is reserved for personas' old CMND numbers and household IDs."""
MAX_GENERATED_CHUNKS = PERSONA_CHUNK - 1
MAX_COUNT = MAX_GENERATED_CHUNKS * CHUNK_SIZE

_SERIAL_MUL, _SERIAL_ADD = 524_287, 271_828  # 524287 is prime and does not divide 999000
_CMND_MUL, _CMND_ADD = 387_420_489, 187_654_329  # 3**18 is coprime with 10**9
_HOUSE_MUL, _HOUSE_ADD = 7_777_777_777, 3_141_592_653  # coprime with 10**10


class GenerationError(RuntimeError):
    """The requested population cannot be generated with unique identifiers."""


def generated_serial(raw: int, bucket_offset: int = 0) -> int:
    """Map a raw number in [0, SERIAL_SPACE) to a serial in [GENERATED_SERIAL_FLOOR, 10**6).

    For a fixed ``bucket_offset`` the map is a bijection, so serials stay unique within a bucket; the
    offset only keeps different buckets from reusing the same sequence of serials.
    """
    return GENERATED_SERIAL_FLOOR + ((raw + bucket_offset) * _SERIAL_MUL + _SERIAL_ADD) % SERIAL_SPACE


def cmnd_number(raw: int) -> str:
    """A 9-digit old ID number, unique for each raw number below 10**9."""
    return f"{(raw * _CMND_MUL + _CMND_ADD) % 1_000_000_000:09d}"


def household_number(province: str, raw: int) -> str:
    """A household code: the 2025 province code and ten digits unique for each raw number."""
    return f"{province}{(raw * _HOUSE_MUL + _HOUSE_ADD) % 10_000_000_000:010d}"


class IdAllocator:
    """Hands out personal IDs, CMND numbers and household codes that are unique across all chunks."""

    __slots__ = ("_base", "_buckets", "_chunk", "_cmnd", "_households")

    def __init__(self, chunk: int) -> None:
        if not 0 <= chunk <= PERSONA_CHUNK:
            raise GenerationError("chunk index out of range")
        self._chunk = chunk
        self._base = chunk * PER_CHUNK_BUCKET
        self._buckets: dict[tuple[str, int, bool], int] = {}
        self._cmnd = 0
        self._households = 0

    def personal_id(self, code: str, sex: Literal["male", "female"], birth_year: int) -> str:
        female = sex == "female"
        key = (code, birth_year, female)
        used = self._buckets.get(key, 0)
        if used >= PER_CHUNK_BUCKET:
            raise GenerationError("too many residents share one ID bucket in a chunk")
        self._buckets[key] = used + 1
        offset = int(code) * 7919 + birth_year * 104_729 + female * 1_299_709
        return make_personal_id(code, sex, birth_year, generated_serial(self._base + used, offset))

    def cmnd(self) -> str:
        raw = self._chunk * 4 * CHUNK_SIZE + self._cmnd
        self._cmnd += 1
        return cmnd_number(raw)

    def household(self, province: str) -> str:
        raw = self._chunk * CHUNK_SIZE + self._households
        self._households += 1
        return household_number(province, raw)
