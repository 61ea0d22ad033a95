"""audit events (append-only; the hash chain comes with the evidence issue)

Revision ID: 5a1d17e0a001
Revises: 0b6f3c2a91d4
Create Date: 2026-11-26 07:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a1d17e0a001"
down_revision: str | None = "0b6f3c2a91d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.Column("dossier_id", sa.String(length=64), nullable=True),
        sa.Column("subject_ref", sa.String(length=100), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("sensitive_fields", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_events_event_id")),
        sa.CheckConstraint("outcome IN ('allowed', 'denied', 'error')", name=op.f("ck_audit_events_outcome")),
    )
    op.create_index(op.f("ix_audit_events_subject_ref"), "audit_events", ["subject_ref"])
    op.create_index(op.f("ix_audit_events_client_id_at"), "audit_events", ["client_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_client_id_at"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_subject_ref"), table_name="audit_events")
    op.drop_table("audit_events")
