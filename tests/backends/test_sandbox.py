"""Rehearsed upstream faults (``app.sandbox``, docs/contract.md section 17) at the backends: the vocabulary is
the mock's, the http backend sends it to the mock as ``X-Mock-Fault``, and the embedded backend's simulation
ends every call as the http backend does against the real mock, with the same retries after the same back-off.

No clock is read: the back-off's waits are recorded instead of spent (both backends take ``sleep=``), so the
retries a call made and how long each would have waited are compared, not how long the call took.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import pytest

from app.backends.base import CodeSent, Household, PopulationQuery, RawAggregate
from app.backends.embedded import EmbeddedBackend
from app.backends.http import HttpBackend
from app.sandbox import Fault, InvalidSandboxFault, fault_var, parse_fault
from mock_csdlqg.faults import parse_fault_header
from mock_csdlqg.problems import InvalidFault
from tests.harness import MOCK_API_KEY as API_KEY
from tests.harness import UNKNOWN, Backoff

HEAD = "052068000108"
HOUSEHOLD = "525360708430"
DEADLINE = 1.5
"""Short, so the slow faults end quickly; long enough that three attempts at a loaded mock fit in it."""

VOCABULARY = [
    "",
    "none",
    "none;",
    " ; none ; ",
    "latency=0",
    "latency=1500",
    "latency=60000",
    "latency=60001",
    "latency=1234567",
    "latency=-1",
    "latency=1.5",
    "latency=",
    "latency",
    "status=503",
    "status=400",
    "status=599",
    "status=399",
    "status=600",
    "status=200",
    "status=５０３",
    "malformed",
    "malformed=1",
    "wrong_id;trickle",
    " malformed ; wrong_id ; trickle ; latency = 5 ; status = 404 ",
    "malformed;malformed",
    "status=503;status=500",
    "crash",
    "MALFORMED",
    "none;malformed",
    "none=1",
]


@pytest.mark.parametrize("value", VOCABULARY)
def test_the_vocabulary_is_the_mocks(value: str) -> None:
    try:
        mode = parse_fault_header(value)
    except InvalidFault:
        with pytest.raises(InvalidSandboxFault):
            parse_fault(value)
        return
    fault = parse_fault(value)
    expected = Fault(mode.latency_ms, mode.status, mode.malformed, mode.wrong_id, mode.trickle)
    assert (fault or Fault()) == expected
    if fault is not None:  # what the http backend sends reads back as the same fault at the mock
        assert parse_fault_header(fault.header()) == mode


Call = Callable[[Any], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "get": lambda backend: backend.get(HEAD),
    "get-unknown": lambda backend: backend.get(UNKNOWN),
    "get_many": lambda backend: backend.get_many([HEAD, UNKNOWN]),
    "get_many-unknown": lambda backend: backend.get_many([UNKNOWN]),
    "household": lambda backend: backend.household(HOUSEHOLD),
    "statistics": lambda backend: backend.population_aggregate(PopulationQuery("52", group_by=("sex",))),
    "send_code": lambda backend: backend.send_code(HEAD, "Xác nhận tờ khai thử nghiệm"),
    "check_code": lambda backend: backend.check_code("no-such-challenge-0000000000", "123456"),
}


def outcome(result: Any) -> Any:
    """What a call ended with, comparable across backends: the error (type, retry hint) or who was found."""
    if isinstance(result, BaseException):
        return type(result).__name__, getattr(result, "retry_after", None)
    if result is None:
        return None
    if isinstance(result, dict):
        return sorted(result)
    if isinstance(result, Household):
        return result.household_id
    if isinstance(result, RawAggregate):
        return result.group_by
    if isinstance(result, CodeSent):
        return result.destination_hint
    if isinstance(result, bool):
        return result
    return result.personal_id


class MidJitter(random.Random):
    """The http backend's jitter drawn at the middle of its range: its back-off is then what the embedded
    simulation waits (three quarters of each step), and the two compare delay by delay."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


class Backends(NamedTuple):
    http: HttpBackend
    embedded: EmbeddedBackend
    http_backoff: Backoff
    embedded_backoff: Backoff


async def ended(backend: Any, backoff: Backoff, call: Call, fault: str) -> tuple[Any, list[float]]:
    """How the call ended (``outcome``) and the back-off it waited before each retry."""
    token = fault_var.set(parse_fault(fault))
    waited = len(backoff.delays)
    try:
        result = await call(backend)
    except Exception as error:  # the outcome compared
        result = error
    finally:
        fault_var.reset(token)
    return outcome(result), backoff.delays[waited:]


@pytest.fixture
async def backends(live_mock: str, mock_sqlite_url: str) -> AsyncIterator[Backends]:
    """The http backend on the live mock (faults on) and the embedded one on its database, both sandboxes,
    with a short deadline so the slow faults end quickly, and their back-off recorded instead of spent."""
    http_backoff, embedded_backoff = Backoff(), Backoff()
    embedded = EmbeddedBackend(mock_sqlite_url, sandbox=True, deadline=DEADLINE, sleep=embedded_backoff)
    await embedded.open()
    async with HttpBackend(
        live_mock, API_KEY, sandbox=True, deadline=DEADLINE, sleep=http_backoff, rng=MidJitter()
    ) as http:
        yield Backends(http, embedded, http_backoff, embedded_backoff)
    await embedded.close()


RETRIED = {"status=500", "status=502"}
"""The faults of the list below that the http backend retries: a 5xx without ``Retry-After``, after its own
back-off (the mock's 503 comes with ``Retry-After: 1``: the next test)."""
NEVER_RETRIED = {"send_code", "check_code"}
"""Calls that are not reads: one attempt whatever the upstream answers."""


@pytest.mark.parametrize(
    "fault",
    [
        "none",
        "latency=30",
        "status=500",
        "status=502",
        "status=404",
        "status=418",
        "malformed",
        "wrong_id",
        "malformed;wrong_id",
        "latency=20;status=404;wrong_id",
        "latency=3000",
        "latency=2000",
        "trickle",
    ],
)
@pytest.mark.parametrize("name", list(CALLS))
async def test_the_embedded_simulation_ends_as_the_mock_does(
    backends: Backends, name: str, fault: str
) -> None:
    http, embedded = backends.http, backends.embedded
    over_http, http_waits = await ended(http, backends.http_backoff, CALLS[name], fault)
    simulated, simulated_waits = await ended(embedded, backends.embedded_backoff, CALLS[name], fault)
    assert simulated == over_http
    assert simulated_waits == pytest.approx(http_waits)  # the same retries, each after the same back-off
    assert len(http_waits) == http.retries == (2 if fault in RETRIED and name not in NEVER_RETRIED else 0)
    assert http.breaker_state == "closed"


async def test_a_rehearsed_503_waits_as_the_mocks_retry_after_says(backends: Backends) -> None:
    """Retried twice, each time after the mock's ``Retry-After: 1`` (longer than the back-off's own step)."""
    http, embedded = backends.http, backends.embedded
    http.deadline = embedded.deadline = 5.0
    over_http, http_waits = await ended(http, backends.http_backoff, CALLS["get"], "status=503")
    simulated, simulated_waits = await ended(embedded, backends.embedded_backoff, CALLS["get"], "status=503")
    assert simulated == over_http == ("UpstreamUnavailable", 1)
    assert http_waits == simulated_waits == [1.0, 1.0]
    assert (http.retries, http.retries_refused) == (2, 0)


async def test_without_the_sandbox_no_fault_is_rehearsed(live_mock: str, mock_sqlite_url: str) -> None:
    embedded = EmbeddedBackend(mock_sqlite_url)
    await embedded.open()
    try:
        async with HttpBackend(live_mock, API_KEY) as http:
            for backend in (http, embedded):
                assert (await ended(backend, Backoff(), CALLS["get"], "status=503;malformed"))[0] == HEAD
    finally:
        await embedded.close()
