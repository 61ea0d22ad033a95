"""The forms context's tables: form templates (confirmations are added with their flow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class FormTemplate(Base):
    """An administrative form the gateway can prefill: its fields, where each comes from, how it is written.

    ``fields`` is the list of ``{name, label, source, format}`` as the admin API took it (validated against
    ``app.forms.sources``). Retiring a form keeps its row (``status = 'retired'``): events and receipts name it.
    """

    __tablename__ = "form_templates"
    __table_args__ = (CheckConstraint("status IN ('active', 'retired')", name="status"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
