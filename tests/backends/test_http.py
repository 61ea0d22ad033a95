"""The HTTP adapter against ``httpx.MockTransport``: retries, budget, deadline, caps, identity, breaker."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from app.backends.breaker import BreakerState, CircuitBreaker, RetryBudget
from app.backends.errors import (
    BreakerOpen,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.backends.http import HttpBackend, parse_retry_after
from app.backends.wire import record_from_wire
from tests.backends.conftest import wire

PID = "052068000108"  # persona: head of a household of eight
OTHER = "052170000109"  # his spouse
UNKNOWN = "052099000999"
API_KEY = "upstream-key-0123456789"

Step = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def json_response(doc: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(doc), headers={"content-type": "application/json", **headers}
    )


def problem(status: int, **headers: str) -> httpx.Response:
    body = {"type": "urn:x", "title": "x", "status": status, "detail": "x", "code": "x", "request_id": None}
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"content-type": "application/problem+json", **headers}
    )


class Upstream:
    """A scripted upstream: each request takes the next step (the last one repeats)."""

    def __init__(self, *steps: Step | httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return httpx.Response(
                step.status_code, headers=step.headers, stream=step.stream
            )  # raw bytes again
        result = step(request)
        return await result if not isinstance(result, httpx.Response) else result


class Sleeps:
    """The back-off's waits, recorded instead of spent: what the adapter would wait, with no clock involved."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Clock:
    """A monotonic clock the test moves (for the circuit breaker's cool-down)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


NET = 10.0
"""How long a call that must end by its own deadline may take before the test calls it hung (a safety net
far above every deadline here: the assertion is that the call ended, and how, not how fast)."""


async def ended(call: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(call, NET)


async def forever(request: httpx.Request) -> httpx.Response:
    """An upstream that never answers."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def backend(upstream: Upstream, **kwargs: Any) -> HttpBackend:
    options: dict[str, Any] = {
        "deadline": 2.0,
        "backoff_base": 0.01,
        "backoff_max": 0.02,
        "rng": random.Random(1),
        "transport": httpx.MockTransport(upstream),
        **kwargs,
    }
    return HttpBackend("http://upstream.test", API_KEY, **options)


@pytest.fixture
def record_blob(persona_wire: dict[str, bytes]) -> bytes:
    return persona_wire[PID]


@pytest.fixture
def ok(record_blob: bytes) -> httpx.Response:
    return httpx.Response(200, content=record_blob, headers={"content-type": "application/json"})


# ------------------------------------------------------------------------------------------- the calls


async def test_lookup_sends_the_id_in_the_body_and_maps_the_record(
    ok: httpx.Response, record_blob: bytes
) -> None:
    upstream = Upstream(ok)
    async with backend(upstream) as b:
        record = await b.get(PID)
    assert record == record_from_wire(wire(record_blob), source="csdlqg")
    (request,) = upstream.requests
    assert request.method == "POST"
    assert request.url == "http://upstream.test/api/v1/residents/lookup"
    assert PID not in str(request.url)
    assert orjson.loads(request.content) == {"soDinhDanh": PID}
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"
    assert (b.calls, b.attempts, b.retries) == (1, 1, 0)


async def test_a_base_path_is_kept(ok: httpx.Response) -> None:
    upstream = Upstream(ok)
    async with HttpBackend("https://gw.example/csdlqg/", None, transport=httpx.MockTransport(upstream)) as b:
        await b.get(PID)
    assert upstream.requests[0].url == "https://gw.example/csdlqg/api/v1/residents/lookup"
    assert "x-api-key" not in upstream.requests[0].headers


async def test_404_is_none_and_not_retried() -> None:
    upstream = Upstream(problem(404))
    async with backend(upstream) as b:
        assert await b.get(UNKNOWN) is None
    assert b.attempts == 1


async def test_an_impossible_id_never_reaches_the_upstream() -> None:
    upstream = Upstream(problem(500))
    async with backend(upstream) as b:
        assert await b.get("12345") is None
        assert await b.get("05206800010８") is None
        assert await b.household("../residents/lookup") is None
        assert await b.get_many(["x", "1" * 13]) == {}
    assert upstream.requests == []


async def test_household(persona_wire: dict[str, bytes], persona_households: dict[str, bytes]) -> None:
    household_id = wire(persona_wire[PID])["maHo"]
    assert isinstance(household_id, str)
    upstream = Upstream(
        httpx.Response(
            200, content=persona_households[household_id], headers={"content-type": "application/json"}
        )
    )
    async with backend(upstream) as b:
        household = await b.household(household_id)
    assert household is not None
    assert household.head.personal_id == PID
    assert len(household.members) == 8
    assert upstream.requests[0].method == "GET"
    assert upstream.requests[0].url.path == f"/api/v1/households/{household_id}"


async def test_unknown_household_is_none() -> None:
    async with backend(Upstream(problem(404))) as b:
        assert await b.household("522027375078") is None


async def test_batch_get_chunks_dedupes_and_filters(persona_wire: dict[str, bytes]) -> None:
    known = list(persona_wire)[:6]

    def answer(request: httpx.Request) -> httpx.Response:
        ids = orjson.loads(request.content)["ids"]
        records = b",".join(persona_wire[pid] for pid in ids if pid in persona_wire)
        missing = orjson.dumps([pid for pid in ids if pid not in persona_wire])
        body = b'{"records":[' + records + b'],"missing":' + missing + b"}"
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    upstream = Upstream(answer)
    asked = [*known, UNKNOWN, known[0], "bad-id"]
    async with backend(upstream, batch_size=3) as b:
        found = await b.get_many(asked)
    assert set(found) == set(known)
    assert all(found[pid].personal_id == pid for pid in known)
    sent = [orjson.loads(request.content)["ids"] for request in upstream.requests]
    assert sent == [known[:3], known[3:6], [UNKNOWN]]
    assert all(request.url.path == "/api/v1/residents/batch-get" for request in upstream.requests)


async def test_batch_get_of_nothing_calls_nobody() -> None:
    upstream = Upstream(problem(500))
    async with backend(upstream) as b:
        assert await b.get_many([]) == {}
    assert upstream.requests == []


# ---------------------------------------------------------------------------------------------- retries


async def test_5xx_is_retried_twice_then_succeeds(ok: httpx.Response) -> None:
    upstream = Upstream(problem(503), problem(502), ok)
    async with backend(upstream) as b:
        assert (await b.get(PID)) is not None
    assert len(upstream.requests) == 3
    assert (b.calls, b.attempts, b.retries) == (1, 3, 2)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_at_most_two_retries(status: int) -> None:
    upstream = Upstream(problem(status))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamUnavailable) as caught:
            await b.get(PID)
    assert caught.value.status == 503
    assert caught.value.code == "upstream_unavailable"
    assert len(upstream.requests) == 3
    assert b.retries == 2


@pytest.mark.parametrize("status", [400, 401, 403, 405, 409, 413, 422])
async def test_other_4xx_are_never_retried(status: int) -> None:
    upstream = Upstream(problem(status))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamUnavailable):
            await b.get(PID)
    assert len(upstream.requests) == 1
    assert b.breaker_state == "closed"


async def test_connection_errors_are_retried(ok: httpx.Response) -> None:
    upstream = Upstream(httpx.ConnectError("refused"), httpx.RemoteProtocolError("eof"), ok)
    async with backend(upstream) as b:
        assert await b.get(PID) is not None
    assert b.attempts == 3


async def test_connection_failure_is_503() -> None:
    async with backend(Upstream(httpx.ConnectError("refused"))) as b:
        with pytest.raises(UpstreamUnavailable):
            await b.get(PID)
    assert b.attempts == 3


async def test_per_operation_timeouts_end_as_504() -> None:
    async with backend(Upstream(httpx.ReadTimeout("slow"))) as b:
        with pytest.raises(UpstreamTimeout) as caught:
            await b.get(PID)
    assert caught.value.status == 504
    assert b.attempts == 3


async def test_retry_after_is_honoured_within_the_deadline(ok: httpx.Response) -> None:
    upstream = Upstream(problem(503, **{"Retry-After": "1"}), ok)
    sleeps = Sleeps()
    async with backend(upstream, deadline=2.0, sleep=sleeps) as b:
        assert await b.get(PID) is not None
    assert sleeps.delays == [1.0]  # the back-off (~0.01 s here) stretched to the upstream's Retry-After
    assert b.retries == 1


async def test_retry_after_beyond_the_deadline_ends_the_call_at_once() -> None:
    upstream = Upstream(problem(503, **{"Retry-After": "30"}))
    sleeps = Sleeps()
    async with backend(upstream, deadline=2.0, sleep=sleeps) as b:
        with pytest.raises(UpstreamUnavailable) as caught:
            await b.get(PID)
    assert sleeps.delays == []  # no wait at all
    assert len(upstream.requests) == 1
    assert caught.value.retry_after == 30
    assert caught.value.headers() == {"Retry-After": "30"}


async def test_the_retry_budget_stops_retries(ok: httpx.Response) -> None:
    upstream = Upstream(problem(503), problem(503), ok, problem(503))
    budget = RetryBudget(ratio=0.0, min_retries=2, window=60)
    async with backend(upstream, retry_budget=budget) as b:
        assert await b.get(PID) is not None  # spends both retries
        with pytest.raises(UpstreamUnavailable):
            await b.get(PID)
    assert len(upstream.requests) == 4
    assert b.retries == 2
    assert b.retries_refused == 1


async def test_backoff_is_jittered_and_grows() -> None:
    delays: list[list[float]] = []
    for seed in (1, 2):
        upstream = Upstream(problem(500))
        sleeps = Sleeps()
        async with backend(
            upstream, backoff_base=0.1, backoff_max=1.0, deadline=3.0, sleep=sleeps, rng=random.Random(seed)
        ) as b:
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        assert len(upstream.requests) == 3
        first, second = sleeps.delays
        assert 0.05 <= first <= 0.1  # 0.1 with equal jitter: [0.05, 0.1]
        assert 0.1 <= second <= 0.2  # 0.2 with equal jitter: [0.1, 0.2]
        delays.append(sleeps.delays)
    assert delays[0] != delays[1]  # jittered: another draw, other waits


# ------------------------------------------------------------------------------------ what is accepted


async def test_a_redirect_is_never_followed() -> None:
    upstream = Upstream(httpx.Response(302, headers={"Location": "http://evil.test/api/v1/residents/lookup"}))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamBadResponse) as caught:
            await b.get(PID)
    assert caught.value.status == 502
    assert caught.value.code == "upstream_bad_response"
    assert caught.value.reason == "redirect"
    assert [str(r.url.host) for r in upstream.requests] == ["upstream.test"]
    assert b.breaker_state == "closed"


async def test_a_declared_oversized_body_is_refused_unread(record_blob: bytes) -> None:
    upstream = Upstream(
        httpx.Response(200, content=record_blob, headers={"content-type": "application/json"})
    )
    async with backend(upstream, max_response_bytes=len(record_blob) - 1) as b:
        with pytest.raises(UpstreamBadResponse) as caught:
            await b.get(PID)
    assert caught.value.reason == "oversized"


async def test_a_streamed_oversized_body_is_cut_while_it_streams() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1
            yield b" " * 1024

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "application/json"})

    async with backend(Upstream(answer), max_response_bytes=64 * 1024) as b:
        with pytest.raises(UpstreamBadResponse) as caught:
            await b.get(PID)
    assert caught.value.reason == "oversized"
    assert sent <= 66


async def test_a_batch_may_be_larger_in_proportion_to_the_ids(persona_wire: dict[str, bytes]) -> None:
    ids = list(persona_wire)[:10]
    body = b'{"records":[' + b",".join(persona_wire[pid] for pid in ids) + b'],"missing":[]}'
    upstream = Upstream(httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    async with backend(upstream, max_response_bytes=1024, max_record_bytes=4096) as b:
        assert len(await b.get_many(ids)) == 10
    async with backend(upstream, max_response_bytes=1024, max_record_bytes=256) as b:
        with pytest.raises(UpstreamBadResponse):
            await b.get_many(ids)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            httpx.Response(
                200, content=b'{"soDinhDanh": "0520', headers={"content-type": "application/json"}
            ),
            "malformed_json",
        ),
        (
            httpx.Response(200, content=b"<html>login</html>", headers={"content-type": "text/html"}),
            "content_type",
        ),
        (
            httpx.Response(
                200,
                content=gzip.compress(b"{}"),
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            ),
            "content_encoding",
        ),
        (
            httpx.Response(200, content=b"[1, 2]", headers={"content-type": "application/json"}),
            "shape:CongDan",
        ),
        (
            httpx.Response(
                200, content=b'{"soDinhDanh": "052068000108"}', headers={"content-type": "application/json"}
            ),
            "shape:CongDan.",
        ),
        (httpx.Response(204), "status:204"),
    ],
)
async def test_malformed_answers_are_502(response: httpx.Response, reason: str) -> None:
    upstream = Upstream(response)
    async with backend(upstream) as b:
        with pytest.raises(UpstreamBadResponse) as caught:
            await b.get(PID)
    assert caught.value.reason is not None
    assert caught.value.reason.startswith(reason)
    assert type(caught.value) is UpstreamBadResponse
    assert len(upstream.requests) == 1  # never retried
    assert b.bad_responses == 1


async def test_a_record_for_another_id_is_refused(persona_wire: dict[str, bytes]) -> None:
    upstream = Upstream(
        httpx.Response(200, content=persona_wire[OTHER], headers={"content-type": "application/json"})
    )
    async with backend(upstream) as b:
        with pytest.raises(UpstreamIdentityMismatch) as caught:
            await b.get(PID)
    assert caught.value.status == 502
    assert caught.value.code == "upstream_identity_mismatch"
    assert len(upstream.requests) == 1
    assert b.identity_mismatches == 1
    assert b.breaker_state == "closed"


async def test_a_batch_with_records_nobody_asked_for_is_refused(persona_wire: dict[str, bytes]) -> None:
    body = b'{"records":[' + persona_wire[OTHER] + b'],"missing":[]}'
    upstream = Upstream(httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamIdentityMismatch):
            await b.get_many([PID])


@pytest.mark.parametrize(
    "doc",
    [
        {"records": [], "missing": []},  # PID neither found nor missing
        {"records": [], "missing": [PID, PID]},
        {"records": [], "missing": [PID, UNKNOWN]},  # missing names what was not asked
        {"records": []},
        {"records": {}, "missing": []},
        [],
    ],
)
async def test_an_inconsistent_batch_is_refused(doc: Any) -> None:
    async with backend(Upstream(json_response(doc))) as b:
        with pytest.raises(UpstreamBadResponse):
            await b.get_many([PID])


async def test_a_batch_with_a_record_twice_is_refused(persona_wire: dict[str, bytes]) -> None:
    body = b'{"records":[' + persona_wire[PID] + b"," + persona_wire[PID] + b'],"missing":[]}'
    async with backend(
        Upstream(httpx.Response(200, content=body, headers={"content-type": "application/json"}))
    ) as b:
        with pytest.raises(UpstreamBadResponse):
            await b.get_many([PID])


async def test_another_household_is_refused(persona_households: dict[str, bytes]) -> None:
    household_id, blob = next(iter(persona_households.items()))
    upstream = Upstream(httpx.Response(200, content=blob, headers={"content-type": "application/json"}))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamIdentityMismatch):
            await b.household(household_id[::-1])


# ----------------------------------------------------------------------------------------- the deadline


async def test_the_deadline_bounds_a_hanging_upstream() -> None:
    async with backend(Upstream(forever), deadline=0.3) as b:
        with pytest.raises(UpstreamTimeout) as caught:
            await ended(b.get(PID))
    assert caught.value.status == 504
    assert caught.value.code == "upstream_timeout"
    assert b.timeouts == 1


async def test_the_deadline_bounds_a_trickled_body(record_blob: bytes) -> None:
    pieces = range(0, len(record_blob), 10)
    sent: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        for start in pieces:
            await asyncio.sleep(0.05)
            sent.append(start)
            yield record_blob[start : start + 10]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle(), headers={"content-type": "application/json"})

    assert len(pieces) > 40  # two seconds of trickle at the least, five times the deadline
    async with backend(Upstream(answer), deadline=0.4) as b:
        with pytest.raises(UpstreamTimeout):
            await ended(b.get(PID))
    assert len(sent) < len(pieces)  # the body was given up, not read to its end


async def test_the_deadline_covers_retries_and_backoff() -> None:
    async def slow_failure(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return problem(500)

    async with backend(Upstream(slow_failure), deadline=0.5, backoff_base=0.2, backoff_max=0.2) as b:
        with pytest.raises((UpstreamTimeout, UpstreamUnavailable)):
            await ended(b.get(PID))
    # Three retries would take 4 x 0.2 s of attempts and 3 x 0.2 s of back-off: the deadline allows two
    # attempts at most (fewer on a slow machine, never more).
    assert b.attempts <= 2 < 1 + b.max_retries


# ------------------------------------------------------------------------------------------ the breaker


def tight_breaker(clock: Clock | None = None, cooldown: float = 0.2) -> CircuitBreaker:
    """Opens after three failures; cools down on ``clock`` (the test moves it) or on the real one."""
    return CircuitBreaker(
        failure_threshold=3, cooldown=cooldown, window=50, min_calls=50, clock=clock or time.monotonic
    )


async def test_the_breaker_opens_answers_fast_and_recovers(ok: httpx.Response) -> None:
    upstream = Upstream(problem(500), problem(500), problem(500), ok)
    clock = Clock()
    async with backend(upstream, breaker=tight_breaker(clock), max_retries=0) as b:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        assert b.breaker_state == "open"
        with pytest.raises(UpstreamUnavailable) as caught:
            await b.get(PID)
        assert caught.value.retry_after == 1
        assert len(upstream.requests) == 3  # refused without a request
        clock.advance(0.25)
        assert b.breaker_state == "half_open"
        assert await b.get(PID) is not None  # the probe
        assert b.breaker_state == "closed"
    assert b.breaker.rejected == 1


async def test_a_failed_probe_reopens_the_breaker(ok: httpx.Response) -> None:
    upstream = Upstream(problem(500), problem(500), problem(500), httpx.ConnectError("down"), ok)
    clock = Clock()
    async with backend(upstream, breaker=tight_breaker(clock), max_retries=2) as b:
        with pytest.raises(UpstreamUnavailable):
            await b.get(PID)  # three failed attempts open it
        assert b.breaker_state == "open"
        clock.advance(0.25)
        with pytest.raises(UpstreamUnavailable):
            await b.get(PID)  # the probe fails: no retry while the breaker is open again
        assert b.breaker_state == "open"
        assert len(upstream.requests) == 4
        clock.advance(0.25)
        assert await b.get(PID) is not None
        assert b.breaker_state == "closed"


async def test_half_open_lets_a_single_probe_through(ok: httpx.Response) -> None:
    async def slow_ok(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return httpx.Response(200, content=ok.content, headers=ok.headers)

    upstream = Upstream(problem(500), problem(500), problem(500), slow_ok)
    clock = Clock()
    async with backend(upstream, breaker=tight_breaker(clock), max_retries=0) as b:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        clock.advance(0.25)
        results = await asyncio.gather(b.get(PID), b.get(PID), b.get(PID), return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, UpstreamUnavailable)) == 2
    assert len(upstream.requests) == 4


async def test_timeouts_count_for_the_breaker() -> None:
    async with backend(Upstream(forever), breaker=tight_breaker(Clock()), deadline=0.05) as b:
        for _ in range(3):
            with pytest.raises(UpstreamTimeout):
                await ended(b.get(PID))
        assert b.breaker_state == "open"


async def test_not_found_and_identity_mismatch_do_not_count(persona_wire: dict[str, bytes]) -> None:
    mismatch = httpx.Response(200, content=persona_wire[OTHER], headers={"content-type": "application/json"})
    upstream = Upstream(*[problem(404)] * 5, *[mismatch] * 5, problem(422))
    async with backend(upstream, breaker=tight_breaker()) as b:
        for _ in range(5):
            assert await b.get(PID) is None
        for _ in range(5):
            with pytest.raises(UpstreamIdentityMismatch):
                await b.get(PID)
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        assert b.breaker_state == "closed"


async def test_cancellation_gives_the_probe_back(ok: httpx.Response) -> None:
    reached = asyncio.Event()

    async def probe_hangs(request: httpx.Request) -> httpx.Response:
        reached.set()
        return await forever(request)

    upstream = Upstream(problem(500), problem(500), problem(500), probe_hangs, ok)
    clock = Clock()
    async with backend(upstream, breaker=tight_breaker(clock), max_retries=0) as b:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        clock.advance(0.25)
        probe = asyncio.create_task(b.get(PID))
        await ended(reached.wait())  # the probe is with the upstream
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert b.breaker.state is BreakerState.HALF_OPEN
        assert await b.get(PID) is not None
        assert b.breaker_state == "closed"


# -------------------------------------------------------------------------------------------- check()


async def test_check_reads_health_outside_the_breaker() -> None:
    health = json_response({"status": "ok", "residents": 3})
    upstream = Upstream(health)
    async with backend(upstream, breaker=tight_breaker()) as b:
        await b.check()
        assert upstream.requests[0].url.path == "/api/v1/health"
        upstream.steps = [problem(503)]
        for _ in range(5):
            with pytest.raises(UpstreamUnavailable):
                await b.check()
        assert b.breaker_state == "closed"
        assert len(upstream.requests) == 6  # never retried
        upstream.steps = [json_response({"status": "starting"})]
        with pytest.raises(UpstreamBadResponse):
            await b.check()


async def test_check_fails_while_the_breaker_is_open(ok: httpx.Response) -> None:
    # docs/contract.md, Health and metrics: not ready while every lookup would fail at once.
    health = json_response({"status": "ok", "residents": 3})
    upstream = Upstream(problem(500), problem(500), problem(500), health)
    clock = Clock()
    async with backend(upstream, breaker=tight_breaker(clock, cooldown=30), max_retries=0) as b:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await b.get(PID)
        with pytest.raises(BreakerOpen) as caught:
            await b.check()
        assert caught.value.retry_after == 30
        assert caught.value.headers() == {"Retry-After": "30"}
        assert len(upstream.requests) == 3  # no health request while open
        clock.advance(31)
        await b.check()  # half-open: the health route answers again


async def test_check_is_bounded() -> None:
    async with backend(Upstream(forever), check_deadline=0.2) as b:
        with pytest.raises(UpstreamTimeout):
            await ended(b.check())


# ------------------------------------------------------------------------------------------ hygiene


async def test_logs_never_carry_ids_or_bodies(
    caplog: pytest.LogCaptureFixture, persona_wire: dict[str, bytes]
) -> None:
    caplog.set_level(logging.DEBUG)
    steps: list[Step | httpx.Response | Exception] = [
        problem(503),
        httpx.ConnectError(f"refused {PID}"),
        problem(500),
        httpx.Response(200, content=persona_wire[OTHER], headers={"content-type": "application/json"}),
        httpx.Response(200, content=persona_wire[PID][:40], headers={"content-type": "application/json"}),
    ]
    async with backend(Upstream(*steps)) as b:
        for _ in range(3):
            with pytest.raises((UpstreamUnavailable, UpstreamBadResponse)):
                await b.get(PID)
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("app."))
    assert logged
    for secret in (PID, OTHER, API_KEY, "upstream.test", "lookup\n"):
        assert secret not in logged


async def test_a_closed_backend_refuses_to_work() -> None:
    b = backend(Upstream(problem(500)))
    with pytest.raises(RuntimeError, match="not open"):
        await b.get(PID)
    await b.open()
    await b.close()
    await b.close()


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://upstream.test", {}),
        ("http://user:pw@upstream.test", {}),
        ("http://upstream.test/?x=1", {}),
        ("upstream.test", {}),
        ("http://upstream.test", {"max_retries": 3}),
        ("http://upstream.test", {"batch_size": 1001}),
        ("http://upstream.test", {"deadline": 0}),
    ],
)
def test_refuses_bad_configuration(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages name settings, checked elsewhere
        HttpBackend(url, "k", **kwargs)


def test_parse_retry_after() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("1.5") is None
    later = email.utils.formatdate(now + 20, usegmt=True)
    value = parse_retry_after(later, now=now)
    assert value is not None
    assert 19 <= value <= 20
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
