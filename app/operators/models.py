"""The operators context's tables: the accounts and their server-side console sessions.

Sessions live in the gateway database, not in a process, so every replica sees a login, a logout and a
disable at once: each console request reads its session row and its operator row (docs/contract.md,
section 15). A session row stores a SHA-256 of the cookie's value, never the value itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Operator(Base):
    """An officer's account: roles, an argon2id password hash, an optional TOTP secret (Fernet-encrypted)."""

    __tablename__ = "operators"
    __table_args__ = (CheckConstraint("status IN ('active', 'disabled')", name="status"),)

    operator_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(254))
    roles: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    must_change_password: Mapped[bool] = mapped_column(Boolean)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    totp_secret: Mapped[str | None] = mapped_column(Text)
    """The enrolled authenticator's base32 secret, encrypted with ``DANCU_KEYS__ENCRYPTION_KEY``."""
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    """The 30-second step of the last code accepted: a code of that step or an earlier one is a replay."""
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperatorSession(Base):
    """A console session. ``stage``: ``code`` (password accepted, code awaited), ``change_password`` and
    ``enrol`` (signed in, but only that page is open), ``ready``."""

    __tablename__ = "operator_sessions"
    __table_args__ = (
        CheckConstraint("stage IN ('code', 'change_password', 'enrol', 'ready')", name="stage"),
        Index("ix_operator_sessions_operator_id", "operator_id"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("operators.operator_id", ondelete="CASCADE")
    )
    stage: Mapped[str] = mapped_column(String(16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    pending_totp_secret: Mapped[str | None] = mapped_column(Text)
    """During enrolment: the secret shown, encrypted, until a code from it is entered."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
