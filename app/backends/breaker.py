"""The two guards that keep an upstream failure from growing: a circuit breaker and a retry budget.

Both live on the event loop (no locks: only one coroutine runs at a time) and take an injectable monotonic
clock so tests can move time. They know nothing about HTTP; the adapter decides what counts as a failure.

Circuit breaker::

    closed ──(N consecutive failures, or failure ratio over the last calls)──▶ open
    open ──(cool-down passed)──▶ half-open ──(the one probe succeeds)──▶ closed
                                           └─(the probe fails)────────▶ open (cool-down again)

While open, ``admit()`` raises ``CircuitOpen`` at once with the seconds until the next probe.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker refuses the call; ``retry_after`` is the whole seconds until it lets a probe through."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("circuit open")
        self.retry_after = retry_after


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures, or when at least ``min_calls`` of the last
    ``window`` outcomes hold a share of failures ≥ ``failure_ratio``; after ``cooldown`` seconds it lets
    one probe through (half-open), whose outcome closes or reopens it."""

    def __init__(
        self,
        *,
        name: str = "upstream",
        failure_threshold: int = 5,
        failure_ratio: float = 0.5,
        window: int = 20,
        min_calls: int = 10,
        cooldown: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or not 0 < failure_ratio <= 1 or window < 1 or cooldown < 0:
            raise ValueError("invalid circuit breaker settings")
        self.name = name
        self.failure_threshold = failure_threshold
        self.failure_ratio = failure_ratio
        self.min_calls = min(min_calls, window)
        self.cooldown = cooldown
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=window)  # True = failure
        self._failures_in_window = 0
        self._consecutive = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.times_opened = 0
        """How often it has opened (a counter for metrics)."""
        self.rejected = 0
        """Calls refused while open or while a probe was in flight."""

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def open_for(self) -> int | None:
        """Whole seconds until an open breaker lets a probe through; None when it is not open."""
        if self.state is not BreakerState.OPEN:
            return None
        return max(1, math.ceil(self.cooldown - (self._clock() - self._opened_at)))

    def admit(self) -> bool:
        """Let a call through or raise CircuitOpen; True when the call is the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        self.rejected += 1
        wait = self.cooldown - (self._clock() - self._opened_at) if state is BreakerState.OPEN else 0.0
        raise CircuitOpen(max(1, math.ceil(wait)))

    def success(self) -> None:
        """The upstream answered (an answer that is not a failure: 2xx, 404, even an unusable body)."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._close()
        elif state is BreakerState.CLOSED:
            self._consecutive = 0
            self._remember(failure=False)

    def failure(self) -> None:
        """A timeout, a connection failure or an error status."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._open()
        elif state is BreakerState.CLOSED:
            self._consecutive += 1
            self._remember(failure=True)
            window = len(self._outcomes)
            if self._consecutive >= self.failure_threshold or (
                window >= self.min_calls and self._failures_in_window >= self.failure_ratio * window
            ):
                self._open()

    def release(self, probe: bool) -> None:
        """A call ended without an outcome (cancelled): give the probe slot back."""
        if probe and self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _remember(self, *, failure: bool) -> None:
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._failures_in_window -= 1
        self._outcomes.append(failure)
        self._failures_in_window += failure

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False
        self.times_opened += 1
        logger.warning("circuit breaker %s opened", self.name)

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._outcomes.clear()
        self._failures_in_window = 0
        self._probe_in_flight = False
        logger.warning("circuit breaker %s closed", self.name)


class RetryBudget:
    """Retries may be at most ``ratio`` of the calls made over the last ``window`` seconds, with a floor of
    ``min_retries`` per window so a quiet gateway can still retry; beyond that a failed attempt is final.

    Counted in ``buckets`` slices of the window, so memory does not grow with traffic.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries: int = 10,
        window: float = 10.0,
        buckets: int = 10,
        clock: Clock = time.monotonic,
    ) -> None:
        if ratio < 0 or min_retries < 0 or window <= 0 or buckets < 1:
            raise ValueError("invalid retry budget settings")
        self.ratio = ratio
        self.min_retries = min_retries
        self._width = window / buckets
        self._buckets: deque[list[int]] = deque(maxlen=buckets)  # [slice number, calls, retries]
        self._clock = clock

    def _current(self) -> list[int]:
        now = math.floor(self._clock() / self._width)
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
        oldest = now - (self._buckets.maxlen or 1) + 1
        while self._buckets[0][0] < oldest:
            self._buckets.popleft()
        return self._buckets[-1]

    def record_call(self) -> None:
        self._current()[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        current = self._current()
        calls = sum(bucket[1] for bucket in self._buckets)
        retries = sum(bucket[2] for bucket in self._buckets)
        if retries >= max(self.min_retries, math.floor(self.ratio * calls)):
            return False
        current[2] += 1
        return True
