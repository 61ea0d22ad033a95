"""The citizen routes' fast path (``app.citizens.fast``): the ordinary call skips routing and FastAPI's
dependency solving, and the cases it names are answered by the route as declared, exactly as before
(tests/citizens/test_equivalence.py compares the two answer for answer)."""

from __future__ import annotations

from typing import Any

import fastapi.dependencies.utils
import fastapi.routing
import pytest
from fastapi import Request, Response

from app.audit.writer import AdminLog
from app.auth.dependencies import ACCESS, KEYS
from app.citizens.dependencies import BACKEND, CITIZENS
from app.citizens.fast import CitizenFastPath, fast_routes
from app.citizens.router import router as citizens_router
from tests.harness import HEAD, PURPOSE, Gateway

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


async def test_a_refused_token_is_answered_by_the_fast_path_as_the_route_would(
    sqlite_gateway: Gateway, solved: list[str]
) -> None:
    client = await sqlite_gateway.register(scopes=("citizen.verify",))
    solved.clear()  # the token request
    bad = await sqlite_gateway.call(
        client, "/v1/citizens/verify", VERIFY, headers={"Authorization": "Bearer x"}
    )
    assert (bad.status_code, bad.json()["code"]) == (401, "invalid_token")
    assert bad.headers["www-authenticate"].startswith("Bearer")
    scope = await sqlite_gateway.call(client, "/v1/citizens/lookup", {"personal_id": HEAD})
    assert (scope.status_code, scope.json()["code"]) == (403, "insufficient_scope")
    assert solved == []


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


def _fast_path_layer(gw: Gateway) -> CitizenFastPath:
    layer: Any = gw.app.middleware_stack
    while not isinstance(layer, CitizenFastPath):
        layer = layer.app
    return layer


async def test_the_fast_path_is_tried_once_before_routing_and_hands_on_the_body(
    sqlite_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await sqlite_gateway.register()
    await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)  # the middleware stack is built by now
    layer = _fast_path_layer(sqlite_gateway)
    route, fast = layer.routes["/v1/citizens/verify"]
    tried: list[Response | None] = []

    async def counted(request: Request, body: bytes) -> Response | None:
        answer = await fast(request, body)
        tried.append(answer)
        return answer

    monkeypatch.setitem(layer.routes, "/v1/citizens/verify", (route, counted))
    routed: list[str] = []
    original = fastapi.routing.APIRoute.handle

    async def handle(self: fastapi.routing.APIRoute, *args: Any) -> None:
        routed.append(self.path)
        await original(self, *args)

    monkeypatch.setattr(fastapi.routing.APIRoute, "handle", handle)
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    assert len(tried) == 1
    assert tried[0] is not None
    assert routed == []  # answered before routing
    # Read and then handed on: the declared route reads the same body (it names the resident in the event).
    before = len(await sqlite_gateway.events())
    refused = await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY, purpose="NOT-GRANTED")
    assert refused.json()["code"] == "purpose_not_allowed"
    assert tried[1:] == [None]  # tried once, then the declared route answered
    assert routed == ["/v1/citizens/verify"]
    (event,) = (await sqlite_gateway.events())[before:]
    assert (event.reason, event.fields) == ("purpose_not_allowed", ["full_name", "date_of_birth"])


def test_fast_routes_are_found_under_a_proxy_root_path() -> None:
    layer = CitizenFastPath(None, routes=fast_routes(citizens_router))  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "path": "/v1/citizens/verify"}
    assert layer.fast_for(scope) is not None
    assert layer.fast_for({**scope, "path": "/gw/v1/citizens/verify", "root_path": "/gw"}) is not None
    assert layer.fast_for({**scope, "root_path": "/gw"}) is not None
    assert layer.fast_for({**scope, "method": "GET"}) is None
    assert layer.fast_for({**scope, "path": "/v1/citizens/verify/"}) is None
    assert set(layer.routes) == {
        "/v1/citizens/verify",
        "/v1/citizens/verify/batch",
        "/v1/citizens/lookup",
        "/v1/citizens/household",
    }


async def test_fast_answers_cross_the_frameworks_outer_layers(
    sqlite_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is bypassed outside the gateway's middleware: FastAPI's OpenTelemetry bridge, when a
    provider is configured, sees fast answers as any other."""
    import starlette.middleware.errors

    crossed: list[str] = []
    original = starlette.middleware.errors.ServerErrorMiddleware.__call__

    async def counting(self: Any, scope: Any, receive: Any, send: Any) -> None:
        crossed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(starlette.middleware.errors.ServerErrorMiddleware, "__call__", counting)
    client = await sqlite_gateway.register()
    crossed.clear()
    assert (await sqlite_gateway.call(client, "/v1/citizens/verify", VERIFY)).status_code == 200
    assert crossed == ["/v1/citizens/verify"]
