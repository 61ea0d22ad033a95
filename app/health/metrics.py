"""Prometheus metrics: one registry per app, the middleware that counts requests, and the wrappers the
lifespan puts around the backend, the limiter and the audit writer.

Every label is bounded by construction, so no caller can grow the series or slip data into them: ``route`` is
the route's template (``/v1/admin/clients/{client_id}``), never the path; ``method`` is one of the HTTP
methods or ``other``; ``client_id`` comes only from a verified token (``record_client``), else
``anonymous``; operations, outcomes and codes are fixed names from the code and the error catalogue. No
personal ID, name or other request value ever becomes a label.

The registry is the app's own (not prometheus_client's global one), so several apps in one process (tests,
benchmarks) count apart. With ``dancu serve --workers N`` each worker counts its own requests: scrape each
replica, and read the figures as per-process (Prometheus sums them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from app.audit.writer import AuditEvent, AuditWriter
from app.backends.base import Backend, CodeSent, Household, PopulationQuery, RawAggregate, ResidentRecord
from app.backends.breaker import BreakerState
from app.citizens.errors import (
    LimitsUnavailable,
    RateLimited,
    SubjectQuotaExceeded,
    VerificationAttemptsExceeded,
)
from app.citizens.limits import Limiter
from app.errors import GatewayError
from app.middleware import CLIENT_ID_KEY, Observer
from app.problems import REQUEST_ID_KEY

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of ``GET /metrics``: the classic Prometheus text format, which ``generate_latest`` writes
for names like ours (every Prometheus version reads it)."""

ANONYMOUS = "anonymous"
UNMATCHED = "unmatched"
"""The ``route`` of a request that matched no route (a 404 before routing): one series, whatever the path."""
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RATE_LIMIT_CODES = (
    RateLimited.code,
    SubjectQuotaExceeded.code,
    VerificationAttemptsExceeded.code,
    LimitsUnavailable.code,
)

# Seconds. Requests: a cached token check is sub-millisecond, an upstream call up to its 5 s deadline.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_AUDIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


access_logger = logging.getLogger("dancu.access")
"""One line per request when ``dancu serve --access-log`` turns it on: the route template, never the path."""


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (after routing), or ``unmatched``."""
    # FastAPI keeps the path of an included router's route with the include prefix in its route context;
    # the APIRoute itself knows only its own router's prefix. Prefer the former, fall back to the latter.
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


def _outcome(exc: BaseException) -> str:
    return exc.code if isinstance(exc, GatewayError) else "error"


class _Children:
    """A labelled metric's children, each made once per label set: ``labels()`` checks and joins its values
    and takes a lock on every call (~2 µs, three or four times a request). The label sets are bounded (see
    above), so this dict is too, and no series is ever removed."""

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._made: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._made.get(labels)
        if child is None:
            child = self._made[labels] = self._metric.labels(*labels)
        return child


class GatewayMetrics:
    """The app's metrics and its registry; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        # The `_created` twin of every counter and histogram doubles the scrape and no dashboard reads it.
        # (A process-wide switch of prometheus_client; the gateway owns its process.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dancu_http_requests",
            "HTTP requests answered, by route template, method, status and verified client.",
            ["route", "method", "status", "client_id"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "dancu_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by route template and method.",
            ["route", "method"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "dancu_upstream_call_duration_seconds",
            "Calls to the population register (retries and back-off included), by operation and outcome.",
            ["operation", "outcome"],
            buckets=_UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self.audit_write_seconds = Histogram(
            "dancu_audit_write_duration_seconds",
            "Time to make a request's audit events durable (committed), by outcome.",
            ["outcome"],
            buckets=_AUDIT_BUCKETS,
            registry=self.registry,
        )
        self.audit_events = Counter(
            "dancu_audit_events_written",
            "Audit events committed through the audit writer (administrative events are not counted here).",
            registry=self.registry,
        )
        self._audit_queue_depth: Callable[[], float] = lambda: 0
        audit_queue = Gauge(
            "dancu_audit_queue_depth",
            "Audit events queued for the next group commit (the transaction being committed not included).",
            registry=self.registry,
        )
        audit_queue.set_function(lambda: self._audit_queue_depth())
        self.rate_limit_refusals = Counter(
            "dancu_rate_limit_refusals",
            "Refusals by the request rate limit, the distinct-resident quota (per resident) or an "
            "unreachable limits store, by error code.",
            ["code"],
            registry=self.registry,
        )
        for code in RATE_LIMIT_CODES:  # every code is exported from the start, at 0
            self.rate_limit_refusals.labels(code)
        self._breaker = _BreakerCollector()
        self.registry.register(self._breaker)
        self.requests_by = _Children(self.requests)
        self.request_seconds_by = _Children(self.request_seconds)
        self.upstream_seconds_by = _Children(self.upstream_seconds)
        self.audit_write_seconds_by = _Children(self.audit_write_seconds)

    # ---------------------------------------------------------------------------------------- wiring

    def watch_backend(self, backend: object) -> None:
        """Export the circuit breaker's state when ``backend`` has one (``breaker_state``); else nothing."""
        self._breaker.backend = backend

    def watch_audit_queue(self, depth: Callable[[], float]) -> None:
        """Export ``depth()`` as the audit queue depth (for a writer that batches events across requests)."""
        self._audit_queue_depth = depth

    # ----------------------------------------------------------------------------------------- records

    def observe_request(self, scope: Scope, status: int, seconds: float) -> str:
        """Count one answered request; returns its route template."""
        route = route_template(scope)
        method = scope["method"] if scope["method"] in _METHODS else OTHER_METHOD
        client_id = scope.get("state", {}).get(CLIENT_ID_KEY) or ANONYMOUS
        self.requests_by(route, method, str(status), client_id).inc()
        self.request_seconds_by(route, method).observe(seconds)
        return route

    def refused(self, code: str, count: int = 1) -> None:
        self.rate_limit_refusals.labels(code).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _BreakerCollector(Collector):
    """``dancu_upstream_breaker_state{state=...}``: 1 for the breaker's current state, 0 for the others."""

    def __init__(self) -> None:
        self.backend: object = None

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        state = getattr(self.backend, "breaker_state", None)
        if not isinstance(state, str):
            return
        family = GaugeMetricFamily(
            "dancu_upstream_breaker_state",
            "The upstream circuit breaker: 1 for its current state (closed, open, half_open), 0 otherwise.",
            labels=["state"],
        )
        for known in BreakerState:
            family.add_metric([known.value], 1.0 if known.value == state else 0.0)
        yield family


def request_observer(metrics: GatewayMetrics) -> Observer:
    """Counts and times every HTTP request and writes the access line when that log is on: the observer of
    ``app.middleware.GatewayMiddleware``, which calls it once the answer is handed on (413 and 500 included).

    The route template and the caller are read from the scope after the app has run (routing and the auth
    dependency fill them in); the time runs until the last byte of the answer is handed to the server.
    """

    def observe(scope: Scope, status: int, seconds: float) -> None:
        route = metrics.observe_request(scope, status, seconds)
        if access_logger.isEnabledFor(logging.INFO):
            state = scope.get("state", {})
            access_logger.info(
                "%s %s %d %.1fms",
                scope["method"] if scope["method"] in _METHODS else OTHER_METHOD,
                route,
                status,
                seconds * 1000,
                extra={
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    # The request's context is gone by now (the request id's context variable is reset).
                    "request_id": state.get(REQUEST_ID_KEY),
                    "client_id": state.get(CLIENT_ID_KEY),
                },
            )

    return observe


class InstrumentedBackend:
    """A ``Backend`` whose calls are timed; everything else is the wrapped backend's."""

    def __init__(self, backend: Backend, metrics: GatewayMetrics) -> None:
        self.inner = backend
        self.name = backend.name
        self._seconds_by = metrics.upstream_seconds_by
        metrics.watch_backend(backend)

    async def _timed(self, operation: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call()
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self._seconds_by(operation, outcome).observe(time.perf_counter() - started)

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        result: ResidentRecord | None = await self._timed("get", lambda: self.inner.get(personal_id, fields))
        return result

    async def get_many(
        self, personal_ids: Sequence[str], fields: Collection[str] | None = None
    ) -> dict[str, ResidentRecord]:
        result: dict[str, ResidentRecord] = await self._timed(
            "get_many", lambda: self.inner.get_many(personal_ids, fields)
        )
        return result

    async def household(self, household_id: str) -> Household | None:
        result: Household | None = await self._timed("household", lambda: self.inner.household(household_id))
        return result

    async def population_aggregate(self, query: PopulationQuery) -> RawAggregate:
        result: RawAggregate = await self._timed(
            "population_aggregate", lambda: self.inner.population_aggregate(query)
        )
        return result

    async def send_code(self, personal_id: str, about: str) -> CodeSent | None:
        result: CodeSent | None = await self._timed(
            "send_code", lambda: self.inner.send_code(personal_id, about)
        )
        return result

    async def check_code(self, challenge_id: str, code: str) -> bool:
        result: bool = await self._timed("check_code", lambda: self.inner.check_code(challenge_id, code))
        return result

    async def check(self) -> None:
        await self._timed("check", self.inner.check)

    async def close(self) -> None:
        await self.inner.close()


class _RefusalCounter:
    """``with`` it around a limiter call: a refusal the call raises (the rate, or the limits store
    unreachable) is counted by its code, then goes on up."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if isinstance(error, RateLimited | LimitsUnavailable):
            self._metrics.refused(error.code)


class InstrumentedLimiter:
    """A ``Limiter`` that counts its refusals by code (one per refused resident for the distinct quota)."""

    def __init__(self, limiter: Limiter, metrics: GatewayMetrics) -> None:
        self.inner = limiter
        self._metrics = metrics
        self._counting = _RefusalCounter(metrics)

    # Each method awaits the inner one inside ``with self._counting`` rather than through a shared wrapper
    # coroutine: a verification asks the limiter three times, and a coroutine per call was a measurable part
    # of its cost (bench/inprocess.py).

    def _count_false(self, answers: list[bool], code: str) -> list[bool]:
        """``answers``, each ``False`` in it counted as one refusal with ``code``."""
        if refused := answers.count(False):
            self._metrics.refused(code, refused)
        return answers

    async def hit_request(self, client_id: str, per_minute: int, hits: int = 1) -> None:
        with self._counting:
            await self.inner.hit_request(client_id, per_minute, hits)

    async def hit_subjects(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        with self._counting:
            within = await self.inner.hit_subjects(client_id, subject_refs, per_day)
        return self._count_false(within, SubjectQuotaExceeded.code)

    async def admit(
        self, client_id: str, per_minute: int, subject_refs: list[str], per_day: int, hits: int = 1
    ) -> list[bool]:
        with self._counting:
            within = await self.inner.admit(client_id, per_minute, subject_refs, per_day, hits)
        return self._count_false(within, SubjectQuotaExceeded.code)

    async def admit_verification(
        self,
        client_id: str,
        per_minute: int,
        subject_refs: list[str],
        per_day: int,
        attempts_per_day: int,
        hits: int = 1,
    ) -> tuple[list[bool], list[bool]]:
        with self._counting:
            within, open_ = await self.inner.admit_verification(
                client_id, per_minute, subject_refs, per_day, attempts_per_day, hits
            )
        self._count_false(within, SubjectQuotaExceeded.code)
        # A subject over the quota is refused for that; only the ones counted can be refused for attempts.
        self._count_false(
            [ok or not counted for counted, ok in zip(within, open_, strict=True)],
            VerificationAttemptsExceeded.code,
        )
        return within, open_

    async def hit_subjects_all(self, client_id: str, subject_refs: list[str], per_day: int) -> bool:
        with self._counting:
            fits = await self.inner.hit_subjects_all(client_id, subject_refs, per_day)
        return self._count_false([fits], SubjectQuotaExceeded.code)[0]

    async def verifiable(self, client_id: str, subject_refs: list[str], per_day: int) -> list[bool]:
        with self._counting:
            open_ = await self.inner.verifiable(client_id, subject_refs, per_day)
        return self._count_false(open_, VerificationAttemptsExceeded.code)

    async def settle(self, client_id: str, answers: list[tuple[str, bool]], per_day: int) -> list[bool]:
        with self._counting:
            released = await self.inner.settle(client_id, answers, per_day)
        return self._count_false(released, VerificationAttemptsExceeded.code)

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


class TimedAuditWriter(AuditWriter):
    """The audit writer, its ``write`` timed from the outside (the writer's internals are its own).

    Built with exactly the writer's own arguments plus ``metrics``.
    """

    def __init__(self, *args: Any, metrics: GatewayMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_seconds_by = metrics.audit_write_seconds_by
        self._written = metrics.audit_events

    async def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            await super().write(events)
            return
        started = time.perf_counter()
        outcome = "ok"
        try:
            await super().write(events)
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self._write_seconds_by(outcome).observe(time.perf_counter() - started)
        self._written.inc(len(events))
