"""The route class of every router: the caller is authenticated before its body is judged.

FastAPI decodes a JSON body before it solves dependencies, so a caller without a token who sends malformed
JSON (or bytes that are not UTF-8) would learn 422 or 400 where the contract says 401. Here a body that does
not decode is handed on as a marker no request model accepts: dependencies (authorisation first) run as
usual, then body validation fails and ``app.problems`` reports it as the 422 ``json_invalid`` it is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.problems import MALFORMED_JSON_KEY


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
    """A request whose body, if it is not JSON, reads as ``MALFORMED_JSON`` (reported after authentication)."""

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
            if not isinstance(request, DeferredJSONRequest):
                request = DeferredJSONRequest(request.scope, request.receive)
            return await handler(request)

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
