"""The mock's one pure-ASGI middleware: request id, API key, body cap, security headers, last-resort 500.

One layer rather than four because every request to the benchmarked lookup pays for each layer; the
headers are scanned once. Pure ASGI (not ``BaseHTTPMiddleware``): no extra task per request, and the
trickle fault's streamed body stays streamed. It also shortens a failed startup to one line (see
``MockMiddleware._lifespan``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_csdlqg.problems import (
    REQUEST_ID_KEY,
    InternalError,
    InvalidApiKey,
    MockProblem,
    PayloadTooLarge,
    problem_response,
)

logger = logging.getLogger("mock_csdlqg")

API_PREFIX = "/api/v1/"
HEALTH_PATH = "/api/v1/health"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
MAX_BODY_BYTES = 1 << 20
"""A batch of 1000 IDs is about 16 KiB; anything near this cap is not a caller of the contract."""

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
)
_STRICT_CSP = ((b"content-security-policy", b"default-src 'none'"),)
# Swagger UI loads its script and stylesheet from jsDelivr and starts with an inline script.
_DOCS_CSP = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
        b"style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src https://fastapi.tiangolo.com data:; "
        b"connect-src 'self'",
    ),
)
_OWN_HEADERS = frozenset(
    {b"x-request-id", b"content-security-policy"} | {name for name, _ in _SECURITY_HEADERS}
)


def requires_key(path: str) -> bool:
    """Everything under ``/api`` and ``/_mock`` needs ``X-Api-Key``, except ``/api/v1/health``."""
    return path.startswith(("/api/", "/_mock")) and path != HEALTH_PATH


class MockMiddleware:
    """Request id (the caller's when it is 1-64 chars of ``[A-Za-z0-9._-]``), API key, security headers.

    The request id goes to ``scope["state"]["request_id"]`` for problem bodies. A missing or wrong key is 401
    ``invalid_api_key`` (compared in constant time); a declared body over ``MAX_BODY_BYTES`` is 413. An
    exception no handler took becomes a 500 problem, logged by type and place only: its message could
    carry resident data.
    """

    def __init__(self, app: ASGIApp, *, api_key: str, startup_error: Callable[[], str | None]) -> None:
        self.app = app
        self.api_key = api_key.encode()
        self.startup_error = startup_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, self._lifespan(send) if scope["type"] == "lifespan" else send)
            return
        offered = key = length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value
            elif name == b"x-api-key":
                key = value
            elif name == b"content-length":
                length = value
        if offered is not None and _REQUEST_ID.fullmatch(offered):
            request_id = offered.decode()
        else:
            request_id = secrets.token_urlsafe(16)
        scope.setdefault("state", {})[REQUEST_ID_KEY] = request_id
        path: str = scope["path"]
        extra = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
        extra.extend(_DOCS_CSP if path in DOCS_PATHS else _STRICT_CSP)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [item for item in message.get("headers", ()) if item[0].lower() not in _OWN_HEADERS]
                message["headers"] = headers + extra
            await send(message)

        problem: MockProblem
        if requires_key(path) and (key is None or not secrets.compare_digest(key, self.api_key)):
            problem = InvalidApiKey()
        elif length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            problem = PayloadTooLarge()
        else:
            try:
                await self.app(scope, receive, send_with_headers)
                return
            except Exception as exc:  # the last resort: answer (if still possible), log without the message
                frame = exc.__traceback__
                while frame is not None and frame.tb_next is not None:
                    frame = frame.tb_next
                where = f"{frame.tb_frame.f_globals.get('__name__', '?')}:{frame.tb_lineno}" if frame else "?"
                logger.error(  # no traceback: it would print the message
                    "unhandled %s at %s (request_id=%s, %s %s)",
                    type(exc).__qualname__,
                    where,
                    request_id,
                    scope["method"],
                    path,
                )
                if started:  # half an answer is out: the server closes the connection
                    return
                problem = InternalError()
        await problem_response(problem, request_id)(scope, receive, send_with_headers)

    def _lifespan(self, send: Send) -> Send:
        """Replaces the traceback Starlette reports for a failed startup with the one-line reason."""

        async def send_short(message: Message) -> None:
            reason = self.startup_error()
            if message["type"] == "lifespan.startup.failed" and reason:
                message = {**message, "message": reason}
            await send(message)

        return send_short
