"""The route class of every router: the caller is authenticated before its body is judged.

FastAPI decodes a JSON body before it solves dependencies, so a caller without a token who sends malformed
JSON (or bytes that are not UTF-8) would learn 422 or 400 where the contract says 401. Here a body that does
not decode is handed on as a marker no request model accepts: dependencies (authorisation first) run as
usual, then body validation fails and ``app.problems`` reports it as the 422 ``json_invalid`` it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.requests import ClientDisconnect

from app.problems import MALFORMED_JSON_KEY

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


class MalformedJSON:
    """Stands in for a body that could not be decoded; it validates as no request body.

    FastAPI validates a body with ``from_attributes``: a plain object would read as a model whose members
    are all missing, which a model with only optional members (the audit search and export filters)
    accepts as "no filter". Every attribute read raises instead, so each member fails
    (``get_attribute_error``), and a list or mapping body fails on its type; ``app.problems`` then
    reports the 422 ``json_invalid``. tests/app/test_malformed_json.py sends malformed JSON to every route
    that takes a JSON body.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # Python's own probes (copy, pickle, hasattr) see a plain object
            raise AttributeError(name)
        raise ValueError("the request body is not valid JSON")


MALFORMED_JSON = MalformedJSON()


class DeferredJSONRequest(Request):
    """A request whose body, if it is not JSON, reads as ``MALFORMED_JSON`` (reported after authentication).

    Its ``body()`` is Starlette's without the async generator and ``aclosing`` it reads through (the same
    messages read, the same ``ClientDisconnect``, the same state left behind): a few µs on every call.
    """

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            if self._stream_consumed:
                raise RuntimeError("Stream consumed")
            chunks: list[bytes] = []
            while True:
                message = await self._receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                elif message["type"] == "http.disconnect":
                    self._is_disconnected = True
                    raise ClientDisconnect()
            self._stream_consumed = True
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        try:
            return await super().json()
        except ValueError:  # json.JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            self.scope[MALFORMED_JSON_KEY] = True
            return MALFORMED_JSON


FastPath = Callable[[Request], Awaitable[Response | None]]
"""Answers the ordinary case of a route without FastAPI's dependency machinery, or None to hand the request
to the route's declared handler (``fast_path``)."""

_FAST_PATH = "__gateway_fast_path__"


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A route's fast path, as ``app.middleware.GatewayMiddleware`` calls it before routing."""

    path_format: str
    """The route's path (what the metrics name it by; the fast routes have no path parameters)."""
    fast: FastPath


def fast_routes(*routers: APIRouter) -> dict[str, FastRoute]:
    """The POST routes of ``routers`` that have a fast path, by path."""
    found: dict[str, FastRoute] = {}
    for router in routers:
        for route in router.routes:
            fast = getattr(getattr(route, "endpoint", None), _FAST_PATH, None)
            if isinstance(route, APIRoute) and fast is not None and "POST" in (route.methods or ()):
                found[route.path] = FastRoute(route.path_format, fast)
    return found


def fast_path(fast: FastPath) -> Callable[[_Endpoint], _Endpoint]:
    """Give a route a fast path, which ``app.middleware.GatewayMiddleware`` runs before routing (the app
    passes ``fast_routes(router)`` to it); None hands the request on to the route as declared, which then runs
    exactly as without it.

    Why: solving a citizen route's dependency graph (token, client and grant, purpose and dossier headers,
    body, service) costs FastAPI several times a bare endpoint's whole CPU (measured in process: ~300 µs of a
    verification's ~1 ms here), in work that is the same on every call. The fast path does the same checks
    directly for the ordinary case and answers it; anything else (no or bad token, a refused purpose, a header
    or body that does not validate, any other content type) must return None *before any side effect*, so
    that the declared route produces its usual answer, problem and audit event. The OpenAPI document is built
    from the declared route and is unchanged.
    """

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _FAST_PATH, fast)
        return endpoint

    return mark


class GatewayRoute(APIRoute):
    """An ``APIRoute`` whose body decoding errors surface after the dependencies (authentication) ran."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def deferred(request: Request) -> Response:
            return await handler(DeferredJSONRequest(request.scope, request.receive, request._send))

        return deferred


class PreparedJSON(Response):
    """A JSON answer the route has already shaped: serialised once with orjson, not validated again.

    A route declared with ``response_model`` that returns a plain dict has FastAPI validate it against the
    model and encode it through ``jsonable_encoder`` (~10% of a verification's CPU). The hot routes build their
    answers from typed values themselves, keep ``response_model`` for the OpenAPI document, and return this;
    the response tests check the bodies against the models.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
