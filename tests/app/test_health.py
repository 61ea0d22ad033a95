from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.api import public_paths
from app.citizens.dependencies import BACKEND
from app.config import Settings
from app.console.router import PUBLIC_PATHS as CONSOLE_PUBLIC_PATHS
from app.health import router as health_router
from app.main import create_app
from app.state import AppState


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "backend": "ok", "limits": "ok", "audit": "ok"},
    }


async def test_not_ready_when_the_database_is_down() -> None:
    # A port bound but not listening refuses connections. Building and starting the app must not need the
    # database; /readyz must say it is down.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        app = create_app(
            Settings(_env_file=None, database_url=f"postgresql://dancu:pw@127.0.0.1:{port}/dancu")
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
        ):
            liveness = await client.get("/healthz")
            response = await client.get("/readyz", headers={"X-Request-Id": "ready-1"})

    assert liveness.status_code == 200
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["database"] == "failed"
    assert body["request_id"] == "ready-1"
    assert "pw" not in response.text
    assert response.headers["retry-after"] == "5"  # every 503 says when to try again


async def test_not_ready_while_the_upstream_breaker_is_open(settings: Settings) -> None:
    # docs/contract.md, Health and metrics: an open breaker fails every lookup at once, so /readyz is 503 with
    # the seconds until its next probe, and no health request is made to the upstream meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        app = create_app(
            settings.model_copy(update={"backend": "http", "backend_url": f"http://127.0.0.1:{port}"})
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
        ):
            backend = app.state.dancu[BACKEND].inner
            for _ in range(backend.breaker.failure_threshold):
                backend.breaker.failure()
            response = await client.get("/readyz", headers={"Accept-Language": "en"})

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["backend"] == "failed"
    assert "circuit breaker" in body["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= backend.breaker.cooldown


async def test_a_probe_that_hangs_fails_after_the_timeout(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout is shortened for the test, so the real probes (a database query each) are replaced by one
    that answers without waiting: under load a real query could take longer than the shortened timeout."""
    never = asyncio.Event()

    async def hangs(state: AppState) -> None:
        await never.wait()

    async def answers(state: AppState) -> None:
        return None

    monkeypatch.setattr(health_router, "PROBE_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(health_router, "READINESS_PROBES", {"quick": answers, "slow": hangs})

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"quick": "ok", "slow": "failed"}


def test_only_health_and_oauth_routes_are_public(tmp_path: Path) -> None:
    app: FastAPI = create_app(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/x.db"))

    routes = {ctx.path for ctx in iter_route_contexts(app.routes) if isinstance(ctx.original_route, APIRoute)}

    oauth = {"/oauth2/token", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"}
    assert public_paths() == {"/healthz", "/readyz", *oauth}
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        # The console's sign-in pages and static files are its only routes open without an operator's session;
        # every other console page has `require_operator` (docs/contract.md, section 15).
        if isinstance(route, APIRoute) and ctx.path not in public_paths() | CONSOLE_PUBLIC_PATHS:
            calls: set[str] = set()
            pending = list(route.dependant.dependencies)
            while pending:  # scope checks may sit inside other dependencies (e.g. the citizen call context)
                dependency = pending.pop()
                pending.extend(dependency.dependencies)
                if dependency.call is not None:
                    calls.add(getattr(dependency.call, "__name__", ""))
            # require_scope(...) builds the dependency and names it after its scopes
            assert any(name.startswith("require_") for name in calls), f"{ctx.path} has no scope dependency"
    assert routes > public_paths()
