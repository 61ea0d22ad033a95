"""form templates: the forms a portal can prefill from the record (docs/contract.md, 18. Forms)

Revision ID: f0a115000001
Revises: 0be7a0000001
Create Date: 2026-12-05 00:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f0a115000001"
down_revision: str | None = "0be7a0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "form_templates",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_form_templates")),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_form_templates_status")),
    )


def downgrade() -> None:
    op.drop_table("form_templates")
