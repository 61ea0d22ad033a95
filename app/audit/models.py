"""The audit context's tables: append-only chained events, the chain head, and signed checkpoints.

``audit_events`` and ``audit_checkpoints`` are never updated or deleted (on PostgreSQL a trigger refuses it;
see docs/operations.md for archiving). ``audit_chain_head`` is the one row every append locks and moves on:
it serialises writers, across processes too, so the log stays one linear chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class AuditEventRow(Base):
    """One event. ``subject_ref`` is a keyed hash of the personal ID; no field value is ever stored.

    ``hash`` = SHA-256(``prev_hash`` || canonical form of every other member), docs/audit-format.md.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied', 'error')", name="outcome"),
        # A search by personal ID reads its page straight off this index, in seq order (no sort).
        Index("ix_audit_events_subject_ref_seq", "subject_ref", "seq"),
        Index("ix_audit_events_client_id_at", "client_id", "at"),
        # Two events with one predecessor would be a fork: refused by the database as well as by the head lock.
        Index("ix_audit_events_prev_hash", "prev_hash", unique=True),
        Index("ix_audit_events_end_user", "end_user"),
        # Time ranges without a client: the console's dashboard (yesterday and today) and time-bounded searches.
        Index("ix_audit_events_at", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(64))
    dossier_id: Mapped[str | None] = mapped_column(String(64))
    subject_ref: Mapped[str | None] = mapped_column(String(100))
    fields: Mapped[list[str]] = mapped_column(JSON)
    sensitive_fields: Mapped[list[str]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    end_user: Mapped[str | None] = mapped_column(String(128))
    """The caller's ``X-End-User``: the officer at the calling system (format 2)."""
    client_ip: Mapped[str | None] = mapped_column(String(45))
    """The TCP peer, or the address behind a trusted proxy (format 2)."""
    job_id: Mapped[str | None] = mapped_column(String(64))
    """The bulk job the event belongs to (format 2)."""
    format: Mapped[int] = mapped_column(Integer, server_default="1")
    """The canonical form's version the hash was computed with (docs/audit-format.md)."""


class AuditChainHead(Base):
    """The single row (``id`` = 1) naming the log and its last event: the lock point of every append."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    log_id: Mapped[str] = mapped_column(String(36))
    """A uuid naming this log, made at genesis; every checkpoint carries it."""
    seq: Mapped[int] = mapped_column(BigInteger)
    """The last event's ``seq`` (0 before the first event)."""
    hash: Mapped[str] = mapped_column(String(64))
    """The last event's ``hash`` (64 zeros before the first event)."""


class AuditCheckpointRow(Base):
    """A signed checkpoint ``{log_id, seq, hash, at, kid, jws}``; also written as a file outside the database."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_seq", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    log_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)


class AuditIntegrityRun(Base):
    """One full check of the chain (``GET /v1/audit/integrity`` or the console's integrity page) and what it
    found, so the last result can be shown without walking the chain again.

    ``status``: ``running`` (``checked`` grows batch by batch and ``heartbeat_at`` with it; a run whose
    heartbeat is older than a minute was interrupted, e.g. by a restart), ``done`` (``ok`` and, when not,
    ``first_bad_seq`` and ``problem``), or ``failed`` (the check itself could not finish, e.g. the database
    went away: no verdict)."""

    __tablename__ = "audit_integrity_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
        Index("ix_audit_integrity_runs_started_at", "started_at"),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    """Who asked: ``op:<username>`` from the console, the client's id from the API."""
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    total: Mapped[int] = mapped_column(BigInteger)
    """The head's ``seq`` when the run started: how far the walk has to go (for the progress shown)."""
    checked: Mapped[int] = mapped_column(BigInteger)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    first_bad_seq: Mapped[int | None] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(String(32))
    checkpoint_seq: Mapped[int | None] = mapped_column(BigInteger)
