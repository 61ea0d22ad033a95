"""The audit context's dependencies: where the app keeps the audit writer, the checkpointer and the read
slots, and the ``AuditService`` of a request."""

from __future__ import annotations

import asyncio
from typing import Annotated, Final

from fastapi import Depends

from app.audit import service as audit_service
from app.audit.checkpoints import Checkpointer
from app.audit.integrity_runs import IntegrityRuns
from app.audit.service import AuditService
from app.audit.writer import AuditWriter
from app.auth.dependencies import KEYS
from app.state import AppStateDep, StateKey

AUDIT: Final = StateKey[AuditWriter]("audit")
"""Commits citizen events in their own transaction before the answer leaves."""
CHECKPOINTS: Final = StateKey[Checkpointer]("checkpoints")
"""Signs checkpoints of the audit chain: every N events or T seconds, on demand, and at shutdown."""
INTEGRITY_RUNS: Final = StateKey[IntegrityRuns]("integrity_runs")
"""Full integrity checks, recorded with their result (the console shows the last one without a new walk)."""
AUDIT_READS: Final = StateKey[asyncio.Semaphore]("audit_reads")
"""Auditor reads (search, one event, stats, the subject report) worked on at once; the others wait. Each
holds its page of rows, models and answer: 64 at once took the gateway ~14 MiB further (bench/harness.py)."""


async def get_audit_service(state: AppStateDep) -> AuditService:
    return AuditService(
        state.sessionmaker,
        state[AUDIT],
        cursors=state[KEYS].cursors,
        export_batch_size=audit_service.EXPORT_BATCH_SIZE,  # read per call: tests lower it
        read_slots=state[AUDIT_READS],
    )


AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
