"""The forms context's dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.addresses import request_client_ip
from app.audit.dependencies import AUDIT
from app.audit.writer import AdminLog
from app.auth.context import AuthContext
from app.auth.dependencies import ACCESS, KEYS, AdminClient, issuer_for, require_confirm, require_read
from app.citizens.dependencies import BACKEND, LIMITER, DossierHeader
from app.db import DbSession
from app.forms.access import FormAccess, FormCall
from app.forms.confirmations import Confirmations
from app.forms.service import FormAdmin
from app.inputs import EndUserHeader
from app.problems import request_id_of
from app.state import AppStateDep

MAX_HEADER = 64
"""The longest X-Purpose accepted (422 beyond), as on the other citizen routes (X-Dossier-Id: as there too)."""
PurposeHeader = Annotated[
    str | None, Header(alias="X-Purpose", max_length=MAX_HEADER, description="the form's purpose of use")
]


async def form_admin(request: Request, session: DbSession, admin: AdminClient) -> FormAdmin:
    """Template changes in the request's unit of work, on behalf of the admin client (the audit ``actor``)."""
    return FormAdmin(session, AdminLog(session, actor=admin.client_id, request_id=request_id_of(request)))


FormAdministration = Annotated[FormAdmin, Depends(form_admin)]


async def form_access(state: AppStateDep) -> FormAccess:
    """Prefill; reads and changes commit in short transactions of their own, so that each is committed before
    the audit events that record it are written (the audit writer commits in its own transaction)."""
    return FormAccess(state.sessionmaker, state[BACKEND], state[LIMITER], state[AUDIT])


async def _call(
    request: Request,
    state: AppStateDep,
    auth: AuthContext,
    purpose: str | None,
    dossier_id: str | None,
    end_user: str | None,
) -> FormCall:
    return FormCall(
        auth=auth,
        purpose=purpose,
        purpose_registered=bool(purpose) and purpose in await state[ACCESS].purposes(),
        dossier_id=dossier_id,
        request_id=request_id_of(request),
        issuer=issuer_for(request, state.settings),
        end_user=end_user,
        client_ip=request_client_ip(request, state.settings.trusted_proxies),
    )


async def read_call(
    request: Request,
    state: AppStateDep,
    auth: Annotated[AuthContext, Depends(require_read)],
    purpose: PurposeHeader = None,
    dossier_id: DossierHeader = None,
    end_user: EndUserHeader = None,
) -> FormCall:
    """A prefill's caller (scope ``citizen.read``); its purpose is judged against the form's."""
    return await _call(request, state, auth, purpose, dossier_id, end_user)


FormAccessDep = Annotated[FormAccess, Depends(form_access)]
ReadFormCall = Annotated[FormCall, Depends(read_call)]


async def confirmations(state: AppStateDep) -> Confirmations:
    return Confirmations(state.sessionmaker, state[BACKEND], state[LIMITER], state[AUDIT], state[KEYS])


async def confirm_call(
    request: Request,
    state: AppStateDep,
    auth: Annotated[AuthContext, Depends(require_confirm)],
    purpose: PurposeHeader = None,
    dossier_id: DossierHeader = None,
    end_user: EndUserHeader = None,
) -> FormCall:
    """A confirmation's caller (scope ``citizen.confirm``); ``X-End-User`` goes into its events (and, at the
    start, into the receipt)."""
    return await _call(request, state, auth, purpose, dossier_id, end_user)


ConfirmationsDep = Annotated[Confirmations, Depends(confirmations)]
ConfirmCall = Annotated[FormCall, Depends(confirm_call)]
