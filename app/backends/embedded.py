"""The mock national database read in-process (``DANCU_BACKEND=embedded``, dev and tests only).

Opens ``MOCK_CSDLQG_DATABASE_URL`` read-only through the mock's own store and never seeds it. The only
module of ``app`` that imports ``mock_csdlqg`` (an import-linter contract holds it to that). Records go
through the same wire mapping as the HTTP adapter, so both answer identical fields.

A missing, unseeded, empty or unreachable database does not stop the gateway starting: ``check()`` raises
(``/readyz`` answers 503) and every call answers ``UpstreamUnavailable``, while the store is opened again on
use, at most once per ``reopen_interval`` seconds, so the gateway picks the data up once it is seeded.

In a sandbox (``DANCU_SANDBOX``, ``sandbox=True``) a request's rehearsed fault (``app.sandbox``) is simulated as
the http backend meets it from the mock (``mock_csdlqg.faults``), so both answer the same problem after about
the same time: ``latency`` delays each attempt (from ``ATTEMPT_TIMEOUT_SECONDS`` on, every attempt times out:
504 at the deadline); ``status`` 429 and 5xx are retried twice with the http backend's back-off (and the
mock's ``Retry-After: 1`` for 429 and 503), then 503; 404 is "not on record" where the upstream's 404 means
that, any other status 503; on an answer that found something, ``trickle`` spends the time the body would
take in 10-byte pieces every 200 ms, ``malformed`` is 502 ``upstream_bad_response`` and ``wrong_id`` 502
``upstream_identity_mismatch``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Any, TypeVar

import asyncpg
import orjson
from pydantic import ValidationError

from app.backends.base import (
    CodeSent,
    Household,
    PopulationQuery,
    RawAggregate,
    ResidentRecord,
    chunks,
    ids_to_ask,
    may_be_a_household,
    may_be_on_record,
)
from app.backends.breaker import Clock
from app.backends.errors import (
    NoRegisteredContact,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.backends.wire import (
    aggregate_from_wire,
    aggregate_to_wire,
    code_sent_from_wire,
    household_from_wire,
    record_from_wire,
)
from app.sandbox import ATTEMPT_TIMEOUT_SECONDS, Fault, current_fault
from mock_csdlqg.faults import TRICKLE_BYTES, TRICKLE_SECONDS
from mock_csdlqg.otp import OtpDesk, phone_of
from mock_csdlqg.problems import NotFound, problem_bytes
from mock_csdlqg.statistics import StatsEngine, StatsQueryError
from mock_csdlqg.store import ResidentStore, StoreError, StoreMissing, open_store, parse_url

logger = logging.getLogger(__name__)

SOURCE = "mock_csdlqg"
_T = TypeVar("_T")
_STORE_ERRORS = (StoreError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_IN_CHUNK = 1000
"""IDs per ``IN (...)`` query (SQLite's bound-parameter limit is far above; this keeps statements small)."""
_REHEARSED_RETRIES = 2
_BACKOFF_BASE = 0.1
_BACKOFF_MAX = 1.0
_MIN_ATTEMPT_SECONDS = 0.05
"""The http backend's retry defaults (``app.backends.http``), which a rehearsed fault is simulated with."""
_OTP_SENT_BYTES = 160
_OTP_CHECKED_BYTES = 16
"""About the size of the upstream's answers to a code sent and a code checked (what ``trickle`` slows)."""

_NOT_FOUND_BYTES = len(problem_bytes(NotFound(), "r" * 22))
"""The size of the mock's 404 (with a request id of its own making): ``trickle`` slows it too."""

Answer = Callable[[Any], "tuple[int, bool, bool]"]
"""What the upstream's answer to a read would have been: its body's size, whether it is a 2xx (False: the 404
of "not on record") and whether it is about someone (``wrong_id`` swaps it for someone else's)."""


def _blob_answer(blob: bytes | None) -> tuple[int, bool, bool]:
    return (_NOT_FOUND_BYTES, False, False) if blob is None else (len(blob), True, True)


def _batch_answer(found: dict[str, bytes], asked: list[str]) -> tuple[int, bool, bool]:
    """As the mock writes it: ``{"records":[...],"missing":[...]}``."""
    records = sum(len(blob) for blob in found.values()) + max(0, len(found) - 1)
    missing = len(orjson.dumps([pid for pid in asked if pid not in found]))
    return 25 + records + missing, True, bool(found)


def _stats_answer(doc: Any) -> tuple[int, bool, bool]:
    return len(orjson.dumps(doc)), True, False


class _Rehearsed(Exception):
    """A rehearsed attempt that failed as the http backend's ``_Transient`` does."""

    def __init__(self, *, retry_after: int | None = None, timeout: bool = False) -> None:
        super().__init__("rehearsed")
        self.retry_after = retry_after
        self.timeout = timeout

    def final(self) -> UpstreamUnavailable | UpstreamTimeout:
        return UpstreamTimeout() if self.timeout else UpstreamUnavailable(retry_after=self.retry_after)


class EmbeddedBackend:
    """The mock's database at ``database_url`` (SQLite or PostgreSQL), read-only."""

    name: str = "embedded"

    def __init__(
        self,
        database_url: str,
        *,
        deadline: float = 5.0,
        open_timeout: float = 3.0,
        reopen_interval: float = 1.0,
        clock: Clock = time.monotonic,
        sandbox: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        try:
            parse_url(database_url)
        except StoreError as err:  # a configuration error stops the start; a missing database does not
            raise ValueError(f"MOCK_CSDLQG_DATABASE_URL: {err}") from None
        self._url = database_url
        self.deadline = deadline
        self.open_timeout = open_timeout
        self.reopen_interval = reopen_interval
        self._clock = clock
        self.sandbox = sandbox
        self._sleep = sleep
        """How a rehearsal's back-off waits, as the http backend's (tests record the delays instead of spending
        them); the upstream's own time (``latency``, ``trickle``) is simulated with ``asyncio.sleep``."""
        self._store: ResidentStore | None = None
        self._stats: StatsEngine | None = None
        """The mock's own aggregate engine over the open store (it caches the provinces it has loaded)."""
        self.otp = OtpDesk()
        """The mock's one-time codes, in this process (its outbox is what tests read: ``otp.outbox_for``)."""
        self._opening = False
        self._next_open = 0.0
        self.calls = 0
        self.open_attempts = 0

    @property
    def ready(self) -> bool:
        return self._store is not None

    async def open(self) -> None:
        """Try to open the store now; a missing database is logged, not raised (the gateway still starts)."""
        if self._store is None and not self._opening:
            await self._try_open()

    async def close(self) -> None:
        if self._store is not None:
            store, self._store, self._stats = self._store, None, None
            await store.close()

    async def _try_open(self) -> None:
        self._opening = True
        self.open_attempts += 1
        self._next_open = self._clock() + self.reopen_interval
        store: ResidentStore | None = None
        try:
            async with asyncio.timeout(self.open_timeout):
                store = await open_store(self._url)
                empty = not await store.sample(1, None, random.Random())  # noqa: S311 - any row will do
        except StoreMissing:
            logger.warning("the mock database is not seeded yet (run `mock-csdlqg seed`)")
            return
        except (TimeoutError, *_STORE_ERRORS) as err:
            logger.warning("the mock database cannot be opened: %s", type(err).__name__)
            if store is not None:
                await store.close()
            return
        finally:
            self._opening = False
        if empty:
            logger.warning("the mock database holds no residents (run `mock-csdlqg seed`)")
            await store.close()
            return
        self._store = store

    async def _ensure(self) -> ResidentStore:
        if self._store is None:
            wait = self._next_open - self._clock()
            if not self._opening and wait <= 0:
                await self._try_open()
            if self._store is None:
                retry = max(1, math.ceil(self._next_open - self._clock()))
                raise UpstreamUnavailable(retry_after=retry)
        return self._store

    async def _read(
        self,
        operation: str,
        read: Callable[[ResidentStore], Awaitable[_T]],
        answer: Answer | None = None,
        *,
        not_found: bool = False,
        retry: bool = True,
    ) -> _T:
        """``read`` on the store under the deadline. ``answer``, ``not_found`` and ``retry`` say how the upstream
        would answer the read (``Answer``; whether its 404 means "not on record"; whether the http backend
        retries it), for a rehearsed fault; None: never rehearsed (the health check)."""
        self.calls += 1
        store = await self._ensure()
        fault = current_fault() if self.sandbox and answer is not None else None
        if fault is not None and answer is not None:
            return await self._rehearsed(
                fault, operation, partial(self._read_store, operation, store, read), answer, not_found, retry
            )
        return await self._read_store(operation, store, read)

    async def _read_store(
        self, operation: str, store: ResidentStore, read: Callable[[ResidentStore], Awaitable[_T]]
    ) -> _T:
        try:
            if getattr(store, "reads_inline", False):  # SQLite: no await inside, a timeout is dead weight
                return await read(store)
            async with asyncio.timeout(self.deadline):
                return await read(store)
        except TimeoutError:
            logger.warning("mock database %s: deadline of %.2fs passed", operation, self.deadline)
            raise UpstreamTimeout() from None
        except _STORE_ERRORS as err:
            logger.warning("mock database %s failed: %s", operation, type(err).__name__)
            raise UpstreamUnavailable() from None

    async def _rehearsed(
        self,
        fault: Fault,
        operation: str,
        attempt: Callable[[], Awaitable[_T]],
        answer: Answer,
        not_found: bool,
        retry: bool,
    ) -> _T:
        """``attempt`` as it would go with ``fault`` sent to the mock (the module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                retries = 0
                while True:
                    try:
                        if fault.latency_ms >= ATTEMPT_TIMEOUT_SECONDS * 1000:
                            await asyncio.sleep(ATTEMPT_TIMEOUT_SECONDS)
                            raise _Rehearsed(timeout=True)
                        await asyncio.sleep(fault.latency_ms / 1000)
                        status = fault.status
                        if status is None:
                            break
                        if status == 404 and not_found:
                            return None  # type: ignore[return-value]  # the read's "not on record"
                        if status != 429 and status < 500:
                            logger.warning("upstream refused the request: status %d (rehearsed)", status)
                            raise UpstreamUnavailable()
                        raise _Rehearsed(retry_after=1 if status in (429, 503) else None)
                    except _Rehearsed as failed:
                        step = min(_BACKOFF_MAX, _BACKOFF_BASE * 2.0**retries)
                        delay = max(0.75 * step, failed.retry_after or 0)
                        if (
                            not retry
                            or retries >= _REHEARSED_RETRIES
                            or delay + _MIN_ATTEMPT_SECONDS > deadline - loop.time()
                        ):
                            logger.warning("mock database %s: rehearsed fault answered", operation)
                            raise failed.final() from None
                        retries += 1
                        await self._sleep(delay)
                result = await attempt()
                size, success, about_someone = answer(result)
                malformed = fault.malformed and success  # the mock cuts only a 2xx answer
                if fault.trickle:  # any answer, in 10-byte pieces
                    sent = size // 2 if malformed else size
                    await asyncio.sleep(max(0, math.ceil(sent / TRICKLE_BYTES) - 1) * TRICKLE_SECONDS)
                if malformed:
                    raise UpstreamBadResponse(reason="malformed_json")
                if fault.wrong_id and success and about_someone:
                    raise UpstreamIdentityMismatch(reason="identity")
                return result
        except TimeoutError:
            if not scope.expired():
                raise
            logger.warning("mock database %s: deadline of %.2fs passed (rehearsed)", operation, self.deadline)
            raise UpstreamTimeout() from None

    # ------------------------------------------------------------------------------------------ the calls

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        if not may_be_on_record(personal_id):
            return None
        blob = await self._read("lookup", lambda store: store.get(personal_id), _blob_answer, not_found=True)
        if blob is None:
            return None
        record = record_from_wire(_json(blob), source=SOURCE, fields=fields)
        if record.personal_id != personal_id:
            raise UpstreamIdentityMismatch(reason="identity")
        return record

    async def get_many(
        self, personal_ids: Sequence[str], fields: Collection[str] | None = None
    ) -> dict[str, ResidentRecord]:
        found: dict[str, ResidentRecord] = {}
        for chunk in chunks(ids_to_ask(personal_ids), _IN_CHUNK):
            blobs = await self._read(
                "batch_get", partial(_get_many, ids=chunk), partial(_batch_answer, asked=chunk)
            )
            asked = set(chunk)
            for pid, blob in blobs.items():
                record = record_from_wire(_json(blob), source=SOURCE, fields=fields)
                if record.personal_id != pid or pid not in asked:
                    raise UpstreamIdentityMismatch(reason="identity")
                found[pid] = record
        return found

    async def household(self, household_id: str) -> Household | None:
        if not may_be_a_household(household_id):
            return None
        blob = await self._read(
            "household", lambda store: store.household(household_id), _blob_answer, not_found=True
        )
        if blob is None:
            return None
        household = household_from_wire(_json(blob))
        if household.household_id != household_id:
            raise UpstreamIdentityMismatch(reason="identity")
        return household

    async def send_code(self, personal_id: str, about: str) -> CodeSent | None:
        """The mock's desk sends the code to the record's ``soDienThoai``; the answer goes through the wire
        mapping the http backend uses."""
        if not may_be_on_record(personal_id):
            return None
        blob = await self._read(
            "otp_send",
            lambda store: store.get(personal_id),
            lambda found: (
                (_NOT_FOUND_BYTES, False, False) if found is None else (_OTP_SENT_BYTES, True, True)
            ),
            not_found=True,
            retry=False,
        )
        if blob is None:
            return None
        phone = phone_of(_json(blob))
        if phone is None:
            raise NoRegisteredContact()
        sent = self.otp.send(personal_id, phone, about)
        wire = {
            "ketQua": "da_gui",
            "soDinhDanh": personal_id,
            "maYeuCau": sent.challenge_id,
            "kenh": "sms",
            "soDienThoaiAn": sent.destination_hint,
        }
        return code_sent_from_wire(wire, personal_id)

    async def check_code(self, challenge_id: str, code: str) -> bool:
        self.calls += 1
        fault = current_fault() if self.sandbox else None
        if fault is not None:

            async def check() -> bool:
                return self.otp.check(challenge_id, code)

            return await self._rehearsed(
                fault, "otp_verify", check, lambda _: (_OTP_CHECKED_BYTES, True, False), False, False
            )
        return self.otp.check(challenge_id, code)

    async def population_aggregate(self, query: PopulationQuery) -> RawAggregate:
        """The mock's raw aggregate computed in-process, through the same wire body and mapping as ``http``."""
        body = aggregate_to_wire(query)

        async def read(store: ResidentStore) -> Any:
            if self._stats is None or self._stats.store is not store:
                self._stats = StatsEngine(store)
            try:
                return await self._stats.answer(body)
            except (StatsQueryError, ValidationError):
                logger.warning("the mock database refused a statistics query")
                raise UpstreamUnavailable() from None
            except ValueError:
                logger.warning("the mock database's statistics table is unusable")
                raise UpstreamBadResponse(reason="statistics") from None

        return aggregate_from_wire(await self._read("statistics", read, _stats_answer), query)

    async def check(self) -> None:
        """Raises UpstreamUnavailable while the database is missing, empty or unreachable."""
        rows = await self._read("check", lambda store: store.sample(1, None, random.Random()))  # noqa: S311
        if not rows:
            raise UpstreamUnavailable()


async def _get_many(store: ResidentStore, ids: list[str]) -> dict[str, bytes]:
    return await store.get_many(ids)


def _json(blob: bytes) -> Any:
    try:
        return orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(reason="malformed_json") from None
