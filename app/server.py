"""The HTTP/1.1 protocol ``dancu serve`` runs: uvicorn's httptools protocol with three changes.

1. **Slow headers.** uvicorn closes a connection that sits idle between requests (``timeout_keep_alive``),
   but once one byte of a request has arrived it waits for the rest of the header section for ever: 3,000
   connections each holding half a header line kept 3,000 file descriptors and coroutines-to-be, without any
   authentication. Here a connection that has not delivered a complete header section within
   ``DANCU_HEADER_TIMEOUT_SECONDS`` (default 10) of opening, or of its previous answer, is closed.
2. **Stalled bodies.** A body that stops arriving for that long (a POST promising 100 KB that sends one byte)
   is answered 408 ``request_timeout`` (a problem document like every other answer) and the connection
   closed; the route, still waiting for its body, sees the client go away. The clock restarts with every
   piece of body received, and stops while the route itself is not reading (flow control): a slow route is
   not the client's fault.
3. **h2c upgrade offers.** ``Connection: Upgrade`` + ``Upgrade: h2c`` (what curl --http2 and Java's
   ``HttpClient`` send on plain http) makes llhttp, through httptools, skip the request body and hand the
   rest of the stream to "the upgraded protocol", which uvicorn then drops: the POST reached the route with
   an empty body. RFC 9113 lets a server ignore the offer and answer in HTTP/1.1; so the offer is taken out
   of the header section before the parser sees it (``Upgrade`` renamed ``X-Upgrade-Ignored``). A
   ``websocket`` upgrade is left alone.

Why not another server or parser: uvicorn's h11 protocol has the same missing header timeout, and its pure
Python parser costs more per request than httptools (the hot path's budget is what bench/harness.py
measures); granian or hypercorn would change the process model, logging and every benchmark for a fix this
small. This class keeps httptools for the work and adds a few timer operations per request.

A reverse proxy in front should still enforce its own limits (docs/deploy.md, "Slow clients"): it is where
thousands of idle connections are cheapest to hold and refuse.
"""

from __future__ import annotations

import asyncio
import re
from asyncio import TimerHandle
from typing import Any, Final

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings
from app.errors import RequestTimeout
from app.middleware import BODY_TIMED_OUT_KEY, REQUEST_ID_HEADER, SECURITY_HEADERS
from app.problems import PROBLEM_MEDIA_TYPE, REQUEST_ID_KEY, Language, error_body, preferred_language

MAX_HEAD_BYTES: Final = 64 * 1024
"""A header section is looked at (for an h2c offer) up to this size; beyond it, it goes to the parser as it
is (and still has to be complete within the timeout)."""

_UPGRADE = re.compile(rb"\r\n(upgrade)[ \t]*:([^\r\n]*)", re.IGNORECASE)
_UPGRADE_FIELD = re.compile(rb"\r\nupgrade[ \t]*:", re.IGNORECASE)
_IGNORED_UPGRADE: Final = b"X-Upgrade-Ignored"


def without_upgrade_offer(head: bytes) -> bytes:
    """``head`` (a request line and header fields, up to the blank line) with any ``Upgrade`` field that does
    not offer ``websocket`` renamed, so that the parser reads the request as the plain HTTP/1.1 one it is."""

    def rename(match: re.Match[bytes]) -> bytes:
        if b"websocket" in match.group(2).lower():
            return match.group(0)
        return b"\r\n" + _IGNORED_UPGRADE + b":" + match.group(2)

    return _UPGRADE.sub(rename, head)


_HEAD: Final = 1
_BODY: Final = 2


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a body-stall timeout (408) and h2c offers ignored
    (module docstring). ``dancu serve`` passes it as ``--http app.server:GatewayHttpProtocol``.

    The clock is a deadline per connection, moved by setting a float; one timer per connection, scheduled
    only when none is pending, looks at the deadline when it fires and goes back to sleep until it if it
    moved. A request thus costs no timer operation at all (cancelling and scheduling one per request and per
    piece of body cost ~20 µs a request here, measured with wrk)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout: float = get_settings().header_timeout_seconds
        self._timer: TimerHandle | None = None
        self._watching = 0
        """What the deadline is for: ``_HEAD`` (a complete header section), ``_BODY`` (the next piece of
        body), or 0 (nothing: a route is working, or the connection is idle between requests)."""
        self._deadline = 0.0
        self._idle = True
        """No message begun: the next bytes start a header section (an unfinished one waits in ``_head``)."""
        self._head = b""

    # --- the clock ----------------------------------------------------------------------------------------

    def _watch(self, what: int) -> None:
        self._watching = what
        self._deadline = self.loop.time() + self.header_timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if not self._watching or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:  # moved since this timer was set: sleep until it
            self._timer = self.loop.call_at(self._deadline, self._check)
        elif self._watching == _HEAD:
            self.transport.close()
        else:
            self._body_timed_out()

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.more_body:
            self._watching = 0
            return
        if self.flow.read_paused:  # the route is not reading: not the client's stall
            self._watch(_BODY)
            return
        self._watching = 0
        if not cycle.response_started:
            self.transport.write(_timeout_response(cycle.scope))
            cycle.scope.setdefault("state", {})[BODY_TIMED_OUT_KEY] = True
        cycle.disconnected = True  # the route's receive() says the client left; its answer goes nowhere
        cycle.message_event.set()
        self.transport.close()

    # --- uvicorn's protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch(_HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._watching = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            if self._head:
                data = self._head + data
                self._head = b""
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) <= MAX_HEAD_BYTES:
                    self._head = data  # the rest of the header section is still to come
                    self._unset_keepalive_if_required()  # a request has begun: uvicorn's idle timer is over
                    return
            elif _UPGRADE_FIELD.search(data, 0, end + 2) is not None:  # ~0.7 µs over a typical head
                data = without_upgrade_offer(data[: end + 4]) + data[end + 4 :]
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._idle = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._watch(_BODY)  # until the message completes (at once when it has no body)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._deadline = self.loop.time() + self.header_timeout

    def on_message_complete(self) -> None:
        self._watching = 0
        self._idle = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._watch(_HEAD)  # the next request's headers, from now


def _timeout_response(scope: Any) -> bytes:
    """The 408 problem, as bytes on the wire (the route never got to answer)."""
    state = scope.get("state") or {}
    request_id = state.get(REQUEST_ID_KEY)
    language: Language = "en"
    for name, value in scope.get("headers", ()):
        if name == b"accept-language":
            language = preferred_language(value.decode("latin-1"))
            break
    body = orjson.dumps(error_body(RequestTimeout(), language=language, request_id=request_id))
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-language", language.encode("latin-1")),
        (b"connection", b"close"),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in SECURITY_HEADERS.items()
        ),
    ]
    if request_id:
        headers.append((REQUEST_ID_HEADER.lower().encode("latin-1"), request_id.encode("latin-1")))
    lines = [b"HTTP/1.1 408 Request Timeout"] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
