"""HTTP for the citizen endpoints (``/v1/citizens/...``): parse, build the call context, delegate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from app.addresses import request_client_ip
from app.audit.errors import AuditUnavailable
from app.auth.context import AuthContext
from app.auth.dependencies import require_household, require_read, require_verify
from app.backends.errors import (
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.citizens.dependencies import (
    CITIZENS,
    MAX_HEADER,
    CitizenServiceDep,
    DossierHeader,
    batch_oversized,
    call_context,
    purpose_granted,
)
from app.citizens.errors import (
    BatchTooLarge,
    EndUserRequired,
    FieldNotAllowed,
    LimitsUnavailable,
    PurposeNotAllowed,
    PurposeRequired,
    RateLimited,
    SubjectQuotaExceeded,
)
from app.citizens.fast import fast_path, ordinary_call
from app.citizens.schemas import (
    BatchVerifyRequest,
    BatchVerifyResponse,
    HouseholdRequest,
    HouseholdResponse,
    LookupRequest,
    LookupResponse,
    VerifyRequest,
    VerifyResponse,
)
from app.citizens.service import CallContext, CitizenService, RouteKind
from app.errors import GatewayError, InsufficientScope, InvalidPersonalId, InvalidToken, NotFound
from app.inputs import EndUserHeader
from app.problems import problem_responses, request_id_of
from app.routing import GatewayRoute, PreparedJSON
from app.state import AppState, AppStateDep

router = APIRouter(prefix="/v1/citizens", tags=["citizens"], route_class=GatewayRoute)

PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", max_length=MAX_HEADER, description="registered purpose of use code")
]

COMMON_ERRORS = (
    InvalidToken,
    InsufficientScope,
    PurposeRequired,
    PurposeNotAllowed,
    EndUserRequired,
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


async def _context(
    request: Request,
    state: AppState,
    auth: AuthContext,
    kind: RouteKind,
    action: str,
    purpose: str | None,
    dossier_id: str | None,
    end_user: str | None,
) -> CallContext:
    """The call's context once its purpose is known to be registered and granted, its end user given when
    the grant requires one and, for a batch, its item count within the limit; refusals are audited, naming
    the residents the body names (the body is decoded before the dependencies run)."""
    error: GatewayError | None = None
    if not purpose:
        error = PurposeRequired()
    elif not await purpose_granted(state, auth, purpose):
        error = PurposeNotAllowed()
    elif auth.grant.lacks_end_user(end_user):
        error = EndUserRequired()
    elif kind == "batch" and batch_oversized(await request.json(), state.settings.batch_max_items):
        # Counted before the items are validated: a huge batch of anything costs no validation and no
        # error list (docs/contract.md, Batch verification).
        error = BatchTooLarge(state.settings.batch_max_items)
    if error is not None:
        await state[CITIZENS].refuse(
            kind,
            action,
            error,
            auth=auth,
            purpose=purpose if purpose and len(purpose) <= MAX_HEADER else None,
            dossier_id=dossier_id,
            request_id=request_id_of(request),
            body=await request.json(),
            end_user=end_user,
            client_ip=request_client_ip(request, state.settings.trusted_proxies),
        )
        raise error
    language = request.headers.get("accept-language")
    return call_context(request, state, auth, purpose, dossier_id, language, end_user)  # type: ignore[arg-type]


def _call(
    kind: RouteKind, action: str, require: Callable[..., Awaitable[AuthContext]]
) -> Callable[..., Awaitable[CallContext]]:
    """A dependency giving the route its CallContext: the scope check, then the audited purpose check."""

    async def checked_call(
        request: Request,
        state: AppStateDep,
        # A default, not Annotated: the annotation is a string that cannot see this closure's `require`.
        auth: AuthContext = Depends(require),  # noqa: B008
        purpose: PurposeHeader = None,
        dossier_id: DossierHeader = None,
        end_user: EndUserHeader = None,
    ) -> CallContext:
        return await _context(request, state, auth, kind, action, purpose, dossier_id, end_user)

    checked_call.__name__ = f"call_{kind}"
    return checked_call


VerifyCall = Annotated[CallContext, Depends(_call("verify", "citizen.verify", require_verify))]
BatchCall = Annotated[CallContext, Depends(_call("batch", "citizen.verify", require_verify))]
ReadCall = Annotated[CallContext, Depends(_call("lookup", "citizen.read", require_read))]
HouseholdCall = Annotated[CallContext, Depends(_call("household", "household.read", require_household))]


# --- the use cases, the same on the fast path (app.citizens.fast) and the declared route --------------


async def _verify(service: CitizenService, ctx: CallContext, body: VerifyRequest) -> dict[str, Any]:
    return await service.verify(ctx, body)


async def _verify_batch(
    service: CitizenService, ctx: CallContext, body: BatchVerifyRequest
) -> dict[str, Any]:
    return {"results": await service.verify_batch(ctx, body.items)}


async def _lookup(service: CitizenService, ctx: CallContext, body: LookupRequest) -> dict[str, Any]:
    return await service.lookup(ctx, body)


async def _household(service: CitizenService, ctx: CallContext, body: HouseholdRequest) -> dict[str, Any]:
    return await service.household(ctx, body)


# --- the routes --------------------------------------------------------------------------------------------


@router.post(
    "/verify",
    response_model=VerifyResponse,
    response_model_exclude_unset=True,
    responses=problem_responses(*COMMON_ERRORS),
)
@fast_path(ordinary_call("citizen.verify", require_verify, VerifyRequest, _verify))
async def verify(body: VerifyRequest, ctx: VerifyCall, service: CitizenServiceDep) -> PreparedJSON:
    """Is this the person on record? Yes/no, per-field detail where granted, and a signed attestation."""
    return PreparedJSON(await _verify(service, ctx, body))


@router.post(
    "/verify/batch",
    response_model=BatchVerifyResponse,
    responses=problem_responses(BatchTooLarge, *COMMON_ERRORS),
)
@fast_path(ordinary_call("citizen.verify", require_verify, BatchVerifyRequest, _verify_batch))
async def verify_batch(body: BatchVerifyRequest, ctx: BatchCall, service: CitizenServiceDep) -> PreparedJSON:
    """Verify up to DANCU_BATCH_MAX_ITEMS residents; one bad item does not fail the others."""
    return PreparedJSON(await _verify_batch(service, ctx, body))


@router.post(
    "/lookup",
    response_model=LookupResponse,  # the OpenAPI schema; the route returns the body already serialised
    response_model_by_alias=True,
    responses=problem_responses(FieldNotAllowed, NotFound, *COMMON_ERRORS),
)
@fast_path(ordinary_call("citizen.read", require_read, LookupRequest, _lookup))
async def lookup(body: LookupRequest, ctx: ReadCall, service: CitizenServiceDep) -> PreparedJSON:
    """What is on record, limited to the grant's fields and provinces (out of province = unknown)."""
    return PreparedJSON(await _lookup(service, ctx, body))


@router.post(
    "/household", response_model=HouseholdResponse, responses=problem_responses(NotFound, *COMMON_ERRORS)
)
@fast_path(ordinary_call("household.read", require_household, HouseholdRequest, _household))
async def household(body: HouseholdRequest, ctx: HouseholdCall, service: CitizenServiceDep) -> PreparedJSON:
    """The resident's household: head and members (personal ID, name, relation only)."""
    return PreparedJSON(await _household(service, ctx, body))
