"""Auditor use cases: search, one event, export, counts, and a resident's access report.

Reading the audit log is itself audited: every use case here leaves one event (``audit.search``,
``audit.event``, ``audit.export``, ``audit.stats``, ``audit.subject_report``) through the audit writer, for
allowed, refused and failed reads alike, and only an answer whose event was committed is returned (otherwise
503 ``audit_unavailable`` and no data). A search or report naming a resident records the ``subject_ref`` of
that resident (the writer hashes the ID; the ID itself is never stored). An export's event is committed
before the first byte is streamed.

Pages are keyset-paged on ``seq``. A cursor is opaque to callers (base64url JSON) and bound to the query it
came from: a cursor that is garbled, edited, forged or replayed against other filters or another order is
422. Its tag is a keyed MAC (``app.auth.keys.CursorSigner``): a cursor reveals only a ``seq``, but a forged
one would let a caller steer the keyset query past the checks this service makes on the ones it issues.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.errors import InvalidCursor
from app.audit.export import ExportEncoder, export_stream
from app.audit.repository import AuditRepository, EventQuery
from app.audit.schemas import EventFilter, GroupBy, Order, SearchRequest, SubjectReportRequest, event_view
from app.audit.schemas import rfc3339 as _rfc3339
from app.audit.writer import AuditContext, AuditWriter, Outcome
from app.errors import GatewayError, InvalidPersonalId, NotFound
from vnid import InvalidPersonalId as _BadId
from vnid import parse_personal_id

logger = logging.getLogger(__name__)

EXPORT_BATCH_SIZE = 1000
"""Events fetched per query while an export streams (memory stays flat whatever the export's size)."""

_CURSOR_VERSION: Final = 2
"""2: the tag is a keyed MAC (1 was an unkeyed hash, which anyone who had seen a cursor could recompute)."""
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads the log, for the read's own audit event: a client with its token (the API), or an operator
    in the console (``actor`` ``op:<username>``, no client, the operator's address)."""

    client_id: str | None
    request_id: str | None
    actor: str | None = None
    """Who acted when it is not the client itself (the console's operator)."""
    client_ip: str | None = None

    @classmethod
    def operator(cls, actor: str, request_id: str | None, client_ip: str | None) -> Reader:
        return cls(client_id=None, request_id=request_id, actor=actor, client_ip=client_ip)

    def context(self) -> AuditContext:
        """The read's call: a client acts for itself (``AuditContext.of_client``), an operator as itself."""
        actor = self.actor or self.client_id or "?"
        return AuditContext(actor, self.client_id, self.request_id, client_ip=self.client_ip)


@dataclass(slots=True)
class _Note:
    """What the read's audit event says besides its outcome, filled in while the use case runs."""

    subject: str | None = None
    """The personal ID the read named (valid ones only); the writer stores its keyed hash."""


def _parse(personal_id: str) -> str:
    try:
        return parse_personal_id(personal_id).number
    except _BadId as err:
        raise InvalidPersonalId(("body", "personal_id")) from err


def _outcome(error: GatewayError) -> Outcome:
    if error.status >= 500:
        return "error"
    # Looking up an event that does not exist is an allowed read that found nothing (as for residents).
    return "allowed" if isinstance(error, NotFound) else "denied"


class CursorMac(Protocol):
    """Keyed MACs over cursor contents (``app.auth.keys.CursorSigner``)."""

    def tag(self, data: bytes) -> str: ...
    def valid(self, data: bytes, tag: str) -> bool: ...


class Cursors:
    """Encodes and checks keyset cursors bound to the query (``binding``) they belong to, under the gateway's
    cursor MAC: only the gateway can make one, and only for the query it answered."""

    def __init__(self, signer: CursorMac) -> None:
        self._signer = signer

    @staticmethod
    def _bound(seq: int, binding: Mapping[str, Any]) -> bytes:
        return orjson.dumps(
            ["dancu.audit.cursor", _CURSOR_VERSION, seq, binding], option=orjson.OPT_SORT_KEYS
        )

    def encode(self, seq: int, binding: Mapping[str, Any]) -> str:
        payload = {"v": _CURSOR_VERSION, "seq": seq, "tag": self._signer.tag(self._bound(seq, binding))}
        return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str, binding: Mapping[str, Any]) -> int:
        """The ``seq`` the cursor points after; InvalidCursor unless this query handed it out."""
        if not _CURSOR_TEXT.fullmatch(cursor):
            raise InvalidCursor()
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            data = orjson.loads(raw)
        except (ValueError, orjson.JSONDecodeError):
            raise InvalidCursor() from None
        if not isinstance(data, dict) or data.keys() != {"v", "seq", "tag"} or data["v"] != _CURSOR_VERSION:
            raise InvalidCursor()
        seq, tag = data["seq"], data["tag"]
        if type(seq) is not int or seq < 0 or not isinstance(tag, str):
            raise InvalidCursor()
        if not self._signer.valid(self._bound(seq, binding), tag):
            raise InvalidCursor()
        return seq


class AuditService:
    """The auditor API's use cases; reads in short sessions of their own, events through the writer."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        writer: AuditWriter,
        *,
        cursors: CursorMac,
        export_batch_size: int = EXPORT_BATCH_SIZE,
        read_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self._cursors = Cursors(cursors)
        self._sessionmaker = sessionmaker
        self._writer = writer
        self._batch = export_batch_size
        self._slots = read_slots

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        """A session for one read, once one of the shared read slots is free (when there are slots)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._slots is not None:
                await stack.enter_async_context(self._slots)
            yield await stack.enter_async_context(self._sessionmaker())

    # ------------------------------------------------------------------------------------------ helpers
    @asynccontextmanager
    async def _audited(self, reader: Reader, action: str) -> AsyncIterator[_Note]:
        """Runs a read and writes its event afterwards: allowed, or the refusal or failure it raised."""
        note = _Note()
        call = reader.context()
        try:
            yield note
        except GatewayError as error:
            event = call.event(action, _outcome(error), error.status, subject=note.subject, reason=error.code)
            await self._writer.write([event])
            raise
        except Exception:
            await self._writer.write(
                [call.event(action, "error", 500, subject=note.subject, reason="internal_error")]
            )
            raise
        await self._writer.write([call.event(action, "allowed", 200, subject=note.subject)])

    def _resolve(self, body: EventFilter, note: _Note) -> tuple[EventQuery, dict[str, Any]]:
        """The repository query for ``body`` and the binding its cursors carry."""
        subject = _parse(body.personal_id) if body.personal_id is not None else None
        note.subject = subject
        hasher = self._writer.hasher
        query = EventQuery(
            client_id=body.client_id,
            subject_refs=tuple(hasher.refs(subject)) if subject else None,
            purpose=body.purpose,
            action=body.action,
            outcome=body.outcome,
            since=body.since,
            until=body.until,
            end_user=body.end_user,
            client_ip=body.client_ip,
            dossier_id=body.dossier_id,
            actor=body.actor,
            job_id=body.job_id,
        )
        binding = {
            "kind": "events",
            "client_id": body.client_id,
            # The keyed hash, never the ID: a cursor must not carry anything that leads back to a resident.
            "subject": hasher.ref(subject) if subject else None,
            "purpose": body.purpose,
            "action": body.action,
            "outcome": body.outcome,
            "end_user": body.end_user,
            "client_ip": body.client_ip,
            "dossier_id": body.dossier_id,
            "actor": body.actor,
            "job_id": body.job_id,
            "since": _rfc3339(body.since) if body.since else None,
            "until": _rfc3339(body.until) if body.until else None,
            "order": body.order,
        }
        return query, binding

    # ------------------------------------------------------------------------------------------- search
    async def search(self, reader: Reader, body: SearchRequest) -> dict[str, Any]:
        async with self._audited(reader, "audit.search") as note:
            query, binding = self._resolve(body, note)
            after = self._cursors.decode(body.cursor, binding) if body.cursor is not None else None
            async with self._reading() as session:
                rows = await AuditRepository(session).events(
                    query, order=body.order, limit=body.limit + 1, after=after
                )
            page = rows[: body.limit]
            more = len(rows) > body.limit
            answer = {
                "items": [event_view(row) for row in page],
                "next_cursor": self._cursors.encode(page[-1].seq, binding) if more else None,
            }
        return answer

    async def event(self, reader: Reader, event_id: str) -> dict[str, Any]:
        async with self._audited(reader, "audit.event"):
            async with self._reading() as session:
                row = await AuditRepository(session).by_event_id(event_id)
            if row is None:
                raise NotFound(
                    "No audit event has this id.", detail_vi="Không có sự kiện nhật ký nào với mã này."
                )
            view = event_view(row)
        return view

    # ------------------------------------------------------------------------------------------- export
    async def export(self, reader: Reader, body: EventFilter, encoder: ExportEncoder) -> AsyncIterator[bytes]:
        """The export's byte stream, once its event is committed; nothing is read before it is iterated.

        The export covers the log as it stood when asked (up to the last ``seq`` then), so a long export
        ends even while events keep arriving, and it does not contain its own event.
        """
        async with self._audited(reader, "audit.export") as note:
            query, _ = self._resolve(body, note)
            async with self._sessionmaker() as session:
                upto = await AuditRepository(session).last_seq()
        return export_stream(self._batches(query, body.order, upto), encoder)

    async def _batches(
        self, query: EventQuery, order: Order, upto: int
    ) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        after: int | None = None
        while True:
            # A short session per batch: no connection is held while the client reads.
            async with self._sessionmaker() as session:
                rows = await AuditRepository(session).events(
                    query, order=order, limit=self._batch, after=after, upto=upto
                )
                views = [event_view(row) for row in rows]
            if views:
                yield views
            if len(rows) < self._batch:
                return
            after = rows[-1].seq

    # -------------------------------------------------------------------------------------------- stats
    async def stats(
        self, reader: Reader, group_by: GroupBy, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        async with self._audited(reader, "audit.stats"):
            async with self._reading() as session:
                counts = await AuditRepository(session).counts(group_by, since, until)
            counts.sort(key=lambda item: (item[0] is None, item[0] or ""))
            answer = {"items": [{"key": key, "count": count} for key, count in counts]}
        return answer

    # ----------------------------------------------------------------------------------- subject report
    async def subject_report(self, reader: Reader, body: SubjectReportRequest) -> dict[str, Any]:
        async with self._audited(reader, "audit.subject_report") as note:
            subject = note.subject = _parse(body.personal_id)
            hasher = self._writer.hasher
            binding = {"kind": "subject_report", "subject": hasher.ref(subject)}
            before = self._cursors.decode(body.cursor, binding) if body.cursor is not None else None
            async with self._reading() as session:
                rows = await AuditRepository(session).subject_events(
                    hasher.refs(subject), limit=body.limit + 1, before=before
                )
            page = rows[: body.limit]
            answer = {
                "items": [
                    {
                        "at": _rfc3339(row.at),
                        "client_id": row.client_id,
                        "client_name": row.client_name,
                        "action": row.action,
                        "purpose": row.purpose,
                        "purpose_title": row.purpose_title,
                        "legal_basis": row.legal_basis,
                        "fields": list(row.fields or ()),
                        "dossier_id": row.dossier_id,
                        "outcome": row.outcome,
                    }
                    for row in page
                ],
                "next_cursor": self._cursors.encode(page[-1].seq, binding)
                if len(rows) > body.limit
                else None,
            }
        return answer
