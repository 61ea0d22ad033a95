"""All of the admin context's SQL: the pending-changes table. Flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AdminChange


class AdminChangeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, change: AdminChange) -> None:
        self.session.add(change)
        await self.session.flush()

    async def get(self, change_id: str) -> AdminChange | None:
        return await self.session.get(AdminChange, change_id)

    async def page(
        self, *, status: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[AdminChange]:
        """Oldest first (the order a reviewer works through them), keyset-paged on (created_at, change_id)."""
        query = select(AdminChange).order_by(AdminChange.created_at, AdminChange.change_id).limit(limit)
        if status is not None:
            query = query.where(AdminChange.status == status)
        if after is not None:
            at, change_id = after
            query = query.where(
                or_(
                    AdminChange.created_at > at,
                    and_(AdminChange.created_at == at, AdminChange.change_id > change_id),
                )
            )
        return (await self.session.scalars(query)).all()

    async def decide(self, change: AdminChange, status: str, *, by: str, at: datetime) -> bool:
        """Move a pending change to ``status``; False when it was no longer pending (another administrator
        decided it first: the conditional UPDATE makes concurrent decisions take turns)."""
        result = cast(
            CursorResult[Any],
            await self.session.execute(
                update(AdminChange)
                .where(AdminChange.change_id == change.change_id, AdminChange.status == "pending")
                .values(status=status, decided_by=by, decided_at=at)
                .execution_options(synchronize_session=False)
            ),
        )
        decided = result.rowcount == 1
        await self.session.refresh(change)
        return decided
