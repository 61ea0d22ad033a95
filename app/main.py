"""The gateway's ASGI application: ``create_app()`` wires lifespan, middleware, problems and routers."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from app.api import build_router, operation_id
from app.auth.service import JWKS_MAX_AGE_SECONDS, JWKS_PATH
from app.citizens.fast import CitizenFastPath, fast_routes
from app.citizens.router import router as citizens_router
from app.config import Settings, get_settings
from app.console.router import install as install_console
from app.docs import DOCS_PAGES, install_docs, install_error_page
from app.health.metrics import GatewayMetrics, request_observer
from app.lifespan import build_lifespan
from app.middleware import gateway_middleware
from app.openapi import error_classes, gateway_openapi
from app.problems import PROBLEM_HANDLERS, problem_openapi


class _GatewayAPI(FastAPI):
    """FastAPI, with the problem schemas in its OpenAPI document."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = gateway_openapi(problem_openapi(super().openapi()))
        return self.openapi_schema


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
        docs_url=None,  # app.docs serves the pages with their assets from the package (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        exception_handlers=PROBLEM_HANDLERS,
        middleware=[
            *gateway_middleware(
                max_body_bytes=settings.max_body_bytes,
                docs_paths=DOCS_PAGES if docs else (),
                observer=request_observer(metrics),  # sees the final status: 413 and 500 answers count too
                cache_control={JWKS_PATH: f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
                sandbox=settings.sandbox,  # X-Sandbox-Fault read only here (docs/contract.md section 17)
            ),
            # The citizen routes' ordinary calls, answered before routing (inside the gateway's middleware).
            Middleware(CitizenFastPath, routes=fast_routes(citizens_router)),
        ],
        generate_unique_id_function=operation_id,
        # FastAPI's own OpenTelemetry layer off: its logs would carry validation messages (resident values)
        # to whatever provider a host configures, and its per-request provider checks cost about 2% of a
        # read's instructions (callgrind, bench/inprocess.py read). The gateway's metrics are /metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(build_router())
    if docs:
        install_docs(app, "/openapi.json")
    install_error_page(app, error_classes())
    install_console(app)
    return app


app = create_app()
