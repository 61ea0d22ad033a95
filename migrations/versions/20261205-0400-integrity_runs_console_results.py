"""integrity runs and console results: the last full check kept with its result, and console results behind
opaque tokens (docs/contract.md, section 15)

Revision ID: c0a5e1e00001
Revises: f0a115000002
Create Date: 2026-12-05 04:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0a5e1e00001"
down_revision: str | None = "f0a115000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_integrity_runs",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("first_bad_seq", sa.BigInteger(), nullable=True),
        sa.Column("problem", sa.String(length=32), nullable=True),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_audit_integrity_runs")),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_audit_integrity_runs_status")
        ),
    )
    op.create_index("ix_audit_integrity_runs_started_at", "audit_integrity_runs", ["started_at"])
    op.create_table(
        "console_results",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_results")),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["operator_sessions.token_hash"],
            name=op.f("fk_console_results_session_hash_operator_sessions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_console_results_session_hash", "console_results", ["session_hash"])


def downgrade() -> None:
    op.drop_index("ix_console_results_session_hash", table_name="console_results")
    op.drop_table("console_results")
    op.drop_index("ix_audit_integrity_runs_started_at", table_name="audit_integrity_runs")
    op.drop_table("audit_integrity_runs")
