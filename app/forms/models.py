"""The forms context's tables: form templates and confirmations in progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text
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


class FormConfirmation(Base):
    """A resident's confirmation of a declaration by a one-time code, from start to its end.

    The code itself is never here: the population database generated it and checks it against
    ``challenge_id``. ``personal_id`` is kept while the confirmation is pending (the receipt names the resident)
    and erased when it ends (confirmed, locked or expired); ``subject_ref`` (the audit log's keyed hash) stays.
    ``attempts`` counts the codes checked (at most 5), ``resends`` the codes sent again (at most 3).
    """

    __tablename__ = "form_confirmations"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'confirmed', 'locked', 'expired')", name="status"),
        Index("ix_form_confirmations_expires_at", "expires_at"),
    )

    confirmation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    personal_id: Mapped[str | None] = mapped_column(String(12))
    subject_ref: Mapped[str] = mapped_column(String(100))
    form: Mapped[str] = mapped_column(String(32))
    document_sha256: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    dossier_id: Mapped[str | None] = mapped_column(String(64))
    end_user: Mapped[str | None] = mapped_column(String(128))
    challenge_id: Mapped[str] = mapped_column(String(64))
    destination_hint: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    resends: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
