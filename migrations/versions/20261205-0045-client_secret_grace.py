"""clients: secret authentication can be turned off, and a rotated-out secret may stay valid for a while

``secret_enabled`` false: the client authenticates with ``private_key_jwt`` only (its secret is refused).
``previous_secret_hash`` / ``previous_secret_kid`` / ``previous_secret_until``: the secret replaced by a
rotation with ``grace_seconds``, accepted until ``previous_secret_until`` (at most 24 hours), so a portal can
be redeployed with its new secret without an outage (docs/contract.md, Administration).

Columns only: no table is rebuilt on SQLite, so the access-version triggers on ``clients`` stay as they are.

Revision ID: 5ec7e7000001
Revises: f0a115000001
Create Date: 2026-12-05 00:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5ec7e7000001"
down_revision: str | None = "f0a115000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "clients", sa.Column("secret_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column("clients", sa.Column("previous_secret_hash", sa.String(length=64), nullable=True))
    op.add_column("clients", sa.Column("previous_secret_kid", sa.String(length=32), nullable=True))
    op.add_column("clients", sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("previous_secret_until", "previous_secret_kid", "previous_secret_hash", "secret_enabled"):
        op.drop_column("clients", column)
