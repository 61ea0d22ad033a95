"""The citizen routes' fast path (``app.routing.fast_path``): the ordinary call skips FastAPI's dependency
solving, and everything else is answered by the route as declared, exactly as before."""

from __future__ import annotations

from typing import Any

import fastapi.dependencies.utils
import fastapi.routing
import pytest
from fastapi import Request, Response

from app.audit.writer import AdminLog
from app.auth.dependencies import ACCESS, KEYS
from app.citizens.dependencies import BACKEND, CITIZENS
from app.middleware import GatewayMiddleware
from app.routing import FastRoute
from tests.citizens.conftest import HEAD, PURPOSE, Gateway

VERIFY = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The endpoints whose dependencies FastAPI solved (i.e. the declared route ran)."""
    calls: list[str] = []
    original = fastapi.dependencies.utils.solve_dependencies  # what fastapi.routing calls

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["dependant"].call.__name__)
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/citizens/verify", VERIFY),
        ("/v1/citizens/verify/batch", {"items": [VERIFY, {"personal_id": HEAD, "gender": "male"}]}),
        ("/v1/citizens/lookup", {"personal_id": HEAD, "fields": ["full_name"]}),
        ("/v1/citizens/household", {"personal_id": HEAD}),
    ],
)
async def test_the_ordinary_call_takes_the_fast_path(
    sqlite_gateway: Gateway, solved: list[str], path: str, body: Any
) -> None:
    client = await sqlite_gateway.register()
    before = len(await sqlite_gateway.events())
    solved.clear()  # the token request
    response = await sqlite_gateway.call(client, path, body, dossier="HS-1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert solved == []
    events = (await sqlite_gateway.events())[before:]
    assert events
    assert all(e.outcome == "allowed" and e.purpose == PURPOSE and e.dossier_id == "HS-1" for e in events)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"purpose": None}, 400, "purpose_required"),
        ({"purpose": "NOT-REGISTERED"}, 403, "purpose_not_allowed"),
        ({"purpose": "P" * 65}, 422, "validation_failed"),
        ({"dossier": "D" * 65}, 422, "validation_failed"),
        ({"headers": {"Authorization": "Bearer nonsense"}}, 401, "invalid_token"),
        ({"body": {**VERIFY, "unknown": 1}}, 422, "validation_failed"),
        ({"body": {"personal_id": "052068000108"}}, 422, "validation_failed"),
    ],
)
async def test_everything_else_is_answered_by_the_declared_route(
    sqlite_gateway: Gateway, solved: list[str], change: dict[str, Any], status: int, code: str
) -> None:
    client = await sqlite_gateway.register()
    solved.clear()  # the token request
    body = change.pop("body", VERIFY)
    response = await sqlite_gateway.call(client, "/v1/citizens/verify", body, **change)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert "verify" in solved  # the declared route answered


async def test_malformed_json_and_other_content_types_go_to_the_declared_route(
    sqlite_gateway: Gateway, solved: list[str]
) -> None:
    client = await sqlite_gateway.register()
    solved.clear()  # the token request
    headers = {"Authorization": f"Bearer {client.token}", "X-Purpose": PURPOSE}
    for content, content_type in (
        (b'{"personal_id": ', "application/json"),
        (b"personal_id=052068000108", "application/x-www-form-urlencoded"),
        (b'{"personal_id": "052068000108", "gender": "male", "x": NaN}', "application/json"),
    ):
        response = await sqlite_gateway.http.post(
            "/v1/citizens/verify", content=content, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"
    assert solved.count("verify") == 3
    # Without a token, a malformed body is still 401 first (authentication before the body is judged).
    response = await sqlite_gateway.http.post(
        "/v1/citizens/verify",
        content=b"{",
        headers={"Content-Type": "application/json", "X-Purpose": PURPOSE},
    )
    assert response.status_code == 401


async def test_a_suspended_client_is_refused_on_its_next_call(sqlite_gateway: Gateway) -> None:
    client = await sqlite_gateway.register()
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    async with sqlite_gateway.state.sessionmaker() as session:
        from app.auth.service import AuthService

        service = AuthService(session, sqlite_gateway.state[KEYS].secrets, AdminLog(session, actor="test"))
        await service.set_status(client.client_id, "suspended")
        await session.commit()
    sqlite_gateway.state[ACCESS].invalidate()
    response = await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_batches_are_worked_on_a_few_at_a_time(sqlite_gateway: Gateway) -> None:
    """Memory: a batch holds its records while it is verified; the rest wait (and are all answered).

    The first batches to reach the upstream are held there until every batch has reached the service: then
    BATCH_CONCURRENCY are with the upstream and the others wait for a slot, whatever the machine's speed (a
    20 ms sleep in the upstream, as before, let a slow machine finish one batch before the next arrived)."""
    import asyncio

    from app.citizens.service import BATCH_CONCURRENCY

    client = await sqlite_gateway.register(rate_limit_per_minute=1000)
    backend = sqlite_gateway.state[BACKEND]
    service = sqlite_gateway.state[CITIZENS]
    original_get_many, original_batch = backend.get_many, service.verify_batch
    batches = 3 * BATCH_CONCURRENCY
    running = peak = arrived = 0
    everyone_arrived = asyncio.Event()

    async def counted_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == batches:
            everyone_arrived.set()
        return await original_batch(*args, **kwargs)

    async def held_get_many(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.wait_for(everyone_arrived.wait(), 10)
            for _ in range(10):  # a batch let in beyond the slots would get here meanwhile
                await asyncio.sleep(0)
                peak = max(peak, running)
            return await original_get_many(*args, **kwargs)
        finally:
            running -= 1

    backend.get_many = held_get_many  # type: ignore[method-assign]
    service.verify_batch = counted_batch  # type: ignore[method-assign]
    body = {"items": [VERIFY, {"personal_id": HEAD, "gender": "male"}]}
    answers = await asyncio.gather(
        *(sqlite_gateway.call(client, "/v1/citizens/verify/batch", body) for _ in range(batches))
    )
    assert all(a.status_code == 200 for a in answers)
    assert peak == BATCH_CONCURRENCY


def _gateway_middleware(gw: Gateway) -> GatewayMiddleware:
    layer: Any = gw.app.middleware_stack
    while not isinstance(layer, GatewayMiddleware):
        layer = layer.app
    return layer


async def test_the_middleware_answers_before_routing_and_tries_the_fast_path_once(
    sqlite_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await sqlite_gateway.register()
    middleware = _gateway_middleware(sqlite_gateway)
    route = middleware.fast_routes["/v1/citizens/verify"]
    tried: list[Response | None] = []

    async def counted(request: Request) -> Response | None:
        answer = await route.fast(request)
        tried.append(answer)
        return answer

    monkeypatch.setitem(middleware.fast_routes, "/v1/citizens/verify", FastRoute(route.path_format, counted))
    routed: list[str] = []
    original = fastapi.routing.APIRoute.handle

    async def handle(self: fastapi.routing.APIRoute, *args: Any) -> None:
        routed.append(self.path)
        await original(self, *args)

    monkeypatch.setattr(fastapi.routing.APIRoute, "handle", handle)
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    assert len(tried) == 1
    assert tried[0] is not None
    assert routed == []  # answered by the middleware: no routing at all
    refused = await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY, purpose=None)
    assert refused.json()["code"] == "purpose_required"
    assert tried[1:] == [None]  # tried once, then the declared route answered
    assert routed == ["/v1/citizens/verify"]


def test_fast_routes_are_found_under_a_proxy_root_path() -> None:
    from app.middleware import _route_path

    assert _route_path({"path": "/v1/citizens/verify"}) == "/v1/citizens/verify"
    assert _route_path({"path": "/gw/v1/citizens/verify", "root_path": "/gw"}) == "/v1/citizens/verify"
    assert _route_path({"path": "/v1/citizens/verify", "root_path": "/gw"}) == "/v1/citizens/verify"


async def test_fast_routes_skip_the_outer_layers_unless_telemetry_is_on(
    sqlite_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``app.main`` sends a fast route's request straight to the gateway's middleware; any other request, and
    every request while FastAPI's OpenTelemetry bridge is on, crosses Starlette's outer layers as usual."""
    import starlette.middleware.errors

    crossed: list[str] = []
    original = starlette.middleware.errors.ServerErrorMiddleware.__call__

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        crossed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(starlette.middleware.errors.ServerErrorMiddleware, "__call__", counting)
    client = await sqlite_gateway.register()
    await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)  # the middleware stack is built by now
    crossed.clear()
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    assert crossed == []
    refused = await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY, purpose=None)
    assert refused.json()["code"] == "purpose_required"  # handed on by the fast path: answered by routing
    assert crossed == []  # ... still inside the gateway's middleware, which is the last resort here
    app: Any = sqlite_gateway.app
    monkeypatch.setattr(app._native_telemetry, "enabled", lambda: True)
    monkeypatch.setattr(app, "_telemetry_seen_at", float("-inf"))  # look again now
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    assert crossed == ["/v1/citizens/verify"]
