"""purposes.retired_at: a purpose can be retired (docs/contract.md, sections 5 and 7)

Only a column: no table is rebuilt on SQLite, so the access-version triggers on ``purposes`` stay.

Revision ID: c0501e000002
Revises: a5e9000c0001
Create Date: 2026-12-05 04:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0501e000002"
down_revision: str | None = "a5e9000c0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # An earlier migration of the same run may have updated purposes: its access-version trigger events
        # are pending until commit, and a table with pending trigger events cannot be altered. Fire them now.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.add_column("purposes", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("purposes", "retired_at")
