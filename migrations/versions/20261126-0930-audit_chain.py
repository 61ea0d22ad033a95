"""audit chain: prev_hash and hash on every event, the chain head, signed checkpoints, append-only guards

Events already stored are chained in ``seq`` order (renumbered 1..n first: before the chain, a rolled-back
PostgreSQL insert could leave a gap). The hash is the one docs/audit-format.md specifies, computed by
``app.audit.chain`` (the format is versioned by that page: it never changes under stored events).

UPDATE, DELETE and TRUNCATE of ``audit_events`` and ``audit_checkpoints`` are refused by a trigger, on
PostgreSQL (``BEFORE ... EXECUTE FUNCTION``) and on SQLite (``RAISE(ABORT)``); archiving old events is a
deliberate procedure that lifts it (docs/operations.md).

Revision ID: d1a0c4a1e001
Revises: e5ad1a000001
Create Date: 2026-11-26 09:30:00+00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.audit.chain import GENESIS_HASH, event_hash

revision: str = "d1a0c4a1e001"
down_revision: str | None = "e5ad1a000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUARDED = ("audit_events", "audit_checkpoints")
_BATCH = 1000

# The columns as this revision knows them (never the application's models, which move on).
_events = sa.table(
    "audit_events",
    sa.column("seq", sa.BigInteger()),
    sa.column("event_id", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("request_id", sa.String()),
    sa.column("client_id", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("purpose", sa.String()),
    sa.column("dossier_id", sa.String()),
    sa.column("subject_ref", sa.String()),
    sa.column("fields", sa.JSON()),
    sa.column("sensitive_fields", sa.JSON()),
    sa.column("outcome", sa.String()),
    sa.column("status_code", sa.Integer()),
    sa.column("reason", sa.String()),
    sa.column("detail", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
_head = sa.table(
    "audit_chain_head",
    sa.column("id", sa.Integer()),
    sa.column("log_id", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("hash", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    seq, last_hash = _chain_existing_events()
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch.create_index(op.f("ix_audit_events_prev_hash"), ["prev_hash"], unique=True)

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("log_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
    )
    op.bulk_insert(_head, [{"id": 1, "log_id": str(uuid.uuid4()), "seq": seq, "hash": last_hash}])

    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("log_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(op.f("ix_audit_checkpoints_seq"), "audit_checkpoints", ["seq"])

    _create_guards()


def downgrade() -> None:
    _drop_guards()
    op.drop_index(op.f("ix_audit_checkpoints_seq"), table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index(op.f("ix_audit_events_prev_hash"))
        batch.drop_column("hash")
        batch.drop_column("prev_hash")


def _chain_existing_events() -> tuple[int, str]:
    """Renumber the stored events 1..n and chain them; the last (seq, hash), or genesis when there are none."""
    bind = op.get_bind()
    seq, prev = 0, GENESIS_HASH
    after = -1
    while True:
        rows = bind.execute(
            sa.select(_events).where(_events.c.seq > after).order_by(_events.c.seq).limit(_BATCH)
        ).all()
        if not rows:
            return seq, prev
        for row in rows:
            seq += 1
            event: dict[str, Any] = dict(row._mapping)
            old_seq = event["seq"]
            if event["at"].tzinfo is None:  # SQLite keeps no zone; the gateway stores UTC
                event["at"] = event["at"].replace(tzinfo=UTC)
            event.update(seq=seq, prev_hash=prev)
            prev = event_hash(event)
            bind.execute(
                _events.update()
                .where(_events.c.seq == old_seq)
                .values(seq=seq, prev_hash=event["prev_hash"], hash=prev)
            )
            after = old_seq


def _create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
        for table in _GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
            )
    elif op.get_bind().dialect.name == "sqlite":
        # SQLite has no TRUNCATE (a DELETE without WHERE is still a DELETE) and no roles: the trigger guards
        # against mistakes, not against whoever can write the file.
        for table in _GUARDED:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )


def _drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    elif op.get_bind().dialect.name == "sqlite":
        for table in _GUARDED:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
