"""The gateway's ASGI application: ``create_app()`` wires lifespan, middleware, problems and routers."""

from __future__ import annotations

import time
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import build_router, operation_id
from app.auth.service import JWKS_MAX_AGE_SECONDS, JWKS_PATH
from app.citizens.router import router as citizens_router
from app.config import Settings, get_settings
from app.console.router import install as install_console
from app.health.metrics import GatewayMetrics, request_observer
from app.lifespan import build_lifespan
from app.middleware import GatewayMiddleware, gateway_middleware
from app.problems import PROBLEM_HANDLERS, problem_openapi
from app.routing import fast_routes

DOCS_URL = "/docs"
DOCS_OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


TELEMETRY_RECHECK_SECONDS = 1.0
"""How long the fast entry trusts its last look at whether FastAPI's OpenTelemetry bridge is on."""


class _GatewayAPI(FastAPI):
    """FastAPI, plus an entry for the fast routes that goes straight to ``GatewayMiddleware``.

    Every request otherwise crosses FastAPI's and Starlette's outer layers before the gateway's middleware:
    the OpenTelemetry check (it looks the tracer, meter and logger providers up on every request), Starlette's
    last-resort ``ServerErrorMiddleware``, the exception telemetry and the app-wide body limit. For a fast
    route none of them does anything here: the gateway's middleware is the last resort and the body cap,
    FastAPI's body limit is not set, and the telemetry bridge is off unless an OpenTelemetry provider is
    configured (looked at once a second; while it is on, every request takes the usual way). py-spy in
    process: ~4% of a verification's samples. Anything that is not a fast route (or not HTTP) takes the usual
    way, and so does a fast route's request the fast path hands on (the middleware sends it to routing).
    """

    _gateway: GatewayMiddleware | None = None
    _telemetry_off = False
    _telemetry_seen_at = float("-inf")

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = problem_openapi(super().openapi())
        return self.openapi_schema

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        layer: Any = stack
        while layer is not None and not isinstance(layer, GatewayMiddleware):
            layer = getattr(layer, "app", None)
        self._gateway = layer
        return stack

    def _outer_layers_idle(self) -> bool:
        if self.root_path or getattr(self, "max_body_size", None) is not None or self.debug:
            return False
        now = time.monotonic()
        if now - self._telemetry_seen_at >= TELEMETRY_RECHECK_SECONDS:
            telemetry = getattr(self, "_native_telemetry", None)
            self._telemetry_off = telemetry is None or not telemetry.enabled()
            self._telemetry_seen_at = now
        return self._telemetry_off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self._gateway
        if gateway is not None and scope["type"] == "http":
            route = gateway.fast_route(scope)
            if route is not None and self._outer_layers_idle():
                scope["app"] = self
                await gateway.serve(scope, receive, send, route)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway, configured by ``settings`` (default: the environment); nothing connects until startup."""
    settings = settings or get_settings()
    settings.check_production()
    # The prod profile serves neither the docs page nor /openapi.json; the contract is published in openapi/.
    docs = settings.profile != "prod"
    metrics = GatewayMetrics()  # this app's own registry: several apps in one process count apart
    app = _GatewayAPI(
        title="dancu-gateway",
        summary="Access-controlled, audited access to the national population database.",
        version=version("dancu-gateway"),
        lifespan=build_lifespan(settings, metrics),
        docs_url=DOCS_URL if docs else None,
        swagger_ui_oauth2_redirect_url=DOCS_OAUTH2_REDIRECT_URL,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        exception_handlers=PROBLEM_HANDLERS,
        middleware=gateway_middleware(
            max_body_bytes=settings.max_body_bytes,
            docs_paths=(DOCS_URL, DOCS_OAUTH2_REDIRECT_URL) if docs else (),
            observer=request_observer(metrics),  # sees the final status: 413 and 500 answers count too
            fast_routes=fast_routes(citizens_router),
            cache_control={JWKS_PATH: f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
        ),
        generate_unique_id_function=operation_id,
    )
    app.include_router(build_router())
    install_console(app)
    return app


app = create_app()
