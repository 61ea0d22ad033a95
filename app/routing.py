"""The route class of every router: the caller is authenticated before its body is judged.

FastAPI decodes a JSON body before it solves dependencies, so a caller without a token who sends malformed
JSON (or bytes that are not UTF-8) would learn 422 or 400 where the contract says 401. Here a body that does
not decode is handed on as a marker no request model accepts: dependencies (authorisation first) run as
usual, then body validation fails and ``app.problems`` reports it as the 422 ``json_invalid`` it is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.problems import MALFORMED_JSON_KEY


class MalformedJSON:
    """Stands in for a body that could not be decoded; it validates as no request model."""


MALFORMED_JSON = MalformedJSON()


class _DeferredJSONRequest(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        except ValueError:  # json.JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            self.scope[MALFORMED_JSON_KEY] = True
            return MALFORMED_JSON


class GatewayRoute(APIRoute):
    """An ``APIRoute`` whose body decoding errors surface after the dependencies (authentication) ran."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def deferred(request: Request) -> Response:
            return await handler(_DeferredJSONRequest(request.scope, request.receive, request._send))

        return deferred
