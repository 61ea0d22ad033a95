"""The audit writer: the one way events get into the log.

Citizen events are committed by ``AuditWriter`` in a transaction of their own (not the request's), before the
response leaves, for allowed, denied and failed requests alike, so a rollback of the request never removes
one; if the event cannot be committed the caller gets 503 ``audit_unavailable`` and no data. The writer
commits in groups: concurrent requests queue their events and one task appends everything queued in one
transaction, so 64 concurrent requests cost a few transactions rather than 64, and each request still waits
until its own events are committed. Administrative changes use ``add_admin_event`` inside the change's own
transaction instead (the change and its evidence commit together or not at all). Both chain their events
(``app.audit.chain``) under one lock of the chain head, which ``add_admin_event`` holds until the change
commits, so a task must not call ``AuditWriter.write`` while its own uncommitted administrative change is
pending (it would wait for itself, and every other request with it).

No personal ID or field value is ever stored: the subject is ``subject_ref``, a keyed hash (HMAC-SHA256)
of the personal ID under the first key of ``DANCU_AUDIT__SUBJECT_KEYS``, prefixed with that key's id so
that keys can rotate and every key still searches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.chain import append, lock_chain
from app.audit.errors import AuditUnavailable, StoreUnavailable
from app.audit.postgres_appender import PostgresChainAppender
from app.audit.sqlite_appender import SqliteChainAppender
from app.backends.base import SENSITIVE_FIELDS
from app.config import Settings
from app.db import new_time_uuid, sqlite_file, utcnow
from app.errors import GatewayError
from app.files import write_private_file
from app.frozen import frozen

logger = logging.getLogger(__name__)

Outcome = Literal["allowed", "denied", "error"]


@frozen  # built once per event on the hot path (app.frozen)
class AuditEvent:
    """What happened, before it is stored. ``subject`` is the personal ID: hashed on write, never stored."""

    action: str
    outcome: Outcome
    status_code: int
    actor: str
    client_id: str | None = None
    request_id: str | None = None
    purpose: str | None = None
    dossier_id: str | None = None
    subject: str | None = None
    subject_ref: str | None = None
    """``subject``'s keyed hash when the caller already made it (with this writer's ``hasher``)."""
    fields: tuple[str, ...] = ()
    sensitive_fields: tuple[str, ...] = ()
    reason: str | None = None
    detail: Mapping[str, Any] | None = None
    end_user: str | None = None
    """The caller's ``X-End-User``: the person at the calling system."""
    client_ip: str | None = None
    job_id: str | None = None


def outcome_of(error: GatewayError) -> Outcome:
    """How a refused or failed call is recorded: ``error`` when the gateway or what it depends on failed (a
    5xx), ``denied`` when the call was refused."""
    return "error" if error.status >= 500 else "denied"


@frozen
class AuditContext:
    """The call an event records: who acted (and for which client), in which request, for what purpose and
    dossier. Every ``AuditEvent`` is built here (``event``, ``refusal``), so a member all events carry is
    added in one place."""

    actor: str
    client_id: str | None = None
    request_id: str | None = None
    purpose: str | None = None
    dossier_id: str | None = None
    end_user: str | None = None
    """The caller's ``X-End-User``: the person at the calling system."""
    client_ip: str | None = None
    job_id: str | None = None

    @classmethod
    def of_client(
        cls,
        client_id: str,
        request_id: str | None,
        *,
        purpose: str | None = None,
        dossier_id: str | None = None,
        end_user: str | None = None,
        client_ip: str | None = None,
        job_id: str | None = None,
    ) -> AuditContext:
        """A call a client made with its own token: the client is the actor."""
        return cls(client_id, client_id, request_id, purpose, dossier_id, end_user, client_ip, job_id)

    def event(
        self,
        action: str,
        outcome: Outcome,
        status_code: int,
        *,
        subject: str | None = None,
        subject_ref: str | None = None,
        fields: Sequence[str] = (),
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """An event of this call. ``fields``: the resident fields released (asked about, for a refusal);
        ``personal_id`` never counts as released, and the sensitive ones are listed apart as well."""
        released = (
            tuple(f for f in fields if f != "personal_id") if "personal_id" in fields else tuple(fields)
        )
        sensitive = (
            tuple(f for f in released if f in SENSITIVE_FIELDS)
            if not SENSITIVE_FIELDS.isdisjoint(released)
            else ()
        )
        return AuditEvent(
            action=action,
            outcome=outcome,
            status_code=status_code,
            actor=self.actor,
            client_id=self.client_id,
            request_id=self.request_id,
            purpose=self.purpose,
            dossier_id=self.dossier_id,
            subject=subject,
            subject_ref=subject_ref,
            fields=released,
            sensitive_fields=sensitive,
            reason=reason,
            detail=detail,
            end_user=self.end_user,
            client_ip=self.client_ip,
            job_id=self.job_id,
        )

    def refusal(
        self,
        action: str,
        error: GatewayError,
        *,
        subject: str | None = None,
        subject_ref: str | None = None,
        fields: Sequence[str] = (),
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """The event of a call refused or failed with ``error`` (its code is the reason)."""
        return self.event(
            action,
            outcome_of(error),
            error.status,
            subject=subject,
            subject_ref=subject_ref,
            fields=fields,
            reason=error.code,
            detail=detail,
        )


class SubjectHasher:
    """Keyed hashes of personal IDs: ``<kid>:<hex HMAC-SHA256>``; the first key writes, all keys search."""

    def __init__(self, ring: Sequence[tuple[str, bytes]]) -> None:
        if not ring:
            raise ValueError("at least one subject key is required")
        # Each key once: copying a keyed HMAC skips the key schedule, which is most of hashing a short ID
        # (~3.7 µs for hmac.new or hmac.digest, ~1.5 for copy, update, hexdigest).
        self._keyed = [(kid + ":", hmac.new(key, digestmod=hashlib.sha256)) for kid, key in ring]

    def ref(self, personal_id: str) -> str:
        return self._ref(personal_id, *self._keyed[0])

    def refs(self, personal_id: str) -> list[str]:
        """Every form the ID may be stored under (one per key in the ring), for searches."""
        return [self._ref(personal_id, prefix, keyed) for prefix, keyed in self._keyed]

    @staticmethod
    def _ref(personal_id: str, prefix: str, keyed: hmac.HMAC) -> str:
        mac = keyed.copy()
        mac.update(personal_id.encode())
        return prefix + mac.hexdigest()


def _subject_ref(event: AuditEvent, hasher: SubjectHasher) -> str | None:
    if event.subject_ref is not None:
        return event.subject_ref
    return hasher.ref(event.subject) if event.subject else None


def _record(event: AuditEvent, subject_ref: str | None, at: datetime) -> dict[str, Any]:
    """The stored members of ``event`` but ``seq``, ``prev_hash`` and ``hash`` (the chain adds those)."""
    return {
        "event_id": new_time_uuid(),
        "at": at,
        "request_id": event.request_id,
        "client_id": event.client_id,
        "actor": event.actor,
        "action": event.action,
        "purpose": event.purpose,
        "dossier_id": event.dossier_id,
        "subject_ref": subject_ref,
        "fields": list(event.fields),
        "sensitive_fields": list(event.sensitive_fields),
        "outcome": event.outcome,
        "status_code": event.status_code,
        "reason": event.reason,
        "detail": dict(event.detail) if event.detail is not None else None,
        "end_user": event.end_user,
        "client_ip": event.client_ip,
        "job_id": event.job_id,
    }


MAX_BATCH_EVENTS: Final = 1000
"""At most this many events per transaction (a larger single write goes alone: a write is never split)."""


@dataclass(slots=True)
class _Pending:
    """One ``write`` waiting for its events to be committed."""

    records: list[dict[str, Any]]
    done: asyncio.Future[None]


class AuditWriter:
    """Commits events in transactions of their own (not the request's unit of work), chained, in groups.

    ``write`` queues its events and waits; one task per writer (started by the first ``write``) appends
    everything queued in one transaction, then tells each ``write`` its outcome. While one transaction
    commits, the next writes queue up for the next one: there is no timer, so a lone request waits for its
    own commit only. The events of one ``write`` stay together and in order; a failed transaction commits
    nothing, and its writes are then tried one by one, so that one bad write fails only its own caller.

    The append goes through the driver, not the ORM (it is on every request's path): on a SQLite file one
    call on the stdlib driver (``SqliteChainAppender``), on PostgreSQL raw asyncpg
    (``PostgresChainAppender``); only an in-memory SQLite database uses a connection of the engine. Call
    ``close`` when done (the lifespan does): it commits what is queued; a ``write`` after it raises
    AuditUnavailable (the app is shutting down: nothing more is released).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        hasher: SubjectHasher,
        *,
        on_append: Callable[[int], None] | None = None,
    ) -> None:
        self._engine: AsyncEngine = sessionmaker.kw["bind"]
        self._hasher = hasher
        self._on_append = on_append
        """Told how many events each transaction committed, once committed (the checkpointer counts them)."""
        self._appender = _appender(self._engine)
        self._queue: deque[_Pending] = deque()
        self._queued_events = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def hasher(self) -> SubjectHasher:
        return self._hasher

    @property
    def queue_depth(self) -> int:
        """Events waiting for a transaction (the one being committed not included)."""
        return self._queued_events

    async def write(self, events: Sequence[AuditEvent]) -> None:
        """Make ``events`` durable; AuditUnavailable when that fails (the caller then releases nothing).

        Returns once they are committed. A caller cancelled meanwhile does not take them back: they are
        committed all the same (the access may have happened).
        """
        if not events:
            return
        if self._closed:
            logger.error("audit write after the writer was closed")
            raise AuditUnavailable()
        try:
            at = utcnow()
            records = [_record(e, _subject_ref(e, self._hasher), at) for e in events]
        except Exception as exc:
            logger.error("audit write failed: %s", type(exc).__qualname__)
            raise AuditUnavailable() from exc
        pending = _Pending(records, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued_events += len(records)
        self._wake_task().set()
        await pending.done

    async def close(self) -> None:
        """Commit what is queued, stop the task, close the appender's connections."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._wake.set()
            await task
        await self._appender.close()

    # the writer task

    def _wake_task(self) -> asyncio.Event:
        """The event the task waits on, the task started first if it is not running in this loop."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()  # an event belongs to the loop that first waits on it
            self._task = loop.create_task(self._run(self._wake), name="audit-writer")
        return self._wake

    async def _run(self, wake: asyncio.Event) -> None:
        try:
            while self._queue or not self._closed:
                if not self._queue:
                    wake.clear()
                    await wake.wait()
                    continue
                batch = self._take()
                try:
                    await self._commit(batch)
                except Exception as exc:  # a bug here must not stop the writer for every later request
                    _log_failure(exc, len(batch))
                finally:  # every write of the batch has its answer, even if the task is cancelled midway
                    for pending in batch:
                        _fail(pending)
        finally:  # cancelled (the loop is closing): whoever still waits learns that nothing is known
            while self._queue:
                _fail(self._queue.popleft())
            self._queued_events = 0

    def _take(self) -> list[_Pending]:
        """Whole writes from the front of the queue, up to MAX_BATCH_EVENTS events (at least one write)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].records)
        while self._queue and size + len(self._queue[0].records) <= MAX_BATCH_EVENTS:
            batch.append(self._queue.popleft())
            size += len(batch[-1].records)
        self._queued_events -= size
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        """Append ``batch`` in one transaction; when that fails, each of its writes in one of its own,
        unless the store itself is unavailable (then every write of the batch fails at once)."""
        try:
            await self._append([record for pending in batch for record in pending.records])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, StoreUnavailable):
                _log_failure(exc, len(batch))
                for pending in batch:
                    _fail(pending, exc)
                return
        else:
            for pending in batch:
                _succeed(pending)
            return
        for index, pending in enumerate(batch):  # the batch failed: find the write(s) it failed for
            try:
                await self._append(pending.records)
            except Exception as exc:
                _log_failure(exc, 1)
                _fail(pending, exc)
                if isinstance(exc, StoreUnavailable):
                    for rest in batch[index + 1 :]:
                        _fail(rest, exc)
                    return
            else:
                _succeed(pending)

    async def _append(self, records: list[dict[str, Any]]) -> None:
        await self._appender.append(records)
        if self._on_append is not None:
            try:
                self._on_append(len(records))
            except Exception as exc:  # a counter must not turn committed events into failures
                logger.error("audit on_append failed: %s", type(exc).__qualname__)


def _succeed(pending: _Pending) -> None:
    if not pending.done.done():  # its caller may have been cancelled (the client went away)
        pending.done.set_result(None)


def _fail(pending: _Pending, cause: BaseException | None = None) -> None:
    """AuditUnavailable for ``pending`` (nothing when it has its answer already)."""
    if not pending.done.done():
        error = AuditUnavailable()  # one per caller: an exception raised in two tasks mixes tracebacks
        error.__cause__ = cause
        pending.done.set_exception(error)


def _log_failure(exc: Exception, writes: int) -> None:
    """The error's type only (its message may quote a value of an event)."""
    cause = f" ({type(exc.__cause__).__qualname__})" if isinstance(exc, StoreUnavailable) else ""
    logger.error("audit write failed: %s%s; %d write(s) refused", type(exc).__qualname__, cause, writes)


class _Appender(Protocol):
    async def append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class _EngineAppender:
    """Appends on a connection of the engine: for an in-memory SQLite database, which only the engine's
    connections see."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        async with self._engine.begin() as connection:
            return await append(connection, records)

    async def close(self) -> None:
        """Nothing of its own to close: the engine is its owner's."""


def _appender(engine: AsyncEngine) -> _Appender:
    """The driver-level appender for the engine's database (one round trip per statement, no ORM layers),
    or the engine itself for an in-memory SQLite database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresChainAppender(url.set(drivername="postgresql").render_as_string(hide_password=False))
    path = sqlite_file(engine)
    if path is not None:
        return SqliteChainAppender(path)
    return _EngineAppender(engine)


class AdminLog:
    """The administrative changes of one transaction (``session``), made on behalf of ``actor``: each is
    chained into the audit log as it is made and commits with the change (``add_admin_event``)."""

    def __init__(self, session: AsyncSession, *, actor: str, request_id: str | None = None) -> None:
        self.session = session
        self.actor = actor
        self.request_id = request_id

    async def serialise(self) -> None:
        """Take the chain head's lock now (every administrative change takes it before it commits), so that a
        change that must judge the others' committed state (the last administrator) is judged alone."""
        await lock_chain(self.session)

    async def record(
        self, action: str, client_id: str | None, detail: Mapping[str, Any] | None, status_code: int = 200
    ) -> None:
        await add_admin_event(
            self.session,
            action=action,
            actor=self.actor,
            client_id=client_id,
            detail=detail,
            request_id=self.request_id,
            status_code=status_code,
        )


async def add_admin_event(
    session: AsyncSession,
    *,
    action: str,
    actor: str,
    client_id: str | None,
    detail: Mapping[str, Any] | None,
    request_id: str | None = None,
    status_code: int = 200,
    outcome: Outcome = "allowed",
    reason: str | None = None,
    client_ip: str | None = None,
) -> None:
    """Record an administrative change in the change's own transaction (chained now, committed with it).

    Operators' console actions use it too (actor ``op:<username>``), refused logins included (``outcome``
    ``denied`` with a ``reason``): the event commits with what the attempt changed (a failure count, a lock).
    The chain head stays locked until ``session`` commits or rolls back: commit promptly.
    """
    event = AuditContext(actor, client_id, request_id, client_ip=client_ip).event(
        action, outcome, status_code, reason=reason, detail=detail
    )
    await append(session, [_record(event, None, utcnow())])


def load_subject_hasher(settings: Settings) -> SubjectHasher:
    """The HMAC keys from ``DANCU_AUDIT__SUBJECT_KEYS``; in ``dev`` a key generated once under ./var/keys."""
    ring = settings.audit.subject_key_ring()
    if ring:
        return SubjectHasher(ring)
    if settings.profile == "prod":  # config's production check refuses this first; never fall back silently
        raise ValueError("DANCU_AUDIT__SUBJECT_KEYS is required in the prod profile")
    path = settings.audit.checkpoint_key_file.parent / "subject.key"
    if not path.exists():
        # Atomically, so a concurrent worker never reads it half written; the first worker's key wins.
        write_private_file(path, base64.b64encode(secrets.token_bytes(32)) + b"\n", replace=False)
    return SubjectHasher([("dev1", base64.b64decode(path.read_text().strip()))])
