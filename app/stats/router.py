"""HTTP for population statistics (``POST /v1/statistics/population``, scope ``stats.read``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Security

from app.addresses import request_client_ip
from app.audit.errors import AuditUnavailable
from app.auth.context import AuthContext
from app.auth.dependencies import ACCESS, _bearer_token, oauth2_scheme, require_stats, verified_token
from app.backends.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.citizens.errors import (
    EndUserRequired,
    LimitsUnavailable,
    PurposeNotAllowed,
    PurposeRequired,
    RateLimited,
)
from app.errors import InsufficientScope, InvalidToken, ValidationFailed
from app.inputs import EndUserHeader, end_user_valid
from app.problems import problem_responses, request_id_of
from app.routing import GatewayRoute, PreparedJSON
from app.state import AppStateDep
from app.stats.dependencies import StatsServiceDep
from app.stats.errors import ProvinceNotAllowed
from app.stats.schemas import PopulationRequest, PopulationResponse
from app.stats.service import StatsCaller

router = APIRouter(prefix="/v1/statistics", tags=["statistics"], route_class=GatewayRoute)

MAX_HEADER = 64
PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", max_length=MAX_HEADER, description="registered purpose of use code")
]


async def require_stats_read(
    request: Request,
    state: AppStateDep,
    service: StatsServiceDep,
    authorization: Annotated[str | None, Security(oauth2_scheme, scopes=["stats.read"])],
    purpose: PurposeHeader = None,
) -> AuthContext:
    """``require_stats``, with a valid token that lacks the scope audited as a denied query (its client known)."""
    try:
        return await require_stats(request, authorization=authorization)
    except InsufficientScope as error:
        claims = await verified_token(request, _bearer_token(authorization))
        # Read as sent, not as a header parameter: a malformed one must not be judged before the token (the
        # route's own parameter answers it with 422 once the client is known); only a valid one is recorded.
        end_user = request.headers.get("x-end-user")
        caller = StatsCaller(
            actor=claims.client_id,
            client_id=claims.client_id,
            purpose=purpose or None,
            request_id=request_id_of(request),
            provinces=frozenset(),
            end_user=end_user if end_user is not None and end_user_valid(end_user) else None,
            client_ip=request_client_ip(request, state.settings.trusted_proxies),
        )
        await service.refuse(caller, error, await _query_of(request))
        raise


async def stats_caller(
    request: Request,
    state: AppStateDep,
    service: StatsServiceDep,
    auth: Annotated[AuthContext, Depends(require_stats_read)],
    purpose: PurposeHeader = None,
    end_user: EndUserHeader = None,
) -> StatsCaller:
    """The caller once its purpose is known to be registered and granted and its end user given when the
    grant requires one; a refusal is audited."""
    caller = StatsCaller(
        actor=auth.client_id,
        client_id=auth.client_id,
        purpose=purpose or None,
        request_id=request_id_of(request),
        provinces=auth.grant.provinces,
        rate_limit_per_minute=auth.grant.rate_limit_per_minute,
        end_user=end_user,
        client_ip=request_client_ip(request, state.settings.trusted_proxies),
    )
    registered = await state[ACCESS].purposes()
    if (
        not purpose or purpose not in auth.grant.purposes or purpose not in registered
    ):  # the body read only then
        await service.check_purpose(caller, auth.grant.purposes, registered, await _query_of(request))
    if auth.grant.lacks_end_user(end_user):
        error = EndUserRequired()
        await service.refuse(caller, error, await _query_of(request))
        raise error
    return caller


async def _query_of(request: Request) -> dict[str, Any] | None:
    """The body as sent, for the refusal's event (its known members only; unreadable: none)."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@router.post(
    "/population",
    response_model=PopulationResponse,
    responses=problem_responses(
        InvalidToken,
        InsufficientScope,
        PurposeRequired,
        PurposeNotAllowed,
        EndUserRequired,
        ProvinceNotAllowed,
        ValidationFailed,
        RateLimited,
        LimitsUnavailable,
        AuditUnavailable,
        UpstreamBadResponse,
        UpstreamUnavailable,
        UpstreamTimeout,
    ),
)
async def population(
    body: PopulationRequest,
    caller: Annotated[StatsCaller, Depends(stats_caller)],
    service: StatsServiceDep,
) -> PreparedJSON:
    """Counts of the province's residents by up to three dimensions, under the cell-key method: small cells
    suppressed, the others perturbed by at most `max_noise`, the same residents always the same count."""
    # Serialised once with orjson: a table of thousands of cells validated again by FastAPI would cost more
    # than computing it (tests/stats check the bodies against PopulationResponse).
    return PreparedJSON(await service.population(caller, body))
