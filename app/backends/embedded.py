"""The mock national database read in-process (``DANCU_BACKEND=embedded``, dev and tests only).

Opens ``MOCK_CSDLQG_DATABASE_URL`` read-only through the mock's own store and never seeds it. The only
module of ``app`` that imports ``mock_csdlqg`` (an import-linter contract holds it to that). Records go
through the same wire mapping as the HTTP adapter, so both answer identical fields.

A missing, unseeded, empty or unreachable database does not stop the gateway starting: ``check()`` raises
(``/readyz`` answers 503) and every call answers ``UpstreamUnavailable``, while the store is opened again on
use, at most once per ``reopen_interval`` seconds, so the gateway picks the data up once it is seeded.
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
from mock_csdlqg.otp import OtpDesk, phone_of
from mock_csdlqg.statistics import StatsEngine, StatsQueryError
from mock_csdlqg.store import ResidentStore, StoreError, StoreMissing, open_store, parse_url

logger = logging.getLogger(__name__)

SOURCE = "mock_csdlqg"
_T = TypeVar("_T")
_STORE_ERRORS = (StoreError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_IN_CHUNK = 1000
"""IDs per ``IN (...)`` query (SQLite's bound-parameter limit is far above; this keeps statements small)."""


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

    async def _read(self, operation: str, read: Callable[[ResidentStore], Awaitable[_T]]) -> _T:
        self.calls += 1
        store = await self._ensure()
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

    # ------------------------------------------------------------------------------------------ the calls

    async def get(self, personal_id: str, fields: Collection[str] | None = None) -> ResidentRecord | None:
        if not may_be_on_record(personal_id):
            return None
        blob = await self._read("lookup", lambda store: store.get(personal_id))
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
            blobs = await self._read("batch_get", partial(_get_many, ids=chunk))
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
        blob = await self._read("household", lambda store: store.household(household_id))
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
        blob = await self._read("otp_send", lambda store: store.get(personal_id))
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

        return aggregate_from_wire(await self._read("statistics", read), query)

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
