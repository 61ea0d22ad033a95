"""``GET /healthz`` (the process answers) and ``GET /readyz`` (its dependencies answer too); no token.
``GET /metrics`` (Prometheus) is on ``metrics_router``: it names its own authorisation alias."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response

from app.audit.chain import blocked_at
from app.backends.errors import BreakerOpen
from app.citizens.dependencies import BACKEND, LIMITER
from app.db import ping
from app.errors import InsufficientScope, InvalidToken, NotReady
from app.health.dependencies import METRICS, MetricsReader
from app.health.errors import ProbeFailed
from app.health.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.health.schemas import CheckResult, Liveness, NotReadyProblem, Readiness
from app.problems import problem_responses
from app.routing import GatewayRoute
from app.state import AppState, AppStateDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"], route_class=GatewayRoute)

Probe = Callable[[AppState], Awaitable[None]]

PROBE_TIMEOUT_SECONDS = 2.0
"""A dependency that does not answer within this is down, as far as an orchestrator is concerned."""


async def _database(state: AppState) -> None:
    await ping(state.engine)


async def _backend(state: AppState) -> None:
    try:
        await state[BACKEND].check()
    except BreakerOpen as err:
        raise ProbeFailed(
            f"the circuit breaker to the population database is open (next probe in {err.retry_after} s)",
            f"cầu dao kết nối tới CSDL quốc gia về dân cư đang mở (thử lại sau {err.retry_after} giây)",
            retry_after=err.retry_after,
        ) from None


async def _limits(state: AppState) -> None:
    await state[LIMITER].check()


async def _audit(state: AppState) -> None:
    """The audit log can take a new event (citizen data is released only once its event is committed)."""
    async with state.sessionmaker() as session:
        blocked = await blocked_at(session)
    if blocked is not None:
        raise ProbeFailed(
            f"the audit log cannot take new events: the event at seq {blocked} was not written by the "
            "gateway (it follows the chain head); no citizen data is released until an operator has "
            "looked (run `dancu audit verify`)",
            f"nhật ký kiểm toán không ghi thêm được sự kiện: sự kiện ở seq {blocked} không do cổng kết nối "
            "ghi (nằm sau đầu chuỗi); không cung cấp dữ liệu công dân cho đến khi người vận hành kiểm tra "
            "(chạy `dancu audit verify`)",
        )


# Name -> probe; a probe raises when its dependency is down ("limits" is a no-op without Redis).
READINESS_PROBES: dict[str, Probe] = {
    "database": _database,
    "backend": _backend,
    "limits": _limits,
    "audit": _audit,
}


@router.get("/healthz")
async def liveness() -> Liveness:
    """The process is up and serving requests."""
    return Liveness(status="ok")


@router.get("/readyz", responses=problem_responses(NotReady, model=NotReadyProblem))
async def readiness(state: AppStateDep) -> Readiness:
    """Every dependency answers and the audit log can take new events; otherwise 503 ``not_ready`` naming
    the checks that failed (and, in ``detail``, why, where the check can say)."""
    names = list(READINESS_PROBES)
    results = await asyncio.gather(*(_run(name, READINESS_PROBES[name], state) for name in names))
    checks = {name: result for name, (result, _) in zip(names, results, strict=True)}
    if any(result != "ok" for result in checks.values()):
        reasons = [(name, failed) for name, (_, failed) in zip(names, results, strict=True) if failed]
        raise NotReady(
            checks,
            reasons_en=[f"{name}: {failed.reason_en}" for name, failed in reasons],
            reasons_vi=[f"{name}: {failed.reason_vi}" for name, failed in reasons],
            retry_after=max((failed.retry_after or 0 for _, failed in reasons), default=0) or None,
        )
    return Readiness(status="ready", checks=checks)


async def _run(name: str, probe: Probe, state: AppState) -> tuple[CheckResult, ProbeFailed | None]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await probe(state)
    except ProbeFailed as failed:
        logger.warning("readiness check %s failed: %s", name, failed.reason_en)
        return "failed", failed
    except Exception as exc:  # any failure means "not ready"
        # The type only: driver messages can carry host names, user names or parts of the URL.
        logger.warning("readiness check %s failed: %s", name, type(exc).__qualname__)
        return "failed", None
    return "ok", None


metrics_router = APIRouter(tags=["health"], route_class=GatewayRoute)
"""Not a public router: its route takes ``MetricsReader``, which asks for a token when the setting says so."""


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text format."},
        **problem_responses(InvalidToken, InsufficientScope),
    },
    # A token is optional unless DANCU_METRICS_TOKEN_REQUIRED: `{}` ("no authentication") is added to the
    # OAuth2 requirement FastAPI derives from the dependency.
    openapi_extra={"security": [{}]},
)
async def metrics(state: AppStateDep, _reader: MetricsReader) -> Response:
    """This process's metrics; with ``DANCU_METRICS_TOKEN_REQUIRED`` an ``admin`` or ``audit.read`` token."""
    return Response(state[METRICS].render(), media_type=METRICS_CONTENT_TYPE)
