"""The forms context's dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.audit.writer import AdminLog
from app.auth.dependencies import AdminClient
from app.db import DbSession
from app.forms.service import FormAdmin
from app.problems import request_id_of


async def form_admin(request: Request, session: DbSession, admin: AdminClient) -> FormAdmin:
    """Template changes in the request's unit of work, on behalf of the admin client (the audit ``actor``)."""
    return FormAdmin(session, AdminLog(session, actor=admin.client_id, request_id=request_id_of(request)))


FormAdministration = Annotated[FormAdmin, Depends(form_admin)]
