"""access version: one row that every change to clients, grants or purposes moves, whoever makes it

Each gateway process keeps clients, grants and purposes in memory (``app.auth.access``) and polls this row to
learn that another process (a replica, the CLI, an operator's SQL) changed them. Triggers, not the
application, move it, so that no way of changing those tables can forget to.

PostgreSQL: a deferred constraint trigger per row (it runs at commit, so the row lock on ``access_version`` is
held only while committing and can never be part of a deadlock with the changed rows), plus a statement
trigger for TRUNCATE. SQLite: a row trigger per verb (SQLite has one writer at a time, and a trigger's write
commits with the change). A later migration that rebuilds one of these tables on SQLite (batch mode copies
it into a new table and drops the old one, triggers included) must create its triggers again.

Revision ID: ac5e55000001
Revises: d1a0c4a1e001
Create Date: 2026-11-26 10:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ac5e55000001"
down_revision: str | None = "d1a0c4a1e001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WATCHED = ("clients", "grants", "purposes")
_VERBS = ("INSERT", "UPDATE", "DELETE")
_BUMP = "UPDATE access_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "access_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_version")),
        sa.CheckConstraint("id = 1", name=op.f("ck_access_version_single_row")),
    )
    op.bulk_insert(
        sa.table("access_version", sa.column("id", sa.Integer()), sa.column("version", sa.BigInteger())),
        [{"id": 1, "version": 0}],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION access_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {_BUMP};
                RETURN NULL;
            END
            $$
            """
        )
        for table in _WATCHED:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {table}_access_version AFTER {' OR '.join(_VERBS)} ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_version_bump()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_access_version_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION access_version_bump()"
            )
    elif op.get_bind().dialect.name == "sqlite":
        for table in _WATCHED:
            for verb in _VERBS:
                op.execute(
                    f"CREATE TRIGGER {table}_access_version_{verb.lower()} AFTER {verb} ON {table} "
                    f"BEGIN {_BUMP}; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_access_version_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_access_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS access_version_bump()")
    elif op.get_bind().dialect.name == "sqlite":
        for table in _WATCHED:
            for verb in _VERBS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_access_version_{verb.lower()}")
    op.drop_table("access_version")
