"""The HTTP adapter against the real mock service (uvicorn on a free port, faults enabled).

The same records through HTTP and through the embedded backend; then every fault the mock can inject, with
small deadlines so the suite stays quick, and the breaker opening and recovering on the global fault mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest

from app.backends.breaker import CircuitBreaker
from app.backends.embedded import EmbeddedBackend
from app.backends.errors import (
    BreakerOpen,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.backends.http import HttpBackend
from mock_csdlqg.personas import personas
from tests.harness import MOCK_API_KEY as API_KEY
from tests.harness import UNKNOWN as UNKNOWN_ID
from tests.harness import free_port

HEAD = "052068000108"
FAULT = "X-Mock-Fault"

Connect = Callable[..., AbstractAsyncContextManager[HttpBackend]]
T = TypeVar("T")


@pytest.fixture
def connect(live_mock: str) -> Connect:
    """``async with connect(fault="...", **options) as backend``: an HttpBackend on the live mock."""

    @asynccontextmanager
    async def open_backend(fault: str | None = None, **options: Any) -> AsyncIterator[HttpBackend]:
        headers = {FAULT: fault} if fault is not None else None
        async with HttpBackend(live_mock, API_KEY, headers=headers, **options) as backend:
            yield backend

    return open_backend


@pytest.fixture
async def control(live_mock: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for the mock's own routes (sample, global fault mode)."""
    async with httpx.AsyncClient(base_url=live_mock, headers={"X-Api-Key": API_KEY}, timeout=5) as client:
        yield client
        await client.delete("/_mock/faults")


async def sample(control: httpx.AsyncClient, n: int) -> list[str]:
    response = await control.get("/_mock/sample", params={"n": n, "seed": 3})
    assert response.status_code == 200
    items: list[str] = response.json()["items"]
    return items


# ----------------------------------------------------------------------------------------------- parity


async def test_http_and_embedded_answer_identical_records(
    connect: Connect, control: httpx.AsyncClient, mock_sqlite_url: str
) -> None:
    ids = list(dict.fromkeys([p.personal_id for p in personas()] + await sample(control, 60)))
    embedded = EmbeddedBackend(mock_sqlite_url)
    await embedded.open()
    try:
        async with connect() as http:
            for pid in ids:
                over_http, in_process = await http.get(pid), await embedded.get(pid)
                assert over_http is not None
                assert in_process is not None
                assert dict(over_http.fields) == dict(in_process.fields)
                assert over_http.record_updated_at == in_process.record_updated_at
                assert (over_http.source, in_process.source) == ("csdlqg", "mock_csdlqg")
                household_id = over_http.fields["household_id"]
                if household_id is not None:
                    assert await http.household(household_id) == await embedded.household(household_id)
            many_http = await http.get_many([*ids, UNKNOWN_ID])
            many_embedded = await embedded.get_many([*ids, UNKNOWN_ID])
            assert many_http.keys() == many_embedded.keys() == set(ids)
            assert all(dict(many_http[pid].fields) == dict(many_embedded[pid].fields) for pid in ids)
            assert await http.get(UNKNOWN_ID) is None
            await http.check()
            assert http.retries == 0
    finally:
        await embedded.close()


# ----------------------------------------------------------------------------------------------- faults


NET = 30.0
"""How long a call that must end by its own deadline may take before the test calls it hung: far above
every deadline here (the assertion is that the call ended, and how; a loaded machine only makes it slower)."""


async def ended(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, NET)


async def test_latency_beyond_the_deadline_is_504(connect: Connect) -> None:
    # The latency is ten times the deadline: the answer cannot come first on any machine that runs at all.
    async with connect(fault="latency=5000", deadline=0.5) as backend:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as caught:
            await ended(backend.get(HEAD))
        assert time.monotonic() - started >= 0.5  # not before the deadline
    assert caught.value.status == 504
    assert backend.attempts == 1


async def test_latency_within_the_deadline_is_fine(connect: Connect) -> None:
    async with connect(fault="latency=200", deadline=10.0) as backend:
        assert await backend.get(HEAD) is not None


@pytest.mark.parametrize("call", ["lookup", "batch"])
async def test_a_trickled_body_never_outlives_the_deadline(connect: Connect, call: str) -> None:
    # 10 bytes every 200 ms: a record takes minutes, a batch answer about as long; the deadline is 1 s.
    async with connect(fault="trickle", deadline=1.0) as backend:
        with pytest.raises((UpstreamTimeout, UpstreamBadResponse)):
            await ended(backend.get(HEAD) if call == "lookup" else backend.get_many([HEAD]))


async def test_503_is_retried_twice_honouring_retry_after(connect: Connect) -> None:
    async with connect(fault="status=503", deadline=30.0) as backend:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.get(HEAD)
        elapsed = time.monotonic() - started
    assert backend.attempts == 3
    assert backend.retries == 2
    assert elapsed >= 2.0  # the mock's Retry-After: 1, twice
    assert caught.value.status == 503
    assert caught.value.code == "upstream_unavailable"
    assert caught.value.retry_after == 1


async def test_503_whose_retry_after_does_not_fit_is_not_retried(connect: Connect) -> None:
    async with connect(fault="status=503", deadline=0.8) as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)
    assert backend.attempts == 1


async def test_500_is_retried_twice(connect: Connect) -> None:
    async with connect(fault="status=500", deadline=30.0) as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.get_many([HEAD, UNKNOWN_ID])
    assert backend.attempts == 3


@pytest.mark.parametrize("status", [400, 403, 422])
async def test_a_4xx_is_not_retried(connect: Connect, status: int) -> None:
    async with connect(fault=f"status={status}") as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)
    assert backend.attempts == 1


async def test_a_wrong_api_key_is_503_not_retried(live_mock: str) -> None:
    async with HttpBackend(live_mock, "wrong-key") as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)
    assert backend.attempts == 1


async def test_malformed_is_502(connect: Connect) -> None:
    async with connect(fault="malformed") as backend:
        for call in (backend.get(HEAD), backend.get_many([HEAD])):
            with pytest.raises(UpstreamBadResponse) as caught:
                await call
            assert caught.value.code == "upstream_bad_response"
            assert caught.value.reason == "malformed_json"
        assert await backend.get(UNKNOWN_ID) is None  # a 404 stays a 404
    assert backend.attempts == 3


async def test_wrong_id_is_an_identity_mismatch(connect: Connect, control: httpx.AsyncClient) -> None:
    async with connect() as plain:
        record = await plain.get(HEAD)
    assert record is not None
    household_id = record.fields["household_id"]
    async with connect(fault="wrong_id") as backend:
        with pytest.raises(UpstreamIdentityMismatch) as caught:
            await backend.get(HEAD)
        assert caught.value.status == 502
        assert caught.value.code == "upstream_identity_mismatch"
        with pytest.raises(UpstreamIdentityMismatch):
            await backend.get_many([HEAD, *await sample(control, 4)])
        with pytest.raises(UpstreamIdentityMismatch):
            await backend.household(household_id)
        assert backend.identity_mismatches == 3
        assert backend.breaker_state == "closed"


async def test_the_breaker_opens_on_an_outage_and_recovers(
    connect: Connect, control: httpx.AsyncClient
) -> None:
    now = [1000.0]  # the breaker's clock, moved by the test: its cool-down does not race the machine's load
    breaker = CircuitBreaker(failure_threshold=3, cooldown=1.0, window=50, min_calls=50, clock=lambda: now[0])
    async with connect(breaker=breaker, deadline=10.0, max_retries=0) as backend:
        assert await backend.get(HEAD) is not None
        assert (await control.put("/_mock/faults", json={"status": 500})).status_code == 200
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await backend.get(HEAD)
        assert backend.breaker_state == "open"
        attempts = backend.attempts
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.get(HEAD)
        assert backend.attempts == attempts  # answered without calling
        assert caught.value.retry_after == 1
        with pytest.raises(BreakerOpen):
            await backend.check()  # not ready while open (docs/contract.md, Health and metrics)
        assert backend.breaker_state == "open"
        assert (await control.delete("/_mock/faults")).status_code == 204
        now[0] += 0.9
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)  # still cooling down
        assert backend.attempts == attempts
        now[0] += 0.1
        assert await backend.get(HEAD) is not None
        assert backend.breaker_state == "closed"
        assert breaker.times_opened == 1


async def test_a_connection_failure_is_503() -> None:
    async with HttpBackend(f"http://127.0.0.1:{free_port()}", API_KEY, deadline=30.0) as backend:
        with pytest.raises(UpstreamUnavailable):
            await backend.get(HEAD)
        with pytest.raises(UpstreamUnavailable):
            await backend.check()
    assert backend.attempts == 3
