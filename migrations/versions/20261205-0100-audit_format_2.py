"""audit events: end_user, client_ip, job_id and the canonical form's version (format 2)

Events already stored keep format 1 (the server default fills the column) and are never re-hashed; every new
event is written with format 2, whose hash also covers the three new members and ``format`` itself
(docs/audit-format.md). Only columns are added: no row of the append-only table is updated, so neither the
PostgreSQL trigger that refuses updates nor SQLite's table needs to change.

Revision ID: a0d17f000002
Revises: 5ec7e7000001
Create Date: 2026-12-05 01:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a0d17f000002"
down_revision: str | None = "5ec7e7000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("end_user", sa.String(length=128), nullable=True))
    op.add_column("audit_events", sa.Column("client_ip", sa.String(length=45), nullable=True))
    op.add_column("audit_events", sa.Column("job_id", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("format", sa.Integer(), server_default="1", nullable=False))
    op.create_index("ix_audit_events_end_user", "audit_events", ["end_user"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_end_user", table_name="audit_events")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy would lose SQLite's append-only triggers.
    for column in ("format", "job_id", "client_ip", "end_user"):
        op.drop_column("audit_events", column)
