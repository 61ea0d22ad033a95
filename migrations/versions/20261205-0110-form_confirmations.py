"""form confirmations: a resident confirming a declaration by a one-time code (docs/contract.md, 18. Forms)

Revision ID: f0a115000002
Revises: a0d17f000002
Create Date: 2026-12-05 01:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f0a115000002"
down_revision: str | None = "a0d17f000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "form_confirmations",
        sa.Column("confirmation_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("personal_id", sa.String(length=12), nullable=True),
        sa.Column("subject_ref", sa.String(length=100), nullable=False),
        sa.Column("form", sa.String(length=32), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("dossier_id", sa.String(length=64), nullable=True),
        sa.Column("end_user", sa.String(length=128), nullable=True),
        sa.Column("challenge_id", sa.String(length=64), nullable=False),
        sa.Column("destination_hint", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("confirmation_id", name=op.f("pk_form_confirmations")),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'locked', 'expired')",
            name=op.f("ck_form_confirmations_status"),
        ),
    )
    op.create_index(op.f("ix_form_confirmations_expires_at"), "form_confirmations", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_form_confirmations_expires_at"), table_name="form_confirmations")
    op.drop_table("form_confirmations")
