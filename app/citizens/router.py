"""HTTP for the citizen endpoints (``/v1/citizens/...``): parse, build the call context, delegate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel

from app.audit.errors import AuditUnavailable
from app.auth.context import AuthContext
from app.auth.dependencies import ACCESS, issuer_for, require_household, require_read, require_verify
from app.backends.errors import (
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.citizens.dependencies import CITIZENS, CitizenServiceDep
from app.citizens.errors import (
    BatchTooLarge,
    FieldNotAllowed,
    LimitsUnavailable,
    PurposeNotAllowed,
    PurposeRequired,
    RateLimited,
    SubjectQuotaExceeded,
)
from app.citizens.schemas import (
    BatchVerifyRequest,
    BatchVerifyResponse,
    HouseholdRequest,
    HouseholdResponse,
    LookupRequest,
    VerifyRequest,
    VerifyResponse,
)
from app.citizens.service import CallContext, CitizenService, RouteKind
from app.errors import GatewayError, InsufficientScope, InvalidPersonalId, InvalidToken, NotFound
from app.problems import preferred_language, problem_responses, request_id_of
from app.routing import FastPath, GatewayRoute, PreparedJSON, fast_path
from app.state import AppState, AppStateDep

router = APIRouter(prefix="/v1/citizens", tags=["citizens"], route_class=GatewayRoute)

MAX_HEADER = 64
"""The longest X-Purpose and X-Dossier-Id accepted (422 beyond)."""
PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", max_length=MAX_HEADER, description="registered purpose of use code")
]
DossierHeader = Annotated[
    str | None,
    Header(alias="X-Dossier-Id", max_length=MAX_HEADER, description="administrative dossier or case number"),
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


async def _granted(state: AppState, auth: AuthContext, purpose: str) -> bool:
    """Whether the client's grant names ``purpose`` and it is registered (as the access cache holds the
    purposes: dropped when they change)."""
    return purpose in auth.grant.purposes and purpose in await state[ACCESS].purposes()


def _call_context(
    request: Request,
    state: AppState,
    auth: AuthContext,
    purpose: str,
    dossier_id: str | None,
    accept_language: str | None,
) -> CallContext:
    """The context of a call whose purpose was checked: the declared route's and the fast path's."""
    return CallContext(
        auth=auth,
        purpose=purpose,
        dossier_id=dossier_id,
        request_id=request_id_of(request),
        issuer=issuer_for(request, state.settings),
        language=preferred_language(accept_language),
    )


async def _context(
    request: Request,
    state: AppState,
    auth: AuthContext,
    kind: RouteKind,
    action: str,
    purpose: str | None,
    dossier_id: str | None,
) -> CallContext:
    """The call's context once its purpose is known to be registered and granted and, for a batch, its item
    count within the limit; refusals are audited, naming the residents the body names (the body is decoded
    before the dependencies run)."""
    error: GatewayError | None = None
    if not purpose:
        error = PurposeRequired()
    elif not await _granted(state, auth, purpose):
        error = PurposeNotAllowed()
    elif kind == "batch" and _oversized(await request.json(), state.settings.batch_max_items):
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
        )
        raise error
    language = request.headers.get("accept-language")
    return _call_context(request, state, auth, purpose, dossier_id, language)  # type: ignore[arg-type]  # checked


def _call(
    kind: RouteKind, action: str, require: Callable[..., Awaitable[AuthContext]]
) -> Callable[..., Awaitable[CallContext]]:
    """A dependency giving the route its CallContext: the scope check, then the audited purpose check."""

    async def call_context(
        request: Request,
        state: AppStateDep,
        # A default, not Annotated: the annotation is a string that cannot see this closure's `require`.
        auth: AuthContext = Depends(require),  # noqa: B008
        purpose: PurposeHeader = None,
        dossier_id: DossierHeader = None,
    ) -> CallContext:
        return await _context(request, state, auth, kind, action, purpose, dossier_id)

    call_context.__name__ = f"call_{kind}"
    return call_context


VerifyCall = Annotated[CallContext, Depends(_call("verify", "citizen.verify", require_verify))]
BatchCall = Annotated[CallContext, Depends(_call("batch", "citizen.verify", require_verify))]
ReadCall = Annotated[CallContext, Depends(_call("lookup", "citizen.read", require_read))]
HouseholdCall = Annotated[CallContext, Depends(_call("household", "household.read", require_household))]


# --- the fast path: the ordinary call, checked directly (app.routing.fast_path) --------------------------

_Call = Callable[[CitizenService, CallContext, Any], Awaitable[dict[str, Any]]]


_FAST_HEADERS = frozenset(
    {b"authorization", b"x-purpose", b"x-dossier-id", b"content-type", b"accept-language"}
)


def _oversized(body: Any, limit: int) -> bool:
    """Whether a (decoded, not yet validated) batch body holds more than ``limit`` items."""
    items = body.get("items") if isinstance(body, dict) else None
    return isinstance(items, list) and len(items) > limit


def _json_content(content_type: str | None) -> bool:
    return content_type is not None and content_type.partition(";")[0].strip().lower() == "application/json"


def _fast(
    action: str, require: Callable[..., Awaitable[AuthContext]], model: type[BaseModel], call: _Call
) -> FastPath:
    """The route's ordinary call without FastAPI's dependency solving: a verified token of an active client
    whose grant holds the scope and the purpose, a registered purpose, headers within their limits, and a
    JSON body its model accepts. Anything else returns None before any side effect (no audit event, no
    limit counted): the declared route then answers it, problems and audited refusals included."""

    async def fast(request: Request) -> Response | None:
        # One pass over the raw headers rather than five scans of Starlette's ``Headers`` (the first
        # occurrence of a name counts, as ``Headers.get`` has it).
        found: dict[bytes, str] = {}
        for name, value in request.scope["headers"]:
            if name in _FAST_HEADERS and name not in found:
                found[name] = value.decode("latin-1")
        purpose = found.get(b"x-purpose")
        dossier_id = found.get(b"x-dossier-id")
        authorization = found.get(b"authorization")
        language = found.get(b"accept-language")
        if (
            not purpose
            or len(purpose) > MAX_HEADER
            or (dossier_id is not None and len(dossier_id) > MAX_HEADER)
            or authorization is None
            or not _json_content(found.get(b"content-type"))
        ):
            return None
        state: AppState = request.app.state.dancu
        try:
            auth = await require(request, authorization=authorization)
            if not await _granted(state, auth, purpose):
                return None
            # orjson accepts only strict JSON, which json.loads (the declared route's) reads identically.
            decoded = orjson.loads(await request.body())
            if model is BatchVerifyRequest and _oversized(decoded, state.settings.batch_max_items):
                return None  # 413 from the declared route, before any item is validated
            body = model.model_validate(decoded)
        except Exception:
            return None
        ctx = _call_context(request, state, auth, purpose, dossier_id, language)
        return PreparedJSON(await call(state[CITIZENS], ctx, body))

    fast.__name__ = "fast_" + action.replace(".", "_")
    return fast


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
@fast_path(_fast("citizen.verify", require_verify, VerifyRequest, _verify))
async def verify(body: VerifyRequest, ctx: VerifyCall, service: CitizenServiceDep) -> PreparedJSON:
    """Is this the person on record? Yes/no, per-field detail where granted, and a signed attestation."""
    return PreparedJSON(await _verify(service, ctx, body))


@router.post(
    "/verify/batch",
    response_model=BatchVerifyResponse,
    responses=problem_responses(BatchTooLarge, *COMMON_ERRORS),
)
@fast_path(_fast("citizen.verify", require_verify, BatchVerifyRequest, _verify_batch))
async def verify_batch(body: BatchVerifyRequest, ctx: BatchCall, service: CitizenServiceDep) -> PreparedJSON:
    """Verify up to DANCU_BATCH_MAX_ITEMS residents; one bad item does not fail the others."""
    return PreparedJSON(await _verify_batch(service, ctx, body))


@router.post(
    "/lookup",
    response_model=dict[str, Any],  # the OpenAPI schema; the route returns the body already serialised
    responses=problem_responses(FieldNotAllowed, NotFound, *COMMON_ERRORS),
)
@fast_path(_fast("citizen.read", require_read, LookupRequest, _lookup))
async def lookup(body: LookupRequest, ctx: ReadCall, service: CitizenServiceDep) -> PreparedJSON:
    """What is on record, limited to the grant's fields and provinces (out of province = unknown)."""
    return PreparedJSON(await _lookup(service, ctx, body))


@router.post(
    "/household", response_model=HouseholdResponse, responses=problem_responses(NotFound, *COMMON_ERRORS)
)
@fast_path(_fast("household.read", require_household, HouseholdRequest, _household))
async def household(body: HouseholdRequest, ctx: HouseholdCall, service: CitizenServiceDep) -> PreparedJSON:
    """The resident's household: head and members (personal ID, name, relation only)."""
    return PreparedJSON(await _household(service, ctx, body))
