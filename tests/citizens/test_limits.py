"""The in-memory request-rate window: at most N requests in any minute, O(1) per request."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from app.citizens.errors import LimitsUnavailable, RateLimited
from app.citizens.limits import MemoryLimiter, RedisLimiter, SlidingMinute
from tests.harness import free_port


def test_allows_the_limit_then_refuses_until_the_oldest_second_leaves() -> None:
    window = SlidingMinute()
    start = 1_000_000.25
    assert all(window.hit(3, start + i) == 0 for i in range(3))  # seconds 0, 1, 2
    assert window.hit(3, start + 30) == 30  # the hit of second 0 leaves the window at second 60
    assert window.hit(3, start + 59.5) == 1  # still second 59
    assert window.hit(3, start + 60) == 0  # second 0 has left; seconds 1, 2 and 60 are in
    assert window.hit(3, start + 60.5) == 1


def test_a_refused_hit_is_not_counted() -> None:
    window = SlidingMinute()
    assert window.hit(1, 10.0) == 0
    for second in range(11, 70):
        assert window.hit(1, float(second)) > 0
    assert window.hit(1, 70.0) == 0


def test_never_more_than_the_limit_in_any_sixty_seconds() -> None:
    window = SlidingMinute()
    accepted: list[int] = []
    for tick in range(0, 3000):  # 10 attempts per second for 300 s
        now = 5_000.0 + tick / 10
        if window.hit(25, now) == 0:
            accepted.append(int(now))
    for second in range(5_000, 5_300):
        assert sum(1 for s in accepted if second <= s < second + 60) <= 25
    assert len(accepted) >= 25 * 5  # and the window does refill


def test_a_long_pause_empties_the_window() -> None:
    window = SlidingMinute()
    for i in range(5):
        window.hit(5, 100.0 + i / 10)
    assert window.hit(5, 101.0) > 0
    assert window.hit(5, 100_000.0) == 0


async def test_memory_limiter_counts_per_client_and_gives_retry_after() -> None:
    now = [2_000_000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    await limiter.hit_request("a", 2)
    await limiter.hit_request("a", 2)
    await limiter.hit_request("b", 2)  # another client's own window
    with pytest.raises(RateLimited) as refused:
        await limiter.hit_request("a", 2)
    assert refused.value.retry_after == 60
    now[0] += 60
    await limiter.hit_request("a", 2)


async def test_memory_limiter_distinct_subjects_per_day() -> None:
    now = [86_400.0 * 20_000 + 10]
    limiter = MemoryLimiter(clock=lambda: now[0])
    refs = [f"k1:{n:064x}" for n in range(4)]
    assert await limiter.hit_subjects("a", refs[:2], 3) == [True, True]
    assert await limiter.hit_subjects("a", [refs[0], refs[2], refs[3]], 3) == [True, True, False]
    assert await limiter.hit_subjects("b", [refs[3]], 3) == [True]
    now[0] += 86_400  # a new UTC day
    assert await limiter.hit_subjects("a", [refs[3]], 1) == [True]


@pytest.fixture
async def redis_limiter(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[RedisLimiter, list[float]]]:
    """A limiter on the real Redis under a prefix of this test's own, with a clock the test moves."""
    now = [1_900_000_000.5]
    limiter = RedisLimiter(redis_url, f"{redis_prefix}{secrets.token_hex(4)}:", clock=lambda: now[0])
    yield limiter, now
    await limiter.close()


async def test_redis_rate_window_refuses_over_the_limit_until_a_second_leaves(
    redis_limiter: tuple[RedisLimiter, list[float]],
) -> None:
    limiter, now = redis_limiter
    for _ in range(3):
        await limiter.hit_request("a", 3)
        now[0] += 10
    with pytest.raises(RateLimited) as refused:
        await limiter.hit_request("a", 3)
    assert refused.value.retry_after == 30  # the first hit (30 s ago) leaves in 30 s
    await limiter.hit_request("b", 3)  # another client's window
    now[0] += 30
    await limiter.hit_request("a", 3)


async def test_redis_admit_counts_rate_and_residents_in_one_step(
    redis_limiter: tuple[RedisLimiter, list[float]],
) -> None:
    limiter, now = redis_limiter
    refs = [f"k1:{n:064x}" for n in range(4)]
    assert await limiter.admit("a", 2, refs[:2], 3) == [True, True]
    assert await limiter.admit("a", 2, [refs[0], refs[2], refs[3]], 3) == [True, True, False]
    with pytest.raises(RateLimited):  # the rate is used up: no resident is counted
        await limiter.admit("a", 2, [refs[3]], 4)
    assert await limiter.hit_subjects("a", [refs[3]], 4) == [True]  # the quota had room: counted now
    now[0] += 86_400  # a new UTC day: a new set
    assert await limiter.hit_subjects("a", refs, 1) == [True, False, False, False]


async def test_redis_unreachable_fails_closed() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", "x:")
    with pytest.raises(LimitsUnavailable):
        await limiter.admit("a", 10, ["k1:00"], 10)
    await limiter.close()


@pytest.fixture(params=["memory", "redis"])
def any_limiter(request: pytest.FixtureRequest) -> MemoryLimiter | RedisLimiter:
    if request.param == "memory":
        return MemoryLimiter(clock=lambda: 1_900_000_000.5)
    limiter: RedisLimiter = request.getfixturevalue("redis_limiter")[0]
    return limiter


async def test_all_or_none_of_a_household_is_counted(any_limiter: MemoryLimiter | RedisLimiter) -> None:
    refs = [f"k1:{n:064x}" for n in range(6)]
    assert await any_limiter.hit_subjects("a", refs[:1], 4) == [True]
    assert await any_limiter.hit_subjects_all("a", refs[:5], 4) is False  # 5 residents do not fit in 4
    assert await any_limiter.hit_subjects("a", refs[1:4], 4) == [True, True, True], "none was counted"
    assert await any_limiter.hit_subjects_all("a", [refs[0], refs[2], refs[3], refs[2]], 4) is True
    assert await any_limiter.hit_subjects_all("a", [refs[5]], 4) is False
    assert await any_limiter.hit_subjects_all("b", refs[:4], 4) is True  # another client's quota


async def test_a_batch_counts_each_item_against_the_rate_all_or_none(
    any_limiter: MemoryLimiter | RedisLimiter,
) -> None:
    refs = [f"k1:{n:064x}" for n in range(2)]
    assert await any_limiter.admit("a", 10, refs, 5, hits=6) == [True, True]
    with pytest.raises(RateLimited):  # 6 + 6 > 10: nothing counted
        await any_limiter.admit("a", 10, refs, 5, hits=6)
    await any_limiter.admit("a", 10, [], 5, hits=4)
    with pytest.raises(RateLimited):
        await any_limiter.hit_request("a", 10)
    with pytest.raises(RateLimited) as never:  # more items than a minute allows: a full window's wait
        await any_limiter.admit("b", 10, [], 5, hits=11)
    assert never.value.retry_after == 60


async def test_mismatching_verifications_per_resident(any_limiter: MemoryLimiter | RedisLimiter) -> None:
    a, b = (f"k1:{n:064x}" for n in range(2))
    assert await any_limiter.verifiable("c", [a, b], 2) == [True, True]
    assert await any_limiter.settle("c", [(a, True), (a, False), (a, True), (a, False), (b, True)], 2) == [
        True,
        True,
        True,
        False,  # a's two mismatches are used up: not even a match is released
        True,
    ]
    assert await any_limiter.verifiable("c", [a, b], 2) == [False, True]
    assert await any_limiter.verifiable("other", [a], 2) == [True]


async def test_a_verification_is_admitted_and_its_attempts_read_in_one_step(
    any_limiter: MemoryLimiter | RedisLimiter,
) -> None:
    """``admit_verification`` answers what ``admit`` then ``verifiable`` would (one Redis round trip):
    the quota counts each resident, the attempts are only read, and a refused rate counts nothing."""
    a, b, c = (f"k1:{n:064x}" for n in range(3))
    await any_limiter.settle("v", [(a, True), (a, True)], 2)  # a's attempts are used up
    assert await any_limiter.admit_verification("v", 10, [a, b], 2, 2) == ([True, True], [False, True])
    # c does not fit in the quota of 2; its attempts are still answered (the caller refuses it for the quota)
    assert await any_limiter.admit_verification("v", 10, [b, c], 2, 2) == ([True, False], [True, True])
    assert await any_limiter.verifiable("v", [a, b], 2) == [False, True], "nothing was counted as an attempt"
    # another client: v's mismatches of a are not w's
    assert await any_limiter.admit_verification("w", 10, [a], 5, 2, hits=8) == ([True], [True])
    with pytest.raises(RateLimited):  # 8 + 8 > 10: neither the rate nor the quota counts anything
        await any_limiter.admit_verification("w", 10, [b], 5, 2, hits=8)
    assert await any_limiter.hit_subjects("w", [a, b], 1) == [True, False], "a was counted, b was not"
