"""HTTP for administration (``/v1/admin/...``, scope ``admin``): parse, delegate to ``AdminService``, answer.

``app.api`` includes this router with ``require_admin``; every route also names ``Administration``, which
acts for the same (cached) admin context. A change that waits for four-eyes approval answers
202 with the pending change instead of the new state.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from app.admin.dependencies import Administration
from app.admin.errors import ChangeNotFound, ChangeNotPending, SelfApprovalForbidden
from app.admin.schemas import (
    ChangeOut,
    ChangePage,
    ChangeStatus,
    ClientPage,
    PurposePage,
    SigningKeyOut,
    SigningKeyPage,
)
from app.auth.errors import (
    ClientNotFound,
    Conflict,
    NoKeysRegistered,
    PurposeExists,
    PurposeInUse,
    PurposeNotFound,
)
from app.auth.schemas import (
    ClientCreate,
    ClientCreated,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
    GrantIn,
    GrantOut,
    JWKSetIn,
    PurposeIn,
    PurposeOut,
    SecretRotationIn,
)
from app.errors import InsufficientScope, InvalidToken, ValidationFailed
from app.problems import problem_responses
from app.routing import GatewayRoute

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=GatewayRoute)

ClientId = Annotated[str, Path(min_length=1, max_length=64, description="The client's `client_id`.")]
PurposeCode = Annotated[str, Path(min_length=1, max_length=64, description="The purpose's `code`.")]
ChangeId = Annotated[str, Path(min_length=1, max_length=36, description="The pending change's `change_id`.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size (at most 1000).")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page; omit for the first.")
]

_AUTH: Final = (InvalidToken, InsufficientScope)
_PENDING: Final[dict[int | str, dict[str, Any]]] = {
    202: {
        "model": ChangeOut,
        "description": "Recorded as a pending change: it widens access and DANCU_ADMIN__REQUIRE_APPROVAL is on.",
    }
}


def _pending(change: ChangeOut) -> JSONResponse:
    return JSONResponse(change.model_dump(mode="json"), status_code=202)


# clients


@router.post(
    "/clients",
    status_code=201,
    response_model=ClientCreated,
    responses=problem_responses(*_AUTH, ValidationFailed),
)
async def create_client(body: ClientCreate, admin: Administration, response: Response) -> ClientCreated:
    """Register a client; its grant allows nothing yet. The secret is in this answer and nowhere else."""
    created = await admin.create_client(body)
    response.headers["Location"] = f"{router.prefix}/clients/{created.client.client_id}"
    return created.created()


_ON_CLIENT = problem_responses(*_AUTH, ClientNotFound, ValidationFailed)
"""What every route about one client may answer besides its result."""


@router.get("/clients", response_model=ClientPage, responses=problem_responses(*_AUTH, ValidationFailed))
async def list_clients(admin: Administration, limit: Limit = 50, cursor: Cursor = None) -> ClientPage:
    """Clients in `client_id` order."""
    return await admin.list_clients(cursor=cursor, limit=limit)


@router.get(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses=_ON_CLIENT,
)
async def get_client(client_id: ClientId, admin: Administration) -> ClientOut:
    return await admin.get_client(client_id)


@router.patch(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses={**_PENDING, **_ON_CLIENT},
)
async def update_client(client_id: ClientId, body: ClientUpdate, admin: Administration) -> Any:
    """Edit, suspend or reinstate. Suspension applies to the client's next request, in every process."""
    result = await admin.update_client(client_id, body)
    return _pending(result) if isinstance(result, ChangeOut) else result


@router.post(
    "/clients/{client_id}/secret",
    response_model=ClientSecretOut,
    responses={**_PENDING, **_ON_CLIENT},
)
async def rotate_secret(
    client_id: ClientId, admin: Administration, body: SecretRotationIn | None = None
) -> Any:
    """A new secret, shown in this answer only. The old one stops working at once, or with `grace_seconds`
    (at most 86400) at the end of that window, so the portal can be redeployed without an outage. A new
    secret turns secret authentication on again. Another client's secret waits for a second administrator
    when approval is required (credentials are access)."""
    result = await admin.rotate_secret(client_id, body.grace_seconds if body else 0)
    return _pending(result) if isinstance(result, ChangeOut) else result


@router.delete(
    "/clients/{client_id}/secret",
    response_model=ClientOut,
    responses=problem_responses(*_AUTH, ClientNotFound, NoKeysRegistered, ValidationFailed),
)
async def disable_secret(client_id: ClientId, admin: Administration) -> ClientOut:
    """Turn secret authentication off for a client that authenticates with `private_key_jwt`: its secret
    (and a previous one in its grace period) is refused from now on. 409 when it has no registered keys.
    A new secret (`POST .../secret`) turns it on again."""
    return await admin.disable_secret(client_id)


@router.put(
    "/clients/{client_id}/jwks",
    response_model=ClientOut,
    responses={**_PENDING, **_ON_CLIENT},
)
async def set_jwks(client_id: ClientId, body: JWKSetIn, admin: Administration) -> Any:
    """Register the client's public keys for `private_key_jwt` (a private or symmetric key is 422). Another
    client's keys wait for a second administrator when approval is required."""
    result = await admin.set_jwks(client_id, body)
    return _pending(result) if isinstance(result, ChangeOut) else result


# grants


@router.get(
    "/clients/{client_id}/grant",
    response_model=GrantOut,
    responses=_ON_CLIENT,
)
async def get_grant(client_id: ClientId, admin: Administration) -> GrantOut:
    return await admin.get_grant(client_id)


@router.put(
    "/clients/{client_id}/grant",
    response_model=GrantOut,
    responses={**_PENDING, **_ON_CLIENT},
)
async def replace_grant(client_id: ClientId, body: GrantIn, admin: Administration) -> Any:
    """Replace the whole grant (unknown scope, field, province or purpose, or mixed duties: 422)."""
    result = await admin.replace_grant(client_id, body)
    return _pending(result) if isinstance(result, ChangeOut) else result


# purposes


@router.post(
    "/purposes",
    status_code=201,
    response_model=PurposeOut,
    responses=problem_responses(*_AUTH, PurposeExists, ValidationFailed),
)
async def add_purpose(body: PurposeIn, admin: Administration) -> PurposeOut:
    """Register a purpose of use with its legal basis (a code registered twice is 409)."""
    return await admin.add_purpose(body)


@router.get("/purposes", response_model=PurposePage, responses=problem_responses(*_AUTH, ValidationFailed))
async def list_purposes(admin: Administration, limit: Limit = 50, cursor: Cursor = None) -> PurposePage:
    """Purposes in `code` order."""
    return await admin.list_purposes(cursor=cursor, limit=limit)


@router.delete(
    "/purposes/{code}",
    response_model=PurposeOut,
    responses=problem_responses(*_AUTH, PurposeNotFound, PurposeInUse, ValidationFailed),
)
async def retire_purpose(code: PurposeCode, admin: Administration) -> PurposeOut:
    """Retire a purpose: kept (with `retired_at`) for the events and reports that name it, refused from now on in
    grants (`unknown_purpose`) and calls (`purpose_not_allowed`). 409 while a grant still names it; retiring it
    again answers it unchanged."""
    return await admin.retire_purpose(code)


# signing keys


@router.post("/keys/rotate", response_model=SigningKeyOut, responses=problem_responses(*_AUTH))
async def rotate_signing_key(admin: Administration) -> SigningKeyOut:
    """A new token and attestation signing key; earlier keys stay published in the JWKS."""
    return await admin.rotate_signing_key()


@router.get("/keys", response_model=SigningKeyPage, responses=problem_responses(*_AUTH, ValidationFailed))
async def list_signing_keys(
    admin: Administration, limit: Limit = 50, cursor: Cursor = None
) -> SigningKeyPage:
    """Signing keys, oldest first, with which one signs now."""
    return await admin.list_signing_keys(cursor=cursor, limit=limit)


# four-eyes approval


@router.get("/changes", response_model=ChangePage, responses=problem_responses(*_AUTH, ValidationFailed))
async def list_changes(
    admin: Administration,
    status: Annotated[ChangeStatus | None, Query(description="Only changes in this state.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ChangePage:
    """Changes recorded for approval, oldest first."""
    return await admin.list_changes(status=status, cursor=cursor, limit=limit)


@router.get(
    "/changes/{change_id}",
    response_model=ChangeOut,
    responses=problem_responses(*_AUTH, ChangeNotFound, ValidationFailed),
)
async def get_change(change_id: ChangeId, admin: Administration) -> ChangeOut:
    return await admin.get_change(change_id)


@router.post(
    "/changes/{change_id}/approve",
    response_model=GrantOut | ClientOut | ClientSecretOut,
    responses=problem_responses(
        *_AUTH, SelfApprovalForbidden, ChangeNotFound, ClientNotFound, Conflict, ValidationFailed
    ),
)
async def approve_change(
    change_id: ChangeId, admin: Administration
) -> GrantOut | ClientOut | ClientSecretOut:
    """Apply a pending change (not by the administrator who requested it); answers the new grant or client,
    or for a secret rotation the new secret (shown in this answer only)."""
    return await admin.approve(change_id)


@router.post(
    "/changes/{change_id}/reject",
    response_model=ChangeOut,
    responses=problem_responses(*_AUTH, ChangeNotFound, ChangeNotPending, ValidationFailed),
)
async def reject_change(change_id: ChangeId, admin: Administration) -> ChangeOut:
    """Refuse a pending change; the one who requested it may withdraw it this way."""
    return await admin.reject(change_id)
