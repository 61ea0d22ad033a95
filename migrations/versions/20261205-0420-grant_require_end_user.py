"""grants: ``require_end_user``, a grant whose calls must name their end user (``X-End-User``)

False for every existing grant (the default): nothing a client does today starts failing. With true, a citizen,
statistics or confirmation call without ``X-End-User`` is 400 ``end_user_required`` (docs/contract.md, 4. Scopes
and grants).

A column only: no table is rebuilt on SQLite, so the access-version triggers on ``grants`` stay as they are.

Revision ID: e2d05e000001
Revises: c0501e000001
Create Date: 2026-12-05 04:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2d05e000001"
down_revision: str | None = "c0501e000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "grants", sa.Column("require_end_user", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("grants", "require_end_user")
