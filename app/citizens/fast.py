"""The citizen routes' fast path: the ordinary call answered before routing, without FastAPI's dependency
solving.

Why: solving a citizen route's dependency graph (token, client and grant, purpose and dossier headers, body,
service) costs FastAPI several times a bare endpoint's whole CPU (measured in process: ~300 µs of a
verification's ~1 ms here), in work that is the same on every call; routing itself costs ~50 µs more (a
route class that answered in its handler measured that much slower than answering before routing).

How: ``CitizenFastPath`` is a pure ASGI middleware, the innermost of the app's own (inside
``app.middleware.GatewayMiddleware``, so its answers get the request id, the security headers, the body cap
and the metrics like any other). For a POST to a route given a fast path (``fast_path``), it runs that fast
path, which checks directly what the declared route's dependencies check and answers the ordinary call; when
it returns None, the request goes on to routing with its body given back, and the route as declared runs
exactly as without it. The OpenAPI document is built from the declared route and is unchanged.

The fast path hands on (returns None) before any side effect, only in these cases, each tested in
tests/citizens/test_fast_path.py and compared answer for answer in tests/citizens/test_equivalence.py:

* a header the declared route refuses, or audits as a refusal: no ``X-Purpose``, an ``X-Purpose`` or
  ``X-Dossier-Id`` over ``MAX_HEADER``, an ``X-End-User`` that is not 1-128 characters of
  ``[A-Za-z0-9._@:-]``, a content type other than ``application/json``;
* a purpose the client's grant does not name or that is not registered, or no ``X-End-User`` when the grant
  requires one (the declared route audits the refusal, naming the residents the body names);
* a body that is not strict JSON (``orjson.JSONDecodeError``) or that its model refuses (pydantic's
  ``ValidationError``): the declared route reports the 422, after authentication.
* a batch of more items than ``DANCU_BATCH_MAX_ITEMS``: the declared route audits the 413 refusal before
  any item is validated.

Anything else it raises is what the declared route raises at the same step (the token check and the use case
are the same functions): a ``GatewayError`` becomes its problem answer here, as the app's handler renders it
(``app.problems.problem_response``); any other exception goes to the gateway's middleware, the last resort.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.context import AuthContext
from app.citizens.dependencies import (
    CITIZENS,
    MAX_HEADER,
    batch_oversized,
    call_context,
    purpose_granted,
)
from app.citizens.schemas import BatchVerifyRequest
from app.citizens.service import CallContext, CitizenService
from app.errors import GatewayError
from app.inputs import end_user_valid, header_text
from app.problems import problem_response
from app.routing import PreparedJSON
from app.state import AppState

FastPath = Callable[[Request, bytes], Awaitable[Response | None]]
"""Answers a route's ordinary call (the request and its body), or returns None to hand the request to the
route as declared."""
UseCase = Callable[[CitizenService, CallContext, Any], Awaitable[dict[str, Any]]]
"""What a citizen route does once its call is checked: the same call on both paths."""

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_FAST_PATHS: dict[Callable[..., Any], FastPath] = {}
"""Each citizen endpoint's fast path, filed by ``fast_path`` and found by ``fast_routes``."""

_FAST_HEADERS = frozenset(
    {b"authorization", b"x-purpose", b"x-dossier-id", b"x-end-user", b"content-type", b"accept-language"}
)


def _json_content(content_type: str | None) -> bool:
    return content_type is not None and content_type.partition(";")[0].strip().lower() == "application/json"


def ordinary_call(
    action: str, require: Callable[..., Awaitable[AuthContext]], model: type[BaseModel], use_case: UseCase
) -> FastPath:
    """The fast path of a route: a verified token of an active client whose grant holds the scope and the
    purpose, a registered purpose, headers within their limits, and a JSON body ``model`` accepts; then
    ``use_case``. The cases it hands on are listed in the module docstring."""

    async def fast(request: Request, raw: bytes) -> Response | None:
        # One pass over the raw headers rather than five scans of Starlette's ``Headers`` (the first
        # occurrence of a name counts, as ``Headers.get`` has it).
        found: dict[bytes, str] = {}
        for name, value in request.scope["headers"]:
            if name in _FAST_HEADERS and name not in found:
                found[name] = value.decode("latin-1")
        purpose = found.get(b"x-purpose")
        dossier_id = found.get(b"x-dossier-id")
        end_user = found.get(b"x-end-user")
        if dossier_id is not None and (dossier_id := header_text(dossier_id)) is None:
            return None  # not UTF-8: 422 from the declared route
        if (
            not purpose
            or len(purpose) > MAX_HEADER
            or (dossier_id is not None and len(dossier_id) > MAX_HEADER)
            or (end_user is not None and not end_user_valid(end_user))
            or not _json_content(found.get(b"content-type"))
        ):
            return None
        auth = await require(request, authorization=found.get(b"authorization"))
        state: AppState = request.app.state.dancu
        if not await purpose_granted(state, auth, purpose) or auth.grant.lacks_end_user(end_user):
            return None
        try:
            # orjson accepts only strict JSON, which json.loads (the declared route's) reads identically.
            decoded = orjson.loads(raw)
            if model is BatchVerifyRequest and batch_oversized(decoded, state.settings.batch_max_items):
                return None  # 413 from the declared route, before any item is validated
            body = model.model_validate(decoded)
        except (orjson.JSONDecodeError, ValidationError):
            return None
        ctx = call_context(request, state, auth, purpose, dossier_id, found.get(b"accept-language"), end_user)
        return PreparedJSON(await use_case(state[CITIZENS], ctx, body))

    fast.__name__ = "fast_" + action.replace(".", "_")
    return fast


def fast_path(fast: FastPath) -> Callable[[_Endpoint], _Endpoint]:
    """Give a citizen endpoint its fast path (``ordinary_call``), which ``CitizenFastPath`` tries first."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        _FAST_PATHS[endpoint] = fast
        return endpoint

    return mark


def fast_routes(router: APIRouter) -> dict[str, tuple[APIRoute, FastPath]]:
    """The POST routes of ``router`` given a fast path, by path: what ``CitizenFastPath`` serves."""
    found: dict[str, tuple[APIRoute, FastPath]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute) and "POST" in (route.methods or ()):
            fast = _FAST_PATHS.get(route.endpoint)
            if fast is not None:
                found[route.path] = (route, fast)
    return found


class CitizenFastPath:
    """Tries a citizen route's fast path before routing; routing answers whatever it hands on."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, tuple[APIRoute, FastPath]]) -> None:
        self.app = app
        self.routes = dict(routes)

    def fast_for(self, scope: Scope) -> tuple[APIRoute, FastPath] | None:
        """The route ``scope`` is for and its fast path, if it is a POST to a route that has one."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # the path routing matches, as Starlette's
            path = path[len(root) :]
        return self.routes.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.fast_for(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        route, fast = found
        # The body first, as FastAPI reads it before the dependencies: a body over the cap is 413 (raised by
        # the gateway's middleware as it is read), whatever else is wrong with the request.
        body = await _body(receive)
        request = Request(scope)
        scope["route"] = route  # what the metrics name the request by, as routing would set it
        try:
            response = await fast(request, body)
        except GatewayError as error:  # the app's handler for GatewayError, as routing would call it
            response = problem_response(error, request)
        if response is not None:
            await response(scope, receive, send)
            return
        del scope["route"]
        await self.app(scope, _replaying(body, receive), send)


async def _body(receive: Receive) -> bytes:
    """The request body, read whole (as Starlette's ``Request.body`` reads it, without its generator)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive``, after first giving back ``body`` (already read from it)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
