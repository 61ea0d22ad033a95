"""The audit writer: the one way events get into the log.

Citizen events are committed by ``AuditWriter`` in their own transaction, before the response leaves,
for allowed, denied and failed requests alike, so a rollback of the request never removes one; if the
event cannot be committed the caller gets 503 ``audit_unavailable`` and no data. Administrative changes
use ``add_admin_event`` inside the change's own transaction instead (the change and its evidence commit
together or not at all). Both chain their events (``app.audit.chain``): the events of one call are appended
under one lock of the chain head, which ``add_admin_event`` holds until the change commits, so a task must
not call ``AuditWriter.write`` while its own uncommitted administrative change is pending (it would wait
for itself).

No personal ID or field value is ever stored: the subject is ``subject_ref``, a keyed hash (HMAC-SHA256)
of the personal ID under the first key of ``DANCU_AUDIT__SUBJECT_KEYS``, prefixed with that key's id so
that keys can rotate and every key still searches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit.chain import append
from app.audit.postgres_appender import PostgresChainAppender
from app.audit.sqlite_appender import SqliteChainAppender
from app.config import Settings
from app.db import utcnow
from app.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

Outcome = Literal["allowed", "denied", "error"]


class AuditUnavailable(ServiceUnavailable):
    code = "audit_unavailable"
    title_en = "Audit log unavailable"
    title_vi = "Nhật ký kiểm toán tạm thời không khả dụng"
    default_detail_en = "The access could not be recorded, so no data was released; try again later."
    default_detail_vi = (
        "Không ghi được nhật ký truy cập nên không dữ liệu nào được cung cấp; vui lòng thử lại sau."
    )


@dataclass(frozen=True, slots=True)
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
    fields: tuple[str, ...] = ()
    sensitive_fields: tuple[str, ...] = ()
    reason: str | None = None
    detail: Mapping[str, Any] | None = None


class SubjectHasher:
    """Keyed hashes of personal IDs: ``<kid>:<hex HMAC-SHA256>``; the first key writes, all keys search."""

    def __init__(self, ring: Sequence[tuple[str, bytes]]) -> None:
        if not ring:
            raise ValueError("at least one subject key is required")
        self._ring = list(ring)

    def ref(self, personal_id: str) -> str:
        kid, key = self._ring[0]
        return f"{kid}:{hmac.new(key, personal_id.encode(), hashlib.sha256).hexdigest()}"

    def refs(self, personal_id: str) -> list[str]:
        """Every form the ID may be stored under (one per key in the ring), for searches."""
        return [
            f"{kid}:{hmac.new(key, personal_id.encode(), hashlib.sha256).hexdigest()}"
            for kid, key in self._ring
        ]


class EventSink(Protocol):
    """What request handlers depend on: write events durably before answering."""

    async def write(self, events: Sequence[AuditEvent]) -> None: ...


def _record(event: AuditEvent, subject_ref: str | None, at: datetime) -> dict[str, Any]:
    """The stored members of ``event`` but ``seq``, ``prev_hash`` and ``hash`` (the chain adds those)."""
    return {
        "event_id": str(uuid.uuid4()),
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
    }


class AuditWriter:
    """Commits events in a transaction of their own (not the request's unit of work), chained.

    The append goes through the driver, not the ORM (it is on every request's path): on a SQLite file one
    call on the stdlib driver (``SqliteChainAppender``), on PostgreSQL raw asyncpg
    (``PostgresChainAppender``); only an in-memory SQLite database uses a connection of the engine. Call
    ``close`` when done (the lifespan does).
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
        """Told how many events each write added (the checkpointer counts them); never raises."""
        self._appender = _fast_appender(self._engine)

    @property
    def hasher(self) -> SubjectHasher:
        return self._hasher

    async def write(self, events: Sequence[AuditEvent]) -> None:
        """Make ``events`` durable; AuditUnavailable when that fails (the caller then releases nothing)."""
        if not events:
            return
        try:
            at = utcnow()
            records = [_record(e, self._hasher.ref(e.subject) if e.subject else None, at) for e in events]
            if self._appender is not None:
                await self._appender.append(records)
            else:
                async with self._engine.begin() as connection:
                    await append(connection, records)
        except Exception as exc:
            logger.error("audit write failed: %s", type(exc).__qualname__)
            raise AuditUnavailable() from exc
        if self._on_append is not None:
            self._on_append(len(events))

    async def close(self) -> None:
        if self._appender is not None:
            await self._appender.close()


class _Appender(Protocol):
    async def append(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


def _fast_appender(engine: AsyncEngine) -> _Appender | None:
    """The driver-level appender for the engine's database (one round trip per statement, no ORM layers);
    None where there is none (an in-memory SQLite database: only the engine's connections see it)."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresChainAppender(url.set(drivername="postgresql").render_as_string(hide_password=False))
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        return SqliteChainAppender(database)
    return None


async def add_admin_event(
    session: AsyncSession,
    *,
    action: str,
    actor: str,
    client_id: str | None,
    detail: Mapping[str, Any] | None,
    request_id: str | None = None,
    status_code: int = 200,
) -> None:
    """Record an administrative change in the change's own transaction (chained now, committed with it).

    The chain head stays locked until ``session`` commits or rolls back: commit promptly.
    """
    event = AuditEvent(
        action=action,
        outcome="allowed",
        status_code=status_code,
        actor=actor,
        client_id=client_id,
        request_id=request_id,
        detail=detail,
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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return SubjectHasher([("dev1", base64.b64decode(path.read_text().strip()))])
