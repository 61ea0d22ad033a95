"""The admin context's one table: changes that widen access, waiting for a second administrator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class AdminChange(Base):
    """A REST change that widens access, recorded instead of applied while four-eyes approval is on.

    ``action`` is the audit action the change becomes when approved (``admin.grant.replace``,
    ``admin.client.update``). Rows are never deleted: a decided change keeps who decided and when.
    """

    __tablename__ = "admin_changes"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        Index("ix_admin_changes_status", "status"),
    )

    change_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_client_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The requested change as the REST body gave it (never a secret)."""
    base: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The part of the target's state the change was judged against; approval is refused once it differs."""
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
