"""The gateway's middleware, in one pure ASGI layer: request id, security headers, last-resort 500,
body-size cap, and the metrics/access-log observer.

Pure ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, streaming bodies stay streamed, and
context variables set here are seen by the routes. One layer rather than five: each layer wraps ``send`` and
``receive`` in closures of its own and edits the response headers through ``MutableHeaders`` (a scan per
header), which cost about as much as FastAPI's own routing of a bare endpoint (measured in process: /healthz
took 1.5x a bare endpoint's CPU). The order of the former layers is kept, outermost first: the observer sees
the final status (413 and 500 included), every answer carries the request id and the security headers, an
exception no handler took becomes the 500 problem, and a body over the cap becomes the 413 problem.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge
from app.problems import REQUEST_ID_KEY, problem_response, unhandled_error_handler
from app.sandbox import InvalidSandboxFault, fault_var, parse_fault

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The current request's id, for log lines (problems read it from ``scope["state"]``)."""
client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)
"""The verified caller of the current request, for log lines; set by the auth dependency (``record_client``)."""
CLIENT_ID_KEY = "client_id"
"""Where ``record_client`` puts the verified caller in ``scope["state"]`` (the metrics middleware reads it)."""
BODY_TIMED_OUT_KEY = "dancu.body_timed_out"
"""Set in ``scope["state"]`` by ``app.server`` when it answered 408 for a body that stalled."""
CLIENT_CLOSED_STATUS = 499
"""What the observer records for a request whose client went away before it was answered (nginx's code)."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'",
}
# The documentation page (Swagger UI, app.docs) starts itself with an inline script and loads its assets from
# /docs/static on the gateway itself. Only those pages get this
# policy, and only where they exist at all (not in the prod profile); every API answer keeps the strict one.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)
CONSOLE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The console's pages (docs/contract.md, section 15): its own script and stylesheet, no inline script."""
CONSOLE_PREFIX = "/console"
HSTS = "max-age=63072000; includeSubDomains"


def record_client(scope: Scope, client_id: str) -> None:
    """Name the request's caller once its token is verified: log lines and metrics carry it from then on."""
    scope.setdefault("state", {})[CLIENT_ID_KEY] = client_id
    client_id_var.set(client_id)


def new_request_id() -> str:
    """22 characters of ``[A-Za-z0-9_-]``, 128 random bits."""
    return secrets.token_urlsafe(16)


Observer = Callable[[Scope, int, float], None]
"""Told of every answered request: its scope, final status and seconds until the last byte was handed on."""

_OWN_HEADERS = frozenset(
    name.lower().encode("latin-1")
    for name in (*SECURITY_HEADERS, REQUEST_ID_HEADER, "Strict-Transport-Security")
)
_SECURITY = [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()
]
_DOCS_SECURITY = [
    (name, DOCS_CONTENT_SECURITY_POLICY.encode("latin-1") if name == b"content-security-policy" else value)
    for name, value in _SECURITY
]
_CONSOLE_SECURITY = [
    (name, CONSOLE_CONTENT_SECURITY_POLICY.encode("latin-1") if name == b"content-security-policy" else value)
    for name, value in _SECURITY
]
_HSTS = (b"strict-transport-security", HSTS.encode("latin-1"))


class _BodyTooLarge(Exception):
    """Raised into the application when it reads past the cap."""


def _request_id_and_length(scope: Scope) -> tuple[str, bytes | None]:
    """The request's id (the caller's when it is 1-64 chars of ``[A-Za-z0-9._-]``, else a new one) and its
    declared ``Content-Length``, in one pass over the headers (the first occurrence of each counts)."""
    offered: str | None = None
    declared: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"x-request-id" and offered is None:
            offered = value.decode("latin-1")
        elif name == b"content-length" and declared is None:
            declared = value
    return (offered if offered and _REQUEST_ID.fullmatch(offered) else new_request_id()), declared


class _Exchange:
    """One request's messages as they pass: the body read against the cap, the answer given its headers."""

    __slots__ = ("added", "exceeded", "max_bytes", "raw_receive", "raw_send", "received", "started", "status")

    def __init__(
        self, receive: Receive, send: Send, added: list[tuple[bytes, bytes]], max_bytes: int
    ) -> None:
        self.raw_receive = receive
        self.raw_send = send
        self.added = added
        self.max_bytes = max_bytes
        self.status = 500  # what the server answers if nothing is sent at all
        self.started = False
        self.exceeded = False
        self.received = 0

    async def send(self, message: Message) -> None:
        """Hand on the answer with the gateway's headers (replacing any the application set), or drop it
        when it answers a body over the cap (the 413 goes out instead)."""
        if message["type"] == "http.response.start":
            if self.exceeded:
                return
            self.started = True
            self.status = message["status"]
            headers = [h for h in message.get("headers", ()) if h[0].lower() not in _OWN_HEADERS]
            headers.extend(self.added)
            message["headers"] = headers
        elif self.exceeded and not self.started:
            return
        await self.raw_send(message)

    async def receive(self) -> Message:
        """The next message; raises into the application once the body read passes the cap."""
        message = await self.raw_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                self.exceeded = True
                raise _BodyTooLarge
        return message


class GatewayMiddleware:
    """Request id, security headers, the last-resort 500, the body-size cap and the request observer.

    * ``X-Request-Id``: the caller's when it is 1-64 chars of ``[A-Za-z0-9._-]``, else a new one; it goes to
      ``scope["state"]["request_id"]`` (problem bodies), ``request_id_var`` (log lines) and the answer.
    * The security headers go on every answer, replacing any value a route chose; ``cache_control`` names the
      few public paths whose answers may be cached (the JWKS) and the ``Cache-Control`` they get instead.
    * An exception that no handler took is answered with the 500 ``internal_error`` problem (Starlette's own
      last resort sits outside every user middleware: its answer would lack the request id and the headers,
      and the server would log a stack trace; the contract allows neither). Once an answer has started, the
      server closes the connection instead.
    * Bodies over ``max_bytes`` are refused with 413 ``payload_too_large``: a declared ``Content-Length`` over
      the cap before anything is read; a chunked body as the application reads past the cap (the read raises,
      whatever the application then answers is dropped and the 413 goes out instead).
    * ``sandbox`` (``DANCU_SANDBOX``): ``X-Sandbox-Fault`` is read into ``app.sandbox.fault_var`` for the
      request, or refused with 422 ``validation_failed`` before anything else when it is not in the fault
      vocabulary. Without the sandbox the header is not even looked at.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        docs_paths: Collection[str] = (),
        observer: Observer | None = None,
        cache_control: Mapping[str, str] | None = None,
        sandbox: bool = False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.sandbox = sandbox
        self.docs_paths = frozenset(docs_paths)
        self.cache_control = {
            path: [
                (name, value.encode("latin-1") if name == b"cache-control" else given)
                for name, given in _SECURITY
            ]
            for path, value in (cache_control or {}).items()
        }
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An HTTP request: named, given its headers, held to the body cap, answered, observed."""
        started_at = time.perf_counter()
        request_id, declared = _request_id_and_length(scope)
        scope.setdefault("state", {})[REQUEST_ID_KEY] = request_id
        exchange = _Exchange(receive, send, self._headers_for(scope, request_id), self.max_bytes)
        token = request_id_var.set(request_id)
        client_token = client_id_var.set(None)  # reset afterwards: an in-process caller shares our context
        fault_token = fault_var.set(None)
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await self._too_large(scope, exchange)  # before anything is read
            elif self.sandbox and not await self._rehearsal(scope, exchange):
                return  # refused: the fault is not in the vocabulary
            else:
                await self._run(scope, exchange)
        finally:
            fault_var.reset(fault_token)
            client_id_var.reset(client_token)
            request_id_var.reset(token)
            if self.observer is not None:
                self.observer(scope, exchange.status, time.perf_counter() - started_at)

    def _headers_for(self, scope: Scope, request_id: str) -> list[tuple[bytes, bytes]]:
        """The headers every answer to ``scope`` gets: the security headers of its path, HSTS over HTTPS, and
        the request id."""
        path = scope["path"]
        if path in self.docs_paths:
            added = list(_DOCS_SECURITY)
        elif path.startswith(CONSOLE_PREFIX):
            added = list(_CONSOLE_SECURITY)
        else:
            added = list(self.cache_control.get(path, _SECURITY))
        if scope.get("scheme") == "https":
            added.append(_HSTS)
        added.append((b"x-request-id", request_id.encode("latin-1")))
        return added

    async def _run(self, scope: Scope, exchange: _Exchange) -> None:
        """The application's answer; a body read past the cap, a client gone and an exception no handler
        took are answered here."""
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except ClientDisconnect:
            # The client left (or app.server answered 408 for its stalled body): nobody to answer, and
            # nothing wrong with the gateway, so no 500 and no error log line.
            if not exchange.started:
                exchange.status = 408 if scope["state"].get(BODY_TIMED_OUT_KEY) else CLIENT_CLOSED_STATUS
            return
        except Exception as exc:
            if exchange.exceeded and not exchange.started:
                await self._too_large(scope, exchange)
            else:
                await self._unhandled(scope, exchange, exc)
            return
        if exchange.exceeded and not exchange.started:
            await self._too_large(scope, exchange)

    async def _rehearsal(self, scope: Scope, exchange: _Exchange) -> bool:
        """Sandbox only: the request's ``X-Sandbox-Fault`` (the first one) into ``fault_var``; False once the
        422 for a fault outside the vocabulary is answered."""
        value = next((v for name, v in scope["headers"] if name == b"x-sandbox-fault"), None)
        if value is None:
            return True
        try:
            fault_var.set(parse_fault(value.decode("latin-1")))
        except InvalidSandboxFault as error:
            await self._answer(problem_response(error, Request(scope)), scope, exchange.send)
            return False
        return True

    async def _too_large(self, scope: Scope, exchange: _Exchange) -> None:
        """The 413 problem, instead of whatever the application answered to a body over the cap."""
        exchange.exceeded = False
        response = problem_response(PayloadTooLarge(self.max_bytes), Request(scope))
        await self._answer(response, scope, exchange.send)

    async def _unhandled(self, scope: Scope, exchange: _Exchange, exc: Exception) -> None:
        """The 500 problem (and its log line) for an exception no handler took."""
        response = await unhandled_error_handler(Request(scope), exc)
        if not exchange.started:  # else the answer is half sent: the server closes the connection
            await self._answer(response, scope, exchange.send)

    @staticmethod
    async def _answer(response: Response, scope: Scope, send: Send) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def gateway_middleware(
    *,
    max_body_bytes: int,
    docs_paths: Collection[str] = (),
    observer: Observer | None = None,
    cache_control: Mapping[str, str] | None = None,
    sandbox: bool = False,
) -> list[Middleware]:
    """The gateway's middleware, outermost first (one layer)."""
    return [
        Middleware(
            GatewayMiddleware,
            max_bytes=max_body_bytes,
            docs_paths=docs_paths,
            observer=observer,
            cache_control=cache_control,
            sandbox=sandbox,
        )
    ]
