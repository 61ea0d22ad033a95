"""HTTP for the log's integrity: ``GET /v1/audit/integrity`` and the signed checkpoints (scope ``audit.read``).

Each call is itself an audit event (``audit.integrity``, ``audit.checkpoint``), written before the answer
leaves: when it cannot be written the caller gets 503 ``audit_unavailable`` and no answer, except for the
integrity check itself, which answers all the same (and logs that it could not be recorded).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request, status

from app.audit.checkpoints import latest_checkpoint
from app.audit.dependencies import AUDIT, CHECKPOINTS, INTEGRITY_RUNS
from app.audit.errors import AuditUnavailable
from app.audit.schemas import CheckpointOut, IntegrityOut
from app.audit.writer import AuditContext, AuditEvent
from app.auth.context import AuthContext
from app.auth.dependencies import AuditReader
from app.errors import GatewayError, InsufficientScope, InvalidToken, NotFound
from app.problems import problem_responses, request_id_of
from app.routing import GatewayRoute
from app.state import AppState, AppStateDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GatewayRoute)

COMMON_ERRORS = (InvalidToken, InsufficientScope, AuditUnavailable)


@asynccontextmanager
async def _audited(
    state: AppState,
    request: Request,
    auth: AuthContext,
    action: str,
    success: int = 200,
    *,
    answer_unrecorded: bool = False,
) -> AsyncIterator[None]:
    """Run the read, then record it: allowed, or the refusal or failure it raised.

    ``answer_unrecorded``: when the event cannot be written, log that and answer all the same (the
    integrity check: it must tell the auditor what is wrong exactly when the log takes no new event)."""
    call = AuditContext.of_client(auth.client_id, request_id_of(request))
    try:
        yield
    except GatewayError as error:
        await _record(state, auth, action, call.refusal(action, error), answer_unrecorded)
        raise
    except Exception:
        event = call.event(action, "error", 500, reason="internal_error")
        await _record(state, auth, action, event, answer_unrecorded)
        raise
    await _record(state, auth, action, call.event(action, "allowed", success), answer_unrecorded)


async def _record(
    state: AppState, auth: AuthContext, action: str, event: AuditEvent, answer_unrecorded: bool
) -> None:
    try:
        await state[AUDIT].write([event])
    except AuditUnavailable:
        if not answer_unrecorded:
            raise
        logger.error(
            "%s by client %s could not be recorded: the audit log takes no new event; answered anyway "
            "(run `dancu audit verify`)",
            action,
            auth.client_id,
        )


@router.get("/integrity", response_model=IntegrityOut, responses=problem_responses(*COMMON_ERRORS))
async def integrity(request: Request, auth: AuditReader, state: AppStateDep) -> IntegrityOut:
    """Verify the chain against the latest signed checkpoints (database and checkpoint directory).

    Answered even when the log cannot take this read's own ``audit.integrity`` event (a forged event after
    the head blocks every append): that is when an auditor needs the answer most. The failure to record it
    is logged; every other route keeps failing closed. The run and its result are kept (the console's
    integrity page shows the last one)."""
    async with _audited(state, request, auth, "audit.integrity", answer_unrecorded=True):
        report = await state[INTEGRITY_RUNS].check(auth.client_id)
    return IntegrityOut(
        ok=report.ok,
        checked=report.checked,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        checkpoint_seq=report.checkpoint_seq,
    )


@router.get(
    "/checkpoints/latest",
    response_model=CheckpointOut,
    responses=problem_responses(*COMMON_ERRORS, NotFound),
)
async def latest_checkpoint_of_log(request: Request, auth: AuditReader, state: AppStateDep) -> CheckpointOut:
    """The latest signed checkpoint stored (404 `not_found` before the first one)."""
    async with _audited(state, request, auth, "audit.checkpoint"):
        async with state.sessionmaker() as session:
            found = await latest_checkpoint(session)
        if found is None:
            raise NotFound("No checkpoint has been made yet.", detail_vi="Chưa có điểm kiểm tra nào.")
    return CheckpointOut.of(found)


@router.post(
    "/checkpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckpointOut,
    responses=problem_responses(*COMMON_ERRORS),
)
async def make_checkpoint(request: Request, auth: AuditReader, state: AppStateDep) -> CheckpointOut:
    """Make a signed checkpoint of the log as it is now: stored, and written to the checkpoint directory."""
    async with _audited(state, request, auth, "audit.checkpoint", success=status.HTTP_201_CREATED):
        try:
            made = await state[CHECKPOINTS].make()
        except Exception as exc:
            raise AuditUnavailable(
                "The checkpoint could not be stored and written; try again later.",
                detail_vi="Không lưu được điểm kiểm tra; vui lòng thử lại sau.",
            ) from exc
    return CheckpointOut.of(made)
