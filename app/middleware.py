"""Pure ASGI middleware: request id, security headers, last-resort 500, body-size cap.

Pure ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, streaming bodies stay streamed, and
context variables set here are seen by the routes. ``gateway_middleware`` lists them outermost first; the
order matters: the headers must reach every answer, the 413 and 500 problems included.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge
from app.problems import REQUEST_ID_KEY, problem_response, unhandled_error_handler

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The current request's id, for log lines (problems read it from ``scope["state"]``)."""
client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)
"""The verified caller of the current request, for log lines; set by the auth dependency (``record_client``)."""
CLIENT_ID_KEY = "client_id"
"""Where ``record_client`` puts the verified caller in ``scope["state"]`` (the metrics middleware reads it)."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'",
}
# Swagger UI is an HTML page that loads its script and stylesheet from jsDelivr and starts itself with an
# inline script; under `default-src 'none'` it renders blank. Only its own paths get this policy, and only
# where the docs exist at all (not in the prod profile); every API answer keeps the strict one.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; "
    "connect-src 'self'"
)
HSTS = "max-age=63072000; includeSubDomains"


def record_client(scope: Scope, client_id: str) -> None:
    """Name the request's caller once its token is verified: log lines and metrics carry it from then on."""
    scope.setdefault("state", {})[CLIENT_ID_KEY] = client_id
    client_id_var.set(client_id)


def new_request_id() -> str:
    """22 characters of ``[A-Za-z0-9_-]``, 128 random bits."""
    return secrets.token_urlsafe(16)


class RequestIdMiddleware:
    """Keeps the caller's ``X-Request-Id`` when it is 1-64 chars of ``[A-Za-z0-9._-]``, else makes one.

    The id goes to ``scope["state"]["request_id"]`` (problem bodies), ``request_id_var`` (log lines) and the
    response header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = offered if offered and _REQUEST_ID.fullmatch(offered) else new_request_id()
        scope.setdefault("state", {})[REQUEST_ID_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = request_id_var.set(request_id)
        client_token = client_id_var.set(None)  # reset afterwards: an in-process caller shares our context
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client_id_var.reset(client_token)
            request_id_var.reset(token)


class SecurityHeadersMiddleware:
    """Sets the security headers on every answer, replacing any value a route chose."""

    def __init__(self, app: ASGIApp, docs_paths: Collection[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(SECURITY_HEADERS)
        if scope["path"] in self.docs_paths:
            headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        if scope.get("scheme") == "https":
            headers["Strict-Transport-Security"] = HSTS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class UnhandledErrorMiddleware:
    """Answers an exception that no handler took with a 500 ``internal_error`` problem.

    Starlette's own last resort (``ServerErrorMiddleware``) sits outside every user middleware, so its
    answer would lack the request id and the security headers, and it re-raises to the server, which logs a
    stack trace; the contract allows neither. The log line is written by ``unhandled_error_handler``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            response = await unhandled_error_handler(Request(scope), exc)
            if not started:  # else the answer is half sent: the server closes the connection
                await response(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised into the application when it reads past the cap."""


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 ``payload_too_large``.

    A declared ``Content-Length`` over the cap is refused before anything is read. A body without one
    (chunked) is counted as the application reads it; past the cap the read raises, whatever the
    application then answers is dropped, and the 413 goes out instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            await self._refuse(scope, receive, send)
            return

        received = 0
        exceeded = started = False

        async def receive_counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def send_unless_exceeded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_unless_exceeded)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(PayloadTooLarge(self.max_bytes), Request(scope))
        await response(scope, receive, send)


def gateway_middleware(*, max_body_bytes: int, docs_paths: Collection[str] = ()) -> list[Middleware]:
    """The gateway's middleware, outermost first."""
    return [
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeadersMiddleware, docs_paths=docs_paths),
        Middleware(UnhandledErrorMiddleware),
        Middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes),
    ]
