"""Router composition: every router the gateway serves, and which of them answer without a token.

Feature routers are included with their authorisation alias (``dependencies=[...]``) right here, so a route
is authenticated by default and the public ones are the short, reviewed list below.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from app.admin.router import router as admin_router
from app.audit.integrity_router import router as integrity_router
from app.audit.router import router as audit_router
from app.auth.dependencies import require_admin
from app.auth.router import router as auth_router
from app.citizens.router import router as citizens_router
from app.forms.router import admin_router as forms_admin_router
from app.forms.router import router as forms_router
from app.health.router import metrics_router
from app.health.router import router as health_router
from app.stats.router import router as stats_router

PUBLIC_ROUTERS: tuple[APIRouter, ...] = (health_router, auth_router)
"""Answered without a token. Everything else is included with a scope alias."""


ROUTERS: tuple[APIRouter, ...] = (
    citizens_router,
    *PUBLIC_ROUTERS,
    audit_router,
    integrity_router,
    metrics_router,
    forms_router,
    stats_router,
)
"""Every router but the admin one, in routing order: routing tries the routes in order, and the citizen routes
carry nearly all the traffic. Each route of the ones not public names its scope in its signature (``AuditReader``,
``VerifyCall``, ...)."""


def build_router() -> APIRouter:
    router = APIRouter()
    for included in ROUTERS:
        router.include_router(included)
    # Every admin route needs the `admin` scope, whatever its signature says.
    router.include_router(admin_router, dependencies=[Depends(require_admin)])
    router.include_router(forms_admin_router, dependencies=[Depends(require_admin)])
    return router


def public_paths() -> frozenset[str]:
    """The paths anyone may call (a test checks that no other route is left without authorisation)."""
    return frozenset(
        route.path for public in PUBLIC_ROUTERS for route in public.routes if isinstance(route, APIRoute)
    )


def operation_id(route: APIRoute) -> str:
    """Stable, readable OpenAPI operation ids: ``<first tag>-<function name>``."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name
