"""The auth context's tables: purposes of use, clients, their grants, and the gateway's signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Purpose(Base):
    """A registered purpose of use: every citizen request names one (``X-Purpose``) and its legal basis."""

    __tablename__ = "purposes"
    __table_args__ = (Index("ix_purposes_code_folded", "code_folded", unique=True),)

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    """``^[A-Za-z0-9._-]{1,64}$``, e.g. a procedure code such as ``1.001234.000.00.00.H12``."""
    code_folded: Mapped[str | None] = mapped_column(String(64))
    """``code`` in lower case: unique, so ``P1`` cannot be registered beside ``p1``. Null only for a code that
    already had a case variant when the rule came (the migration keeps both, the older one indexed)."""
    title: Mapped[str] = mapped_column(Text)
    """Vietnamese title, NFC."""
    legal_basis: Mapped[str] = mapped_column(Text)
    """The legal document and article that allows the processing."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    retired_at: Mapped[datetime | None] = mapped_column(default=None)
    """When it was retired (null: in use). A retired purpose is kept, for the events and reports that name it,
    but no grant or call may use it any more."""


class Client(Base):
    """A calling system (a provincial portal, an auditor's tool, an administrator).

    The secret is stored only as ``secret_hash``: HMAC-SHA256 under a server key derived from
    ``DANCU_KEYS__ENCRYPTION_KEY``; ``secret_kid`` names that key. After a rotation with a grace period the
    previous secret's hash stays, accepted until ``previous_secret_until``. ``jwks`` holds the public keys registered
    for ``private_key_jwt`` (public members only; validated when set).
    """

    __tablename__ = "clients"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="active")
    secret_hash: Mapped[str] = mapped_column(String(64))
    secret_kid: Mapped[str] = mapped_column(String(32))
    secret_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """False: the client authenticates with ``private_key_jwt`` only; a new secret turns it on again."""
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_kid: Mapped[str | None] = mapped_column(String(32))
    previous_secret_until: Mapped[datetime | None]
    """A secret rotated out with a grace period is still accepted before this instant (at most 24 hours)."""
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClientGrant(Base):
    """What one client may do (one row per client; a new client's grant allows nothing).

    Lists are stored as given (``fields`` may hold ``"*"``, ``provinces`` may be ``["*"]``); the scope
    dependencies expand them per request into ``app.auth.context.Grant``.
    """

    __tablename__ = "grants"

    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    provinces: Mapped[list[str]] = mapped_column(JSON, default=list)
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    verify_details: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    distinct_subjects_per_day: Mapped[int] = mapped_column(Integer, default=5000)
    require_end_user: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """True: every citizen, statistics and confirmation call names its end user (``X-End-User``), else 400
    ``end_user_required``."""
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SigningKey(Base):
    """A key the gateway signs access tokens and attestations with (ES256, P-256).

    The private key is PEM encrypted with Fernet (``DANCU_KEYS__ENCRYPTION_KEY``). Keys are never deleted:
    a retired key (``active`` false, ``retired_at`` set) stays published in the JWKS so that attestations it
    signed remain verifiable offline.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class AccessVersion(Base):
    """One row whose ``version`` the database's triggers move on every change to clients, grants or purposes."""

    __tablename__ = "access_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
