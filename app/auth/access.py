"""Who may call, held in memory: each client's status and expanded grant, and the registered purposes.

Reading them through the ORM on every request cost 2–3 ms of CPU, most of a request. The contract still binds
(docs/contract.md, Access tokens): a suspension or grant change is seen by the process that made it on its
next request and by every other process within 1 s. So entries never age out; they are dropped when something
changed:

- **in this process**: an ORM insert, update or delete of a client, grant or purpose marks its session, and
  when that session commits every cache in the process drops its entries, whatever made the change (the admin
  API, an approval, the service layer called directly);
- **in other processes**: database triggers move the one row of ``access_version`` on every insert, update or
  delete of those tables, whoever makes it (another replica, ``dancu clients suspend``, an operator's SQL).
  A background task reads it every ``DANCU_ACCESS_REFRESH_SECONDS`` and drops the entries when it moved
  (on a SQLite file, with the standard library's driver on the event loop: a read in WAL mode takes
  microseconds and never waits, where aiosqlite's four or five thread hops took up to 250 ms under load,
  a quarter of the 1 s the entries may be used for);
- **failing closed**: entries answer only while the version was read less than ``STALE_AFTER_SECONDS`` ago.
  While it cannot be read (database unreachable, not migrated), every request reads the client from the
  database, as it did before this cache existed.

Rows are kept, never decisions: the token's scopes and the grant's validity window are checked against the
clock on every request (``app.auth.dependencies``).

Each miss is one short query on a connection of its own, outside any request's transaction and holding
nothing else meanwhile (a request that held a pooled connection while waiting for another once deadlocked the
pool). Concurrent misses for the same key share one query; a client that does not exist is remembered as such
(dropped by the same invalidation), and the number of clients kept is bounded.

The version table (``app.auth.models.AccessVersion``) is read only here: the triggers write it, never the
application.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from sqlalchemy import bindparam, event, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper, Session, object_session

from app.auth.context import Grant
from app.auth.models import AccessVersion, Client, ClientGrant, Purpose
from app.auth.service import expand_grant
from app.db import sqlite_file

logger = logging.getLogger(__name__)

STALE_AFTER_SECONDS: Final = 1.0
"""docs/contract.md, Access tokens: other processes see a change within 1 s. Entries older than the last
successful version read by more than this are not used."""
VERSION_READ_TIMEOUT_SECONDS: Final = 10.0
"""A version read that hangs longer is abandoned and tried again (entries are judged by when the last read that
succeeded began, not by this: it only keeps one hung connection from stopping the watch for good)."""
MAX_CLIENTS: Final = 10_000
"""Clients kept at most (the oldest entry goes first); far more than a deployment has."""
WATCH_TASK_NAME: Final = "access-version-watch"

T = TypeVar("T")


_VERSION_QUERY: Final = select(AccessVersion.version).where(AccessVersion.id == 1)
_VERSION_SQL: Final = str(
    _VERSION_QUERY.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})
)
"""``_VERSION_QUERY`` for the stdlib driver (made once: compiling it cost ~1 ms, four times a second)."""
_CLIENT_QUERY: Final = (
    select(
        Client.client_id,
        Client.name,
        Client.status,
        ClientGrant.scopes,
        ClientGrant.fields,
        ClientGrant.provinces,
        ClientGrant.purposes,
        ClientGrant.verify_details,
        ClientGrant.rate_limit_per_minute,
        ClientGrant.distinct_subjects_per_day,
        ClientGrant.require_end_user,
        ClientGrant.valid_from,
        ClientGrant.valid_until,
    )
    .join(ClientGrant, ClientGrant.client_id == Client.client_id)
    .where(Client.client_id == bindparam("client_id"))
)
_PURPOSES_QUERY: Final = select(Purpose.code).where(Purpose.retired_at.is_(None))


@dataclass(frozen=True, slots=True)
class ClientAccess:
    """What the scope dependency needs of one client; shared by every request until it is dropped."""

    client_id: str
    name: str
    active: bool
    grant: Grant


# --- changes committed by this process ------------------------------------------------------------------


class _LocalChanges:
    """How many sessions of this process committed a change to clients, grants or purposes (all apps alike:
    a cache cannot tell which engine another session used, and dropping entries is always safe)."""

    committed = 0


_CHANGED: Final = "dancu.access_changed"


def _mark_session(_mapper: Mapper[Any], _connection: Connection, target: object) -> None:
    session = object_session(target)
    if session is None:
        return
    session.info[_CHANGED] = True
    if not event.contains(session, "after_commit", _committed):
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_rollback", _rolled_back)


def _committed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        _LocalChanges.committed += 1


def _rolled_back(session: Session) -> None:
    session.info.pop(_CHANGED, None)


for _model in (Client, ClientGrant, Purpose):
    for _verb in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _verb, _mark_session)


# --- the cache ----------------------------------------------------------------------------------------------


class AccessCache:
    """This process's copy of clients, grants and purposes; one per app, built in the lifespan."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_seconds: float,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._sqlite_path = sqlite_file(engine)
        self._sqlite: sqlite3.Connection | None = None
        self._refresh_seconds = refresh_seconds
        self._max_clients = max_clients
        self._clock = clock
        self._clients: dict[str, ClientAccess | None] = {}
        self._purposes: frozenset[str] | None = None
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}
        self._generation = 0
        """Moves whenever the entries are dropped: a read that began under an older one is not kept."""
        self._local_seen = _LocalChanges.committed
        self._version: int | None = None
        self._version_read_at = -math.inf
        """When the latest successful version read began (it saw every change committed before then)."""
        self._failing = False
        self._checking = asyncio.Lock()
        """One version read at a time, so that an older answer never lands after a newer one."""
        self._task: asyncio.Task[None] | None = None

    # reading

    async def client(self, client_id: str) -> ClientAccess | None:
        """The client's status and grant; None when no such client exists."""
        if self._current() and client_id in self._clients:
            return self._clients[client_id]
        return await self._read_once(("client", client_id), lambda: self._read_client(client_id))

    async def purposes(self) -> frozenset[str]:
        """Every registered purpose code."""
        if self._current() and self._purposes is not None:
            return self._purposes
        return await self._read_once(("purposes",), self._read_purposes)

    def invalidate(self) -> None:
        """Drop every entry; the next request reads again."""
        self._generation += 1
        self._clients = {}
        self._purposes = None
        self._loading = {}

    def _current(self) -> bool:
        """Whether the entries may answer now; first drops them if this process committed a change."""
        if self._local_seen != _LocalChanges.committed:
            self._local_seen = _LocalChanges.committed
            self.invalidate()
        return self._clock() - self._version_read_at < STALE_AFTER_SECONDS

    def _keeps(self, generation: int) -> bool:
        """Whether a read that began under ``generation`` may be kept (nothing was dropped meanwhile)."""
        return self._current() and generation == self._generation

    async def _read_once(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, shared by every caller that misses ``key`` while it runs (the burst of requests after a
        change makes one query). Shielded: a caller that goes away does not cancel it for the others."""
        future = self._loading.get(key)
        if future is None:
            future = asyncio.ensure_future(read())
            loading = self._loading
            loading[key] = future
            future.add_done_callback(lambda done: _forget(loading, key, done))
        return cast(T, await asyncio.shield(future))

    async def _read_client(self, client_id: str) -> ClientAccess | None:
        generation = self._generation
        async with self._engine.connect() as connection:
            row = (await connection.execute(_CLIENT_QUERY, {"client_id": client_id})).one_or_none()
        found = (
            None
            if row is None
            else ClientAccess(
                client_id=row.client_id, name=row.name, active=row.status == "active", grant=expand_grant(row)
            )
        )
        if self._keeps(generation):
            if len(self._clients) >= self._max_clients:
                del self._clients[next(iter(self._clients))]
            self._clients[client_id] = found
        return found

    async def _read_purposes(self) -> frozenset[str]:
        generation = self._generation
        async with self._engine.connect() as connection:
            codes = frozenset((await connection.scalars(_PURPOSES_QUERY)).all())
        if self._keeps(generation):
            self._purposes = codes
        return codes

    # watching the version

    async def check_version(self) -> None:
        """Read the access version once and drop the entries when it moved; failures are logged, not raised."""
        async with self._checking:
            await self._check_version()

    async def _check_version(self) -> None:
        began = self._clock()
        try:
            if self._sqlite_path is not None:
                version = self._read_version_inline(self._sqlite_path)
            else:
                async with asyncio.timeout(VERSION_READ_TIMEOUT_SECONDS):
                    async with self._engine.connect() as connection:
                        version = await connection.scalar(_VERSION_QUERY)
            if version is None:
                raise LookupError("no access_version row")
        except Exception as exc:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "cannot read the access version (%s): clients and grants are read from the database on "
                    "every request until it can be read again",
                    type(exc).__qualname__,
                )
            return
        if self._failing:
            self._failing = False
            logger.info("the access version can be read again")
        if version != self._version:
            self._version = version
            self.invalidate()
        self._version_read_at = began

    def _read_version_inline(self, path: str) -> Any:
        """The version, read on the event loop with a connection of its own that never waits for a lock
        (``timeout=0``: a busy database is a failed read, tried again at the next tick)."""
        if self._sqlite is None:
            if not os.path.isfile(path):  # connecting would make an empty file
                raise sqlite3.OperationalError("the database file does not exist")
            # Not opened read-only: a read-only connection cannot make the WAL's shared-memory file when no
            # other connection has the database open yet. It only ever runs this SELECT.
            self._sqlite = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            row = self._sqlite.execute(_VERSION_SQL).fetchone()
        except sqlite3.Error:
            self._sqlite.close()  # a fresh connection next time (the file may have been replaced)
            self._sqlite = None
            raise
        return None if row is None else row[0]

    def start(self) -> None:
        """Watch the version in the background (the lifespan's start)."""
        self._task = asyncio.create_task(self._watch(), name=WATCH_TASK_NAME)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its CancelledError stays in it; a cancelled caller is cancelled
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _watch(self) -> None:
        while True:
            await self.check_version()
            await asyncio.sleep(self._refresh_seconds)


def _forget(loading: dict[Hashable, asyncio.Future[Any]], key: Hashable, done: asyncio.Future[Any]) -> None:
    if loading.get(key) is done:
        del loading[key]
    if not done.cancelled():
        done.exception()  # retrieved here, so a failure nobody awaited any more is not reported as lost
