"""The admin context's dependency: an ``AdminService`` acting for the calling admin client."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.admin.service import AdminService
from app.auth.dependencies import KEYS, AdminClient
from app.db import DbSession
from app.problems import request_id_of
from app.state import AppStateDep


async def admin_service(
    request: Request, session: DbSession, state: AppStateDep, admin: AdminClient
) -> AdminService:
    """Changes are made in the request's unit of work, on behalf of the admin client (the audit ``actor``)."""
    return AdminService(
        session,
        state[KEYS],
        actor=admin.client_id,
        request_id=request_id_of(request),
        require_approval=state.settings.admin.require_approval,
    )


Administration = Annotated[AdminService, Depends(admin_service)]
