"""Request rate and distinct-resident quotas per client (docs/security.md, Authorisation: enumeration).

The request rate is a moving window of one minute counted in one-second slots: in process memory a ring of
60 counters per client (``SlidingMinute``), in Redis a hash of per-second counts per client. (The ``limits``
library this replaces kept every request of the last minute, in memory as a list it prepended to, an O(n)
copy per request, and in Redis as a list of up to ``limit`` entries.) In Redis one Lua script counts the
request and the call's residents together, atomically, in one round trip. The distinct-resident quota counts each
resident once per UTC day per client, found or not, with a set per (client, day). Both live in process
memory by default and in Redis when ``DANCU_REDIS_URL`` is set, shared by every replica; a configured Redis
that cannot be reached fails closed (503 ``limits_unavailable``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from app.citizens.errors import LimitsUnavailable, RateLimited

DAY_SECONDS = 86_400


class Limiter(Protocol):
    async def hit_request(self, client_id: str, per_minute: int, hits: int = 1) -> None: ...
    async def hit_subjects(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]: ...
    async def admit(
        self, client_id: str, per_minute: int, subject_refs: list[str], per_day: int, hits: int = 1
    ) -> list[bool]:
        """``hits`` requests against the rate (a batch: one per item; all or none, RateLimited when the
        window cannot take them all) then, unless that refused, ``hit_subjects`` (one round trip where that
        matters)."""
        ...

    async def admit_verification(
        self,
        client_id: str,
        per_minute: int,
        subject_refs: list[str],
        per_day: int,
        attempts_per_day: int,
        hits: int = 1,
    ) -> tuple[list[bool], list[bool]]:
        """``admit`` and ``verifiable`` (with ``attempts_per_day``) of the same subjects in one step (one round
        trip where that matters): per subject, whether it is within the distinct quota, and whether it may
        be checked. A verification's first question."""
        ...

    async def hit_subjects_all(self, client_id: str, subject_refs: list[str], per_day: int) -> bool:
        """Count every subject of ``subject_refs`` or none: False (nothing counted) when the quota cannot take
        all of those not counted yet today (a household's members)."""
        ...

    async def verifiable(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        """Per subject, whether it has fewer than ``per_day`` mismatching verifications by this client today
        (UTC): False, it is not checked again today. Counts nothing."""
        ...

    async def settle(self, client_id: str, answers: list[tuple[str, bool]], per_day: int) -> list[bool]:
        """Per (subject, mismatching) verification answer, in order and atomically: False when the subject
        already has ``per_day`` mismatches today (the answer must not be released; nothing counted), else
        True, counting a mismatching answer. A match released after concurrent mismatches used the attempts
        up is thus impossible."""
        ...

    async def check(self) -> None: ...
    async def close(self) -> None: ...


def seconds_to_utc_midnight(now: float | None = None) -> int:
    """Until the distinct-resident quota starts again (it counts per UTC day)."""
    return DAY_SECONDS - int(time.time() if now is None else now) % DAY_SECONDS


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")


class SlidingMinute:
    """At most ``limit`` hits in any 60 consecutive whole seconds, counted in a ring of 60 per-second slots.

    Exact to the second: a hit at 12:00:00.9 leaves the window at 12:01:00.0 rather than 12:01:00.9, so a
    client may get its next hit up to one second early, never more than ``limit`` in a minute of slots.
    """

    __slots__ = ("_slots", "_stamps", "_total")

    WINDOW = 60

    def __init__(self) -> None:
        self._slots = [0] * self.WINDOW
        self._stamps = [-1] * self.WINDOW
        """The second each slot's count belongs to (a slot is stale once its second left the window)."""
        self._total = 0

    def hit(self, limit: int, now: float, hits: int = 1) -> int:
        """0 when the ``hits`` are counted; else the seconds until a slot frees (nothing is counted). More hits
        than ``limit`` can never be counted: a full window's wait."""
        second = int(now)
        slot = second % self.WINDOW
        if self._stamps[slot] != second:
            self._expire(second)
        if self._total + hits > limit:
            return self.WINDOW if hits > limit else self._retry_after(second)
        self._slots[slot] += hits
        self._total += hits
        return 0

    def _expire(self, second: int) -> None:
        oldest = second - self.WINDOW  # slots of this second or earlier have left the window
        for index, stamp in enumerate(self._stamps):
            if stamp <= oldest and self._slots[index]:
                self._total -= self._slots[index]
                self._slots[index] = 0
        slot = second % self.WINDOW
        if self._stamps[slot] != second:
            self._total -= self._slots[slot]
            self._slots[slot] = 0
            self._stamps[slot] = second

    def _retry_after(self, second: int) -> int:
        live = [stamp for stamp, count in zip(self._stamps, self._slots, strict=True) if count]
        return max(1, min(live) + self.WINDOW - second) if live else 1


class MemoryLimiter:
    """One process's counts (refused by ``dancu serve`` when more than one worker would multiply them)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, SlidingMinute] = {}
        self._mismatches: dict[tuple[str, int], dict[int, int]] = {}
        """Per (client, UTC day): mismatching verifications per subject (keyed as ``_seen``)."""
        self._seen: dict[tuple[str, int], set[int]] = {}
        """Per (client, UTC day): the last 64 bits of each subject's keyed hash (an int takes a third of the
        memory of the 67-character ref; two residents sharing 64 bits among a million is a 1-in-10^7 chance)."""
        self._day = -1
        """The UTC day the counts above are of; yesterday's are dropped when it changes (``_current_day``)."""

    async def hit_request(self, client_id: str, per_minute: int, hits: int = 1) -> None:
        self._hit_request(client_id, per_minute, hits)

    def _hit_request(self, client_id: str, per_minute: int, hits: int) -> None:
        window = self._windows.get(client_id)
        if window is None:
            window = self._windows[client_id] = SlidingMinute()
        retry = window.hit(per_minute, self._clock(), hits)
        if retry:
            raise RateLimited(retry)

    async def admit(
        self, client_id: str, per_minute: int, subject_refs: list[str], per_day: int, hits: int = 1
    ) -> list[bool]:
        self._hit_request(client_id, per_minute, hits)
        return self._hit_subjects(client_id, subject_refs, per_day)

    async def admit_verification(
        self,
        client_id: str,
        per_minute: int,
        subject_refs: list[str],
        per_day: int,
        attempts_per_day: int,
        hits: int = 1,
    ) -> tuple[list[bool], list[bool]]:
        self._hit_request(client_id, per_minute, hits)
        return (
            self._hit_subjects(client_id, subject_refs, per_day),
            self._verifiable(client_id, subject_refs, attempts_per_day),
        )

    def _current_day(self) -> int:
        """Today (UTC day number); the first call of a new day drops the counts of the days before."""
        day = int(self._clock()) // DAY_SECONDS
        if day != self._day:  # once a day, not on every call: a verification asks three times
            for key in [k for k in self._seen if k[1] != day]:
                del self._seen[key]
            for key in [k for k in self._mismatches if k[1] != day]:
                del self._mismatches[key]
            self._day = day
        return day

    def _today(self, client_id: str) -> set[int]:
        return self._seen.setdefault((client_id, self._current_day()), set())

    async def hit_subjects(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        return self._hit_subjects(client_id, subject_refs, per_day)

    def _hit_subjects(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        """Count each subject once per UTC day; True where the subject is within the quota."""
        seen = self._today(client_id)
        allowed: list[bool] = []
        for ref in subject_refs:
            digest = int(ref[-16:], 16)
            if digest in seen:
                allowed.append(True)
            elif len(seen) < per_day:
                seen.add(digest)
                allowed.append(True)
            else:
                allowed.append(False)
        return allowed

    async def hit_subjects_all(self, client_id: str, subject_refs: list[str], per_day: int) -> bool:
        seen = self._today(client_id)
        new = {int(ref[-16:], 16) for ref in subject_refs} - seen
        if len(seen) + len(new) > per_day:
            return False
        seen.update(new)
        return True

    def _mismatches_today(self, client_id: str) -> dict[int, int]:
        return self._mismatches.setdefault((client_id, self._current_day()), {})

    async def verifiable(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        return self._verifiable(client_id, subject_refs, per_day)

    def _verifiable(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        counts = self._mismatches_today(client_id)
        return [counts.get(int(ref[-16:], 16), 0) < per_day for ref in subject_refs]

    async def settle(self, client_id: str, answers: list[tuple[str, bool]], per_day: int) -> list[bool]:
        counts = self._mismatches_today(client_id)
        released: list[bool] = []
        for ref, mismatching in answers:
            digest = int(ref[-16:], 16)
            count = counts.get(digest, 0)
            if count >= per_day:
                released.append(False)
                continue
            if mismatching:
                counts[digest] = count + 1
            released.append(True)
        return released

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


_ADMIT = """
-- KEYS[1]: the client's per-second request counts (a hash); KEYS[2]: its residents of the day (a set);
-- KEYS[3]: its mismatching verifications of the day per resident (a hash, as _VERIFIABLE's; read only).
-- ARGV: now (whole seconds), requests per minute (0: count no request), residents per day, the set's TTL,
-- the requests to count (a batch: its items), mismatches per resident per day (-1: not asked), then the
-- residents' refs. Answers {0, {1|0 per ref: within the quota}, {1|0 per ref: may be checked; empty when not
-- asked}} or, when the request rate cannot take the requests, {-1, seconds until a slot frees} (nothing
-- counted).
local now = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local hits = tonumber(ARGV[5])
local attempts = tonumber(ARGV[6])
if per_minute > 0 then
  local counts = redis.call('HGETALL', KEYS[1])
  local total, oldest = 0, nil
  for i = 1, #counts, 2 do
    local second = tonumber(counts[i])
    if second <= now - 60 then
      redis.call('HDEL', KEYS[1], counts[i])
    else
      total = total + tonumber(counts[i + 1])
      if oldest == nil or second < oldest then oldest = second end
    end
  end
  if hits > per_minute then
    return {-1, 60}
  end
  if total + hits > per_minute then
    return {-1, math.max(1, oldest + 60 - now)}
  end
  redis.call('HINCRBY', KEYS[1], ARGV[1], hits)
  redis.call('EXPIRE', KEYS[1], 61)
end
local within = {}
local open = {}
if #ARGV > 6 then
  local per_day = tonumber(ARGV[3])
  local size = redis.call('SCARD', KEYS[2])
  for i = 7, #ARGV do
    if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then
      within[#within + 1] = 1
    elseif size >= per_day then
      within[#within + 1] = 0
    else
      redis.call('SADD', KEYS[2], ARGV[i])
      size = size + 1
      within[#within + 1] = 1
    end
  end
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
  if attempts >= 0 then
    for i = 7, #ARGV do
      open[#open + 1] = (tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0') < attempts) and 1 or 0
    end
  end
end
return {0, within, open}
"""


_ADMIT_ALL = """
-- KEYS[1]: the client's residents of the day (a set). ARGV: residents per day, the set's TTL, then the residents'
-- refs (distinct). Adds every ref or none: answers 1 when all fit within the quota, else 0 (nothing added).
local per_day = tonumber(ARGV[1])
local new = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then new[#new + 1] = ARGV[i] end
end
if redis.call('SCARD', KEYS[1]) + #new > per_day then return 0 end
if #new > 0 then
  redis.call('SADD', KEYS[1], unpack(new))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""


_VERIFIABLE = """
-- KEYS[1]: the client's mismatching verifications of the day per resident (a hash). ARGV: the most per
-- resident, then the residents' refs. Answers 1 (may be checked) or 0 per ref.
local per_day = tonumber(ARGV[1])
local open = {}
for i = 2, #ARGV do
  open[#open + 1] = (tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') < per_day) and 1 or 0
end
return open
"""

_SETTLE = """
-- KEYS[1]: as _VERIFIABLE. ARGV: the most per resident, the hash's TTL, then pairs (ref, 1 if mismatching).
-- Answers 1 (release the answer; a mismatch counted) or 0 (used up: nothing counted) per pair, in order.
local per_day = tonumber(ARGV[1])
local released = {}
for i = 3, #ARGV, 2 do
  local count = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if count >= per_day then
    released[#released + 1] = 0
  else
    if ARGV[i + 1] == '1' then redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
    released[#released + 1] = 1
  end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return released
"""


class RedisLimiter:
    """Counts shared by every replica through Redis; any Redis failure is LimitsUnavailable (fail closed).

    Both keys of a client carry its id as a hash tag (``{client}``), so the script's keys share a slot on a
    Redis Cluster too.
    """

    def __init__(self, url: str, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._prefix = prefix
        self._clock = clock
        import redis.asyncio as aioredis  # only where Redis is configured (~6 MiB of RSS otherwise)

        self._redis = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._redis.register_script(_ADMIT)
        self._script_all = self._redis.register_script(_ADMIT_ALL)
        self._script_verifiable = self._redis.register_script(_VERIFIABLE)
        self._script_settle = self._redis.register_script(_SETTLE)

    async def hit_request(self, client_id: str, per_minute: int, hits: int = 1) -> None:
        await self.admit(client_id, per_minute, [], 0, hits)

    async def hit_subjects(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        return (await self._run(client_id, 0, subject_refs, per_day))[0]

    async def admit(
        self, client_id: str, per_minute: int, subject_refs: list[str], per_day: int, hits: int = 1
    ) -> list[bool]:
        return (await self._run(client_id, max(1, per_minute), subject_refs, per_day, hits))[0]

    async def admit_verification(
        self,
        client_id: str,
        per_minute: int,
        subject_refs: list[str],
        per_day: int,
        attempts_per_day: int,
        hits: int = 1,
    ) -> tuple[list[bool], list[bool]]:
        return await self._run(client_id, max(1, per_minute), subject_refs, per_day, hits, attempts_per_day)

    async def _run(
        self,
        client_id: str,
        per_minute: int,
        subject_refs: list[str],
        per_day: int,
        hits: int = 1,
        attempts_per_day: int = -1,
    ) -> tuple[list[bool], list[bool]]:
        """The ``_ADMIT`` script's answer: per subject, within the quota, and (unless ``attempts_per_day`` is -1)
        whether it may be checked."""
        now = self._clock()
        keys = [
            f"{self._prefix}rate:{{{client_id}}}",
            f"{self._prefix}subjects:{{{client_id}}}:{_day(now)}",
            self._attempts_key(client_id, now),
        ]
        ttl = seconds_to_utc_midnight(now) + 3600
        try:
            status, detail, *asked = await self._script(
                keys=keys, args=[int(now), per_minute, per_day, ttl, hits, attempts_per_day, *subject_refs]
            )
        except Exception as exc:
            raise LimitsUnavailable() from exc
        if status != 0:
            raise RateLimited(int(detail))
        return [bool(flag) for flag in detail], [bool(flag) for flag in (asked[0] if asked else ())]

    async def hit_subjects_all(self, client_id: str, subject_refs: list[str], per_day: int) -> bool:
        now = self._clock()
        key = f"{self._prefix}subjects:{{{client_id}}}:{_day(now)}"
        ttl = seconds_to_utc_midnight(now) + 3600
        try:
            fits = await self._script_all(keys=[key], args=[per_day, ttl, *dict.fromkeys(subject_refs)])
        except Exception as exc:
            raise LimitsUnavailable() from exc
        return bool(fits)

    def _attempts_key(self, client_id: str, now: float) -> str:
        return f"{self._prefix}mismatches:{{{client_id}}}:{_day(now)}"

    async def verifiable(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        key = self._attempts_key(client_id, self._clock())
        try:
            flags = await self._script_verifiable(keys=[key], args=[per_day, *subject_refs])
        except Exception as exc:
            raise LimitsUnavailable() from exc
        return [bool(flag) for flag in flags]

    async def settle(self, client_id: str, answers: list[tuple[str, bool]], per_day: int) -> list[bool]:
        now = self._clock()
        pairs = [part for ref, mismatching in answers for part in (ref, 1 if mismatching else 0)]
        ttl = seconds_to_utc_midnight(now) + 3600
        try:
            flags = await self._script_settle(
                keys=[self._attempts_key(client_id, now)], args=[per_day, ttl, *pairs]
            )
        except Exception as exc:
            raise LimitsUnavailable() from exc
        return [bool(flag) for flag in flags]

    async def check(self) -> None:
        try:
            await self._redis.ping()
        except Exception as exc:
            raise LimitsUnavailable() from exc

    async def close(self) -> None:
        await self._redis.aclose()


def build_limiter(redis_url: str | None, prefix: str) -> Limiter:
    return RedisLimiter(redis_url, prefix) if redis_url else MemoryLimiter()
