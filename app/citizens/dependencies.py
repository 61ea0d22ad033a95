"""The citizen context's dependencies: where the app keeps the citizen service and what it is built on, and
the context of a call whose purpose was checked (the declared routes' and the fast path's)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Header, Request
from pydantic import BeforeValidator

from app.addresses import request_client_ip
from app.auth.context import AuthContext
from app.auth.dependencies import ACCESS, issuer_for
from app.backends.base import Backend
from app.citizens.limits import Limiter
from app.citizens.service import CallContext, CitizenService
from app.inputs import utf8_header
from app.problems import preferred_language, request_id_of
from app.state import AppState, AppStateDep, StateKey

CITIZENS: Final = StateKey[CitizenService]("citizens")
BACKEND: Final = StateKey[Backend]("backend")
"""The population register: the embedded mock (default) or the national database over HTTP."""
LIMITER: Final = StateKey[Limiter]("limiter")
"""Request rate and distinct-resident quotas: Redis when configured, else this process's memory."""

MAX_HEADER = 64
"""The longest X-Purpose and X-Dossier-Id accepted (422 beyond)."""
DossierHeader = Annotated[
    str | None,
    BeforeValidator(utf8_header),
    Header(
        alias="X-Dossier-Id",
        max_length=MAX_HEADER,
        description="administrative dossier or case number: UTF-8, at most 64 characters",
    ),
]
"""``X-Dossier-Id`` as its UTF-8 text (422 for other bytes or a control character), at most 64 characters."""


async def get_citizen_service(state: AppStateDep) -> CitizenService:
    return state[CITIZENS]


CitizenServiceDep = Annotated[CitizenService, Depends(get_citizen_service)]


def batch_oversized(body: Any, limit: int) -> bool:
    """Whether a (decoded, not yet validated) batch body holds more than ``limit`` items."""
    items = body.get("items") if isinstance(body, dict) else None
    return isinstance(items, list) and len(items) > limit


async def purpose_granted(state: AppState, auth: AuthContext, purpose: str) -> bool:
    """Whether the client's grant names ``purpose`` and it is registered (as the access cache holds the
    purposes: dropped when they change)."""
    return purpose in auth.grant.purposes and purpose in await state[ACCESS].purposes()


def call_context(
    request: Request,
    state: AppState,
    auth: AuthContext,
    purpose: str,
    dossier_id: str | None,
    accept_language: str | None,
    end_user: str | None,
) -> CallContext:
    """The context of a call whose purpose (and end user) was checked: the declared route's and the fast
    path's."""
    return CallContext(
        auth=auth,
        purpose=purpose,
        dossier_id=dossier_id,
        request_id=request_id_of(request),
        issuer=issuer_for(request, state.settings),
        language=preferred_language(accept_language),
        end_user=end_user,
        client_ip=request_client_ip(request, state.settings.trusted_proxies),
    )
