"""The circuit breaker and the retry budget on a clock the tests move."""

from __future__ import annotations

import pytest

from app.backends.breaker import BreakerState, CircuitBreaker, CircuitOpen, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **kwargs: float) -> CircuitBreaker:
    options: dict[str, float] = {
        "failure_threshold": 3,
        "cooldown": 10.0,
        "window": 10,
        "min_calls": 10,
        **kwargs,
    }
    return CircuitBreaker(
        failure_threshold=int(options["failure_threshold"]),
        failure_ratio=options.get("failure_ratio", 0.5),
        window=int(options["window"]),
        min_calls=int(options["min_calls"]),
        cooldown=options["cooldown"],
        clock=clock,
    )


def state(b: CircuitBreaker) -> BreakerState:
    """The breaker's state now (a call, so type checkers do not narrow it across calls that change it)."""
    return b.state


def test_opens_after_consecutive_failures_and_answers_at_once() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.admit() is False
        b.failure()
    assert state(b) is BreakerState.CLOSED
    b.admit()
    b.failure()
    assert state(b) is BreakerState.OPEN
    assert b.times_opened == 1
    clock.now += 2.5
    with pytest.raises(CircuitOpen) as caught:
        b.admit()
    assert caught.value.retry_after == 8  # ceil(10 - 2.5)
    assert b.rejected == 1


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker(Clock(), failure_ratio=0.9)  # 2 of 3 failing is under the ratio
    for _ in range(5):
        b.failure()
        b.failure()
        b.success()
    assert state(b) is BreakerState.CLOSED


def test_opens_on_the_failure_ratio_over_the_window() -> None:
    b = breaker(Clock(), failure_threshold=100, window=10, min_calls=6, failure_ratio=0.5)
    for _ in range(2):
        b.failure()
        b.success()
    b.failure()
    assert state(b) is BreakerState.CLOSED  # 3 of 5: below min_calls
    b.success()
    assert state(b) is BreakerState.CLOSED  # 3 of 6 = 0.5 ... reached on the next failure
    b.failure()
    assert state(b) is BreakerState.OPEN


def test_old_outcomes_leave_the_window() -> None:
    b = breaker(Clock(), failure_threshold=100, window=4, min_calls=4, failure_ratio=0.75)
    for outcome in (True, True, False, False, False, False, True, True):
        b.failure() if outcome else b.success()
    assert state(b) is BreakerState.CLOSED  # the window holds F F T T: 2 of 4


def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert state(b) is BreakerState.HALF_OPEN
    assert b.admit() is True
    with pytest.raises(CircuitOpen) as caught:
        b.admit()  # a second caller while the probe is out
    assert caught.value.retry_after == 1
    b.success()
    assert state(b) is BreakerState.CLOSED
    assert b.admit() is False


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.admit() is True
    b.failure()
    assert state(b) is BreakerState.OPEN
    assert b.times_opened == 2
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        b.admit()
    clock.now += 0.1
    assert b.admit() is True


def test_a_cancelled_probe_gives_its_slot_back() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.admit() is True
    b.release(True)
    assert state(b) is BreakerState.HALF_OPEN
    assert b.admit() is True


def test_late_outcomes_while_open_change_nothing() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    b.success()  # a call that started before it opened
    assert state(b) is BreakerState.OPEN
    b.failure()
    assert b.times_opened == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"failure_ratio": 0}, {"failure_ratio": 1.5}, {"window": 0}, {"cooldown": -1}],
)
def test_refuses_nonsense_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="circuit breaker"):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ retry budget


def test_the_budget_has_a_floor_per_window() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.0, min_retries=2, window=10, clock=clock)
    budget.record_call()
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.now += 10  # the window moved on
    assert budget.try_spend()


def test_retries_are_a_share_of_calls() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_retries=0, window=10, clock=clock)
    for _ in range(50):
        budget.record_call()
    spent = 0
    while budget.try_spend():
        spent += 1
    assert spent == 10
    clock.now += 5
    for _ in range(10):
        budget.record_call()
    assert budget.try_spend() is True  # 60 calls: 12 retries allowed
    assert budget.try_spend() is True
    assert budget.try_spend() is False
    clock.now += 5.5  # the first 50 calls (and their 10 retries) have left the window
    assert sum(1 for _ in range(5) if budget.try_spend()) == 0  # 10 calls: 2 allowed, 2 spent


def test_refuses_nonsense_budget() -> None:
    with pytest.raises(ValueError, match="retry budget"):
        RetryBudget(window=0)
