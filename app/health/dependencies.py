"""Who may read ``/metrics``: anyone by default; when ``DANCU_METRICS_TOKEN_REQUIRED`` is true a token with
``metrics.read`` (the least privilege a scraper needs), ``admin`` or ``audit.read`` (docs/contract.md, Health
and metrics)."""

# No `from __future__ import annotations`: FastAPI must see the Security(...) in the signature as an object.
from typing import Annotated, Final

from fastapi import Depends, Request, Security

from app.auth.context import AuthContext
from app.auth.dependencies import oauth2_scheme, require_scope
from app.health.metrics import GatewayMetrics
from app.state import AppState, StateKey

METRICS: Final = StateKey[GatewayMetrics]("metrics")
"""This app's Prometheus registry (``GET /metrics``); the backend, limiter and audit writer feed it."""

METRICS_SCOPES = ("metrics.read", "admin", "audit.read")

_require_metrics_scope = require_scope(*METRICS_SCOPES)


async def require_metrics_reader(
    request: Request,
    authorization: Annotated[str | None, Security(oauth2_scheme, scopes=list(METRICS_SCOPES))],
) -> AuthContext | None:
    """None while the setting is off (the token, if any, is not even read); else the checks of
    ``require_scope("metrics.read", "admin", "audit.read")``: 401 ``invalid_token``, 403
    ``insufficient_scope``."""
    state: AppState = request.app.state.dancu
    if not state.settings.metrics_token_required:
        return None
    return await _require_metrics_scope(request, authorization=authorization)


MetricsReader = Annotated[AuthContext | None, Depends(require_metrics_reader)]
