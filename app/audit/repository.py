"""All SQL of the auditor API: event search by keyset on ``seq``, counts, and the subject report.

Reads only: the log is append-only and written by ``app.audit.writer`` alone. Every query is keyset-paged on
the primary key (``seq``), so a page costs the same at the end of the log as at its start, and the filters
that matter at scale ride the existing indexes (``subject_ref, seq``; ``client_id, at``). The queries are
portable between SQLite and PostgreSQL; the one dialect-specific expression (the UTC date of an event) is
compiled per dialect below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.functions import FunctionElement

from app.audit.models import AuditEventRow
from app.audit.schemas import GroupBy
from app.auth.models import Client, Purpose

CITIZEN_ACTIONS: Final = (
    "citizen.verify",
    "citizen.read",
    "household.read",
    "citizen.prefill",
    "confirmation.start",
    "confirmation.complete",
    "confirmation.resend",
)
"""The events of a subject report: those that touched a resident's data."""


class utc_date(FunctionElement[str]):  # named like the SQL function it stands for
    """``YYYY-MM-DD`` of a timestamp, in UTC, as text (whatever the session's time zone)."""

    type = String()
    inherit_cache = True


@compiles(utc_date, "sqlite")
def _utc_date_sqlite(element: utc_date, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the UTC wall time as text ("YYYY-MM-DD HH:MM:SS.ffffff"): UTCDateTime stores UTC only.
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_date, "postgresql")
def _utc_date_postgresql(element: utc_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {compiler.process(element.clauses, **kw)}), 'YYYY-MM-DD')"


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Search filters, already resolved: a personal ID arrives as every ``subject_ref`` it may be stored as."""

    client_id: str | None = None
    subject_refs: tuple[str, ...] | None = None
    purpose: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    end_user: str | None = None
    client_ip: str | None = None
    dossier_id: str | None = None
    actor: str | None = None
    job_id: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        row = AuditEventRow
        found: list[ColumnElement[bool]] = []
        if self.client_id is not None:
            found.append(row.client_id == self.client_id)
        if self.subject_refs is not None:
            found.append(row.subject_ref.in_(self.subject_refs))
        if self.purpose is not None:
            found.append(row.purpose == self.purpose)
        if self.action is not None:
            found.append(row.action == self.action)
        if self.outcome is not None:
            found.append(row.outcome == self.outcome)
        for column, value in (
            (row.end_user, self.end_user),
            (row.client_ip, self.client_ip),
            (row.dossier_id, self.dossier_id),
            (row.actor, self.actor),
            (row.job_id, self.job_id),
        ):
            if value is not None:
                found.append(column == value)
        if self.since is not None:
            found.append(row.at >= self.since)
        if self.until is not None:
            found.append(row.at < self.until)
        return found


@dataclass(frozen=True, slots=True)
class ReportRow:
    seq: int
    at: datetime
    client_id: str | None
    client_name: str | None
    action: str
    purpose: str | None
    purpose_title: str | None
    legal_basis: str | None
    fields: list[str]
    dossier_id: str | None
    outcome: str


_Select = TypeVar("_Select", bound=Select[*tuple[Any, ...]])


def _keyset(
    statement: _Select, order: Literal["asc", "desc"], after: int | None, upto: int | None
) -> _Select:
    """Rows past ``after`` in ``order`` (exclusive), none above ``upto``."""
    seq = AuditEventRow.seq
    if upto is not None:
        statement = statement.where(seq <= upto)
    if after is not None:
        statement = statement.where(seq > after if order == "asc" else seq < after)
    return statement.order_by(seq.asc() if order == "asc" else seq.desc())


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def events(
        self,
        query: EventQuery,
        *,
        order: Literal["asc", "desc"],
        limit: int,
        after: int | None = None,
        upto: int | None = None,
    ) -> Sequence[AuditEventRow]:
        """Up to ``limit`` matching events after the keyset position ``after``, ordered by ``seq``."""
        statement = _keyset(select(AuditEventRow).where(*query.conditions()), order, after, upto)
        return (await self._session.scalars(statement.limit(limit))).all()

    async def by_event_id(self, event_id: str) -> AuditEventRow | None:
        return await self._session.scalar(select(AuditEventRow).where(AuditEventRow.event_id == event_id))

    async def last_seq(self) -> int:
        """The highest ``seq`` now in the log (0 when empty)."""
        return int(await self._session.scalar(select(func.coalesce(func.max(AuditEventRow.seq), 0))) or 0)

    async def counts(
        self, group_by: GroupBy, since: datetime | None, until: datetime | None
    ) -> list[tuple[str | None, int]]:
        """``(key, count)`` for every group of the events in ``[since, until)``."""
        row = AuditEventRow
        key: SQLColumnExpression[Any] = {
            "client": row.client_id,
            "purpose": row.purpose,
            "outcome": row.outcome,
            "action": row.action,
            "day": utc_date(row.at),
        }[group_by]
        labelled: Label[Any] = key.label("key")
        statement = (
            select(labelled, func.count().label("count"))
            .where(*EventQuery(since=since, until=until).conditions())
            .group_by(labelled)
        )
        return [(k, int(n)) for k, n in await self._session.execute(statement)]

    async def subject_events(
        self, subject_refs: Sequence[str], *, limit: int, before: int | None = None
    ) -> list[ReportRow]:
        """A resident's citizen-data events, newest first, with the client's name and the purpose's title."""
        row = AuditEventRow
        statement = _keyset(
            select(
                row.seq,
                row.at,
                row.client_id,
                Client.name,
                row.action,
                row.purpose,
                Purpose.title,
                Purpose.legal_basis,
                row.fields,
                row.dossier_id,
                row.outcome,
            )
            .outerjoin(Client, Client.client_id == row.client_id)
            .outerjoin(Purpose, Purpose.code == row.purpose)
            .where(row.subject_ref.in_(subject_refs), row.action.in_(CITIZEN_ACTIONS)),
            "desc",
            before,
            None,
        )
        result = await self._session.execute(statement.limit(limit))
        return [ReportRow(*values) for values in result]
