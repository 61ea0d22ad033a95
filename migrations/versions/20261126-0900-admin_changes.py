"""admin changes awaiting a second administrator's approval (four-eyes)

Revision ID: e5ad1a000001
Revises: c7e1a2b3d4f5
Create Date: 2026-11-26 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5ad1a000001"
down_revision: str | None = "c7e1a2b3d4f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_changes",
        sa.Column("change_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_client_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("base", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_admin_changes")),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_admin_changes_status")
        ),
    )
    op.create_index(op.f("ix_admin_changes_status"), "admin_changes", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_changes_status"), table_name="admin_changes")
    op.drop_table("admin_changes")
