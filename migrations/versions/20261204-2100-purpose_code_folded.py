"""purposes: codes unique without regard to case (``code_folded``, a unique index)

``p1`` and ``P1`` registered side by side read as one purpose in every report and invite a grant naming the
wrong one. New codes are refused when their lower-case form is taken. A database that already holds codes
differing only in case keeps them all (grants and audit events name them): the oldest of each group gets its
folded form, the others keep ``code_folded`` null, outside the unique index, and no further variant of any of
them can be registered.

Only a column and an index: no table is rebuilt on SQLite, so the access-version triggers on ``purposes``
stay as they are.

Revision ID: f01ded000001
Revises: ac5e55000001
Create Date: 2026-12-04 21:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f01ded000001"
down_revision: str | None = "ac5e55000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PURPOSES = sa.table(
    "purposes",
    sa.column("code", sa.String()),
    sa.column("code_folded", sa.String()),
    sa.column("created_at", sa.DateTime()),
)


def upgrade() -> None:
    op.add_column("purposes", sa.Column("code_folded", sa.String(length=64), nullable=True))
    # The index before the backfill: on PostgreSQL the updates leave access-version trigger events pending
    # until commit, and an index cannot be created on a table with pending trigger events.
    op.create_index("ix_purposes_code_folded", "purposes", ["code_folded"], unique=True)
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_PURPOSES.c.code).order_by(_PURPOSES.c.created_at, _PURPOSES.c.code)
    ).all()
    taken: set[str] = set()
    for (code,) in rows:
        folded = code.lower()
        if folded in taken:
            continue  # a later case variant of a code already kept: stays registered, outside the index
        taken.add(folded)
        connection.execute(sa.update(_PURPOSES).where(_PURPOSES.c.code == code).values(code_folded=folded))


def downgrade() -> None:
    op.drop_index("ix_purposes_code_folded", table_name="purposes")
    op.drop_column("purposes", "code_folded")
