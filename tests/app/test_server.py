"""The pieces of ``app.server`` and the middleware that need no served gateway (tests/ops/test_slow_clients.py
serves one): the h2c offer taken out of a header section, and a client that goes away before its body is read
(no 500, no error line)."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.middleware import GatewayMiddleware
from app.routing import DeferredJSONRequest
from app.server import without_upgrade_offer

H2C = (
    b"POST /oauth2/token HTTP/1.1\r\nHost: g\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 29\r\n\r\n"
)


def test_an_h2c_offer_is_renamed() -> None:
    rewritten = without_upgrade_offer(H2C)

    assert b"\r\nUpgrade:" not in rewritten
    assert b"\r\nX-Upgrade-Ignored: h2c\r\n" in rewritten
    assert rewritten.replace(b"X-Upgrade-Ignored", b"Upgrade") == H2C


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: g\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: g\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: g\r\nX-Note: upgrade: h2c\r\n\r\n",
    ],
    ids=["plain", "websocket", "upgrade-insecure-requests", "in-a-value"],
)
def test_everything_else_is_left_as_it_is(head: bytes) -> None:
    assert without_upgrade_offer(head) == head


def test_the_field_name_is_matched_in_any_case() -> None:
    assert b"upgrade:" not in without_upgrade_offer(H2C.replace(b"Upgrade: h2c", b"UPGRADE:h2c")).lower()


async def test_a_client_that_leaves_before_its_body_is_no_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await DeferredJSONRequest(scope, receive, send).body()  # raises ClientDisconnect

    observed: list[int] = []
    middleware = GatewayMiddleware(
        app, max_bytes=1024, observer=lambda _s, status, _t: observed.append(status)
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": [], "state": {}}
    with caplog.at_level(logging.INFO):
        await middleware(scope, receive, send)

    assert sent == []
    assert observed == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
