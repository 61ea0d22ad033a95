"""HTTP for the citizen endpoints (``/v1/citizens/...``): parse, build the call context, delegate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.writer import AuditEvent, AuditUnavailable
from app.auth.context import AuthContext
from app.auth.dependencies import require_household, require_read, require_verify
from app.auth.models import Purpose
from app.backends.errors import (
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.citizens.errors import (
    BatchTooLarge,
    FieldNotAllowed,
    InvalidPersonalId,
    PurposeNotAllowed,
    PurposeRequired,
)
from app.citizens.limits import LimitsUnavailable, RateLimited, SubjectQuotaExceeded
from app.citizens.schemas import (
    BatchVerifyRequest,
    BatchVerifyResponse,
    HouseholdRequest,
    HouseholdResponse,
    LookupRequest,
    VerifyRequest,
    VerifyResponse,
)
from app.citizens.service import CallContext, CitizenService
from app.db import DbSession
from app.errors import GatewayError, InsufficientScope, InvalidToken, NotFound
from app.lifespan import AppState, AppStateDep
from app.problems import preferred_language, problem_responses, request_id_of
from app.routing import GatewayRoute

router = APIRouter(prefix="/v1/citizens", tags=["citizens"], route_class=GatewayRoute)

PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", max_length=64, description="registered purpose of use code")
]
DossierHeader = Annotated[
    str | None,
    Header(alias="X-Dossier-Id", max_length=64, description="administrative dossier or case number"),
]

COMMON_ERRORS = (
    InvalidToken,
    InsufficientScope,
    PurposeRequired,
    PurposeNotAllowed,
    InvalidPersonalId,
    RateLimited,
    SubjectQuotaExceeded,
    LimitsUnavailable,
    AuditUnavailable,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamUnavailable,
    UpstreamTimeout,
)


async def get_citizen_service(state: AppStateDep) -> CitizenService:
    service: CitizenService = state.citizens
    return service


CitizenServiceDep = Annotated[CitizenService, Depends(get_citizen_service)]


async def _registered(session: AsyncSession, purpose: str) -> bool:
    found = await session.scalar(select(Purpose.code).where(Purpose.code == purpose))
    await session.rollback()  # release the connection before the audit writer needs one (see auth deps)
    return found is not None


async def _context(
    request: Request,
    state: AppState,
    session: DbSession,
    auth: AuthContext,
    action: str,
    purpose: str | None,
    dossier_id: str | None,
) -> CallContext:
    """The call's context once its purpose is known to be registered and granted; refusals are audited."""
    error: GatewayError | None = None
    if not purpose:
        error = PurposeRequired()
    elif purpose not in auth.grant.purposes or not await _registered(session, purpose):
        error = PurposeNotAllowed()
    if error is not None:
        await state.audit.write(
            [
                AuditEvent(
                    action=action,
                    outcome="denied",
                    status_code=error.status,
                    actor=auth.client_id,
                    client_id=auth.client_id,
                    request_id=request_id_of(request),
                    purpose=purpose if purpose and len(purpose) <= 64 else None,
                    dossier_id=dossier_id,
                    reason=error.code,
                )
            ]
        )
        raise error
    issuer = state.settings.issuer or str(request.base_url).rstrip("/")
    return CallContext(
        auth=auth,
        purpose=purpose,  # type: ignore[arg-type]  # checked above
        dossier_id=dossier_id,
        request_id=request_id_of(request),
        issuer=issuer,
        language=preferred_language(request.headers.get("accept-language")),
    )


def _call(
    action: str, require: Callable[..., Awaitable[AuthContext]]
) -> Callable[..., Awaitable[CallContext]]:
    """A dependency giving the route its CallContext: the scope check, then the audited purpose check."""

    async def call_context(
        request: Request,
        state: AppStateDep,
        session: DbSession,
        # A default, not Annotated: the annotation is a string that cannot see this closure's `require`.
        auth: AuthContext = Depends(require),  # noqa: B008
        purpose: PurposeHeader = None,
        dossier_id: DossierHeader = None,
    ) -> CallContext:
        return await _context(request, state, session, auth, action, purpose, dossier_id)

    call_context.__name__ = "call_" + action.replace(".", "_")
    return call_context


VerifyCall = Annotated[CallContext, Depends(_call("citizen.verify", require_verify))]
ReadCall = Annotated[CallContext, Depends(_call("citizen.read", require_read))]
HouseholdCall = Annotated[CallContext, Depends(_call("household.read", require_household))]


@router.post(
    "/verify",
    response_model=VerifyResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(*COMMON_ERRORS),
)
async def verify(body: VerifyRequest, ctx: VerifyCall, service: CitizenServiceDep) -> dict[str, Any]:
    """Is this the person on record? Yes/no, per-field detail where granted, and a signed attestation."""
    return await service.verify(ctx, body)


@router.post(
    "/verify/batch",
    response_model=BatchVerifyResponse,
    responses=problem_responses(BatchTooLarge, *COMMON_ERRORS),
)
async def verify_batch(
    body: BatchVerifyRequest, ctx: VerifyCall, service: CitizenServiceDep
) -> dict[str, Any]:
    """Verify up to DANCU_BATCH_MAX_ITEMS residents; one bad item does not fail the others."""
    return {"results": await service.verify_batch(ctx, body.items)}


@router.post("/lookup", responses=problem_responses(FieldNotAllowed, NotFound, *COMMON_ERRORS))
async def lookup(body: LookupRequest, ctx: ReadCall, service: CitizenServiceDep) -> dict[str, Any]:
    """What is on record, limited to the grant's fields and provinces (out of province = unknown)."""
    return await service.lookup(ctx, body)


@router.post(
    "/household", response_model=HouseholdResponse, responses=problem_responses(NotFound, *COMMON_ERRORS)
)
async def household(body: HouseholdRequest, ctx: HouseholdCall, service: CitizenServiceDep) -> dict[str, Any]:
    """The resident's household: head and members (personal ID, name, relation only)."""
    return await service.household(ctx, body)
