"""Fault injection: the upstream misbehaving on purpose, so the gateway's adapter can be tested against it.

Only installed when the mock runs with faults enabled; otherwise ``X-Mock-Fault`` is ignored and costs
nothing. A request's ``X-Mock-Fault`` header (``latency=1500;status=503;malformed;wrong_id;trickle``,
any subset; empty or ``none`` for no fault) overrides the global mode set through ``PUT /_mock/faults``.
Faults apply to every ``/api/v1`` route except health, in this order:

1. ``latency``: sleep that many milliseconds;
2. ``status``: answer a problem with that status (``injected_fault``; ``Retry-After: 1`` on 429 and 503);
3. otherwise the normal answer, transformed. ``wrong_id`` and ``malformed`` change only a 2xx answer
   (a 404 stays a 404); ``trickle`` slows down any answer:

   * ``wrong_id``: a real record of another resident (lookup), records of residents that were not asked
     for (batch-get), another household (households);
   * ``malformed``: the same status, the body cut in half on a character boundary (UTF-8, never JSON);
   * ``trickle``: the body in 10-byte pieces every 200 ms, ``Content-Length`` exact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection
from typing import Any, Protocol

import orjson
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_csdlqg.middleware import API_PREFIX, HEALTH_PATH
from mock_csdlqg.problems import InjectedFault, InvalidFault, MockProblem, problem_response, request_id_of
from mock_csdlqg.store import ResidentStore
from mock_csdlqg.wire import FaultMode

FAULT_HEADER = "X-Mock-Fault"
TRICKLE_BYTES = 10
TRICKLE_SECONDS = 0.2

_FLAGS = frozenset({"malformed", "wrong_id", "trickle"})
_NUMBERS = {"latency": "latency_ms", "status": "status"}
_MAX_LOOKS = 8


class FaultSource(Protocol):
    """What the middleware needs from the app: the global mode and the open store."""

    @property
    def fault_mode(self) -> FaultMode: ...

    @property
    def store(self) -> ResidentStore: ...


def is_faultable(path: str) -> bool:
    return path.startswith(API_PREFIX) and path != HEALTH_PATH


def is_off(mode: FaultMode) -> bool:
    return not (mode.latency_ms or mode.status is not None or mode.malformed or mode.wrong_id or mode.trickle)


def parse_fault_header(value: str) -> FaultMode:
    """``latency=1500;status=503;malformed;wrong_id;trickle`` (any subset, each once) as a FaultMode."""
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for item in value.split(";"):
        name, sep, arg = (part.strip() for part in item.partition("="))
        if not sep and name in ("", "none"):
            continue
        if name in seen:
            raise InvalidFault
        seen.add(name)
        if name in _FLAGS and not sep:
            fields[name] = True
        elif name in _NUMBERS and arg.isascii() and arg.isdigit() and len(arg) <= 6:
            fields[_NUMBERS[name]] = int(arg)
        else:
            raise InvalidFault
    try:
        return FaultMode(**fields)
    except ValidationError:
        raise InvalidFault from None


class FaultInjectionMiddleware:
    """Applies the request's faults (header, else the global mode) around the ``/api/v1`` routes."""

    def __init__(self, app: ASGIApp, *, source: FaultSource) -> None:
        self.app = app
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_faultable(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"x-mock-fault"), None)
        try:
            mode = self.source.fault_mode if header is None else parse_fault_header(header.decode("latin-1"))
        except MockProblem as problem:
            await problem_response(problem, request_id_of(scope))(scope, receive, send)
            return
        if is_off(mode):
            await self.app(scope, receive, send)
            return
        if mode.latency_ms:
            await asyncio.sleep(mode.latency_ms / 1000)
        if mode.status is not None:
            await problem_response(InjectedFault(mode.status), request_id_of(scope))(scope, receive, send)
            return
        if not (mode.malformed or mode.wrong_id or mode.trickle):
            await self.app(scope, receive, send)
            return

        start, body = await _capture(self.app, scope, receive)
        if 200 <= start["status"] < 300:
            if mode.wrong_id:
                body = await wrong_identity(body, self.source.store, random.Random())  # noqa: S311 - not secret
            if mode.malformed:
                body = cut_in_half(body)
        headers = MutableHeaders(raw=list(start.get("headers", ())))
        headers["content-length"] = str(len(body))
        start["headers"] = headers.raw
        if mode.trickle:
            await _trickle(start, body, receive, send)
        else:
            await send(start)
            await send({"type": "http.response.body", "body": body})


def cut_in_half(body: bytes) -> bytes:
    """The first half, ending on a character boundary: still UTF-8 text, never valid JSON."""
    cut = len(body) // 2
    while cut and body[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        cut -= 1
    return body[:cut]


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Runs the route and keeps its answer (the mock's answers are small and never streamed)."""
    start: Message = {}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start, b"".join(chunks)


async def _trickle(start: Message, body: bytes, receive: Receive, send: Send) -> None:
    """Sends ``body`` in ``TRICKLE_BYTES`` pieces, ``TRICKLE_SECONDS`` apart; stops when the client leaves."""
    pieces = [body[i : i + TRICKLE_BYTES] for i in range(0, len(body), TRICKLE_BYTES)] or [b""]
    await send(start)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(TRICKLE_SECONDS)
                if gone.done():
                    return
            await send({"type": "http.response.body", "body": piece, "more_body": index < len(pieces) - 1})
    finally:
        gone.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# ------------------------------------------------------------------------------------------------ wrong_id


async def wrong_identity(body: bytes, store: ResidentStore, rng: random.Random) -> bytes:
    """The same kind of answer about someone else: a record, a batch or a household nobody asked for."""
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        return body
    if "records" in doc:  # batch-get: as many records, none of them for a requested ID
        asked = {record["soDinhDanh"] for record in doc["records"]} | set(doc["missing"])
        others = await _other_ids(store, asked, len(doc["records"]), rng)
        found = await store.get_many(others)
        records = b",".join(found[pid] for pid in others if pid in found)
        return b'{"records":[' + records + b'],"missing":' + orjson.dumps(doc["missing"]) + b"}"
    if "thanhVien" in doc:  # a household
        return await _other_household(store, doc["maHo"], rng) or body
    if "soDinhDanh" in doc:  # one record
        for pid in await _other_ids(store, {doc["soDinhDanh"]}, 1, rng):
            record = await store.get(pid)
            if record is not None:
                return record
    return body


async def _other_ids(store: ResidentStore, avoid: Collection[str], n: int, rng: random.Random) -> list[str]:
    found: dict[str, None] = {}
    for _ in range(_MAX_LOOKS):
        if len(found) >= n:
            break
        for pid in await store.sample(n - len(found) + 4, None, rng):
            if pid not in avoid:
                found[pid] = None
    return list(found)[:n]


async def _other_household(store: ResidentStore, household_id: str, rng: random.Random) -> bytes | None:
    for _ in range(_MAX_LOOKS):
        for record in (await store.get_many(await store.sample(8, None, rng))).values():
            other = orjson.loads(record).get("maHo")
            if other and other != household_id:
                household = await store.household(other)
                if household is not None:
                    return household
    return None
