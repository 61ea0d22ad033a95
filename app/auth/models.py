"""The auth context's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Purpose(Base):
    """A registered purpose of use: every citizen request names one (``X-Purpose``) and its legal basis."""

    __tablename__ = "purposes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    """``^[A-Za-z0-9._-]{1,64}$``, e.g. a procedure code such as ``1.001234.000.00.00.H12``."""
    title: Mapped[str] = mapped_column(Text)
    """Vietnamese title, NFC."""
    legal_basis: Mapped[str] = mapped_column(Text)
    """The legal document and article that allows the processing."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
