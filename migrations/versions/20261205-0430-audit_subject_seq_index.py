"""audit_events: the subject index also orders by ``seq`` (``subject_ref, seq``), replacing ``subject_ref``

A search by personal ID is ``subject_ref = ? ORDER BY seq LIMIT n`` (the API's search and export, the console's
audit search, the subject report). On ``subject_ref`` alone PostgreSQL either fetches and sorts every event of
the resident, or walks the primary key backwards filtering on ``subject_ref``; with a cached generic plan (the
limit a parameter) it may pick the wrong one for a resident with many events: 250-400 ms a page for a resident
with 20,000 of 1,000,000 events. On ``(subject_ref, seq)`` the page is the index's next ``n`` entries whatever the
resident's count or the plan (docs/performance.md). The old index is a prefix of the new one, so it goes.

Building it reads the whole table once (seconds for a million events); writers wait meanwhile.

Revision ID: a5e9000c0001
Revises: e2d05e000001
Create Date: 2026-12-05 04:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a5e9000c0001"
down_revision: str | None = "e2d05e000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_events_subject_ref_seq", "audit_events", ["subject_ref", "seq"])
    op.drop_index("ix_audit_events_subject_ref", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_subject_ref", "audit_events", ["subject_ref"])
    op.drop_index("ix_audit_events_subject_ref_seq", table_name="audit_events")
