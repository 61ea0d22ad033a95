"""The console's clients and grant pages (``admin``), docs/contract.md, section 15.

Every change goes through ``AdminService`` as the operator (actor ``op:<username>``), with the REST API's
validation and audit: with ``DANCU_ADMIN__REQUIRE_APPROVAL=true`` a change that widens access becomes a
pending change that another operator with ``approver`` decides (``app.console.admin_extra``).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.admin.schemas import ChangeOut
from app.admin.service import AdminService
from app.auth.dependencies import KEYS
from app.auth.schemas import GrantIn
from app.console.router import Console, _form, require_operator
from app.errors import GatewayError, NotFound, ValidationFailed

router = APIRouter(prefix="/console", include_in_schema=False)

AdminPage = Annotated[Console, Depends(require_operator("admin"))]

_LIST_MEMBERS: Final = ("scopes", "fields", "provinces", "purposes")
_NUMBER_MEMBERS: Final = ("rate_limit_per_minute", "distinct_subjects_per_day")


def _admin(console: Console) -> AdminService:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return AdminService(
        console.db,
        console.state[KEYS],
        actor=console.me.actor,
        request_id=console.service.request_id,
        require_approval=console.state.settings.admin.require_approval,
    )


@router.get("/clients")
async def clients(console: AdminPage) -> Response:
    service = _admin(console)
    listed = await service.auth.list_clients(limit=500)
    grants = {c.client_id: (await service.get_grant(c.client_id)).scopes for c in listed}
    return console.page("clients.html", "clients.title", clients=listed, grants=grants)


async def _grant_page(
    console: Console,
    client_id: str,
    *,
    status: int = 200,
    errors: list[Any] | None = None,
    pending: str | None = None,
    saved: bool = False,
    shown: dict[str, Any] | None = None,
) -> Response:
    service = _admin(console)
    try:
        client = await service.get_client(client_id)
        grant = await service.get_grant(client_id)
    except NotFound:
        return console.page("forbidden.html", "forbidden.title", status=404, text="404")
    return console.page(
        "grant.html",
        "grant.title",
        status=status,
        client=client,
        grant=shown or grant.model_dump(),
        errors=errors,
        pending=pending,
        saved=saved,
    )


@router.get("/clients/{client_id}/grant")
async def grant_page(client_id: str, console: AdminPage) -> Response:
    return await _grant_page(console, client_id[:64])


@router.post("/clients/{client_id}/grant")
async def grant_change(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    form = await _form(console.request)
    service = _admin(console)
    try:
        current = await service.get_grant(client_id)
    except NotFound:
        return console.page("forbidden.html", "forbidden.title", status=404, text="404")
    body: dict[str, Any] = current.model_dump(mode="json", exclude={"client_id", "updated_at"})
    for member in _LIST_MEMBERS:
        if member in form:
            body[member] = [part.strip() for part in form[member].split(",") if part.strip()]
    for member in _NUMBER_MEMBERS:
        if member in form:
            text = form[member].strip()
            body[member] = int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else text
    try:
        result = await service.replace_grant(client_id, GrantIn.model_validate(body))
    except ValidationError as err:  # the form's values against the schema (messages name no value)
        await console.rollback()
        errors = [{"loc": [str(p) for p in e["loc"]], "message": e["msg"]} for e in err.errors()]
        return await _grant_page(console, client_id, status=422, errors=errors, shown=body)
    except ValidationFailed as err:
        await console.rollback()
        return await _grant_page(console, client_id, status=422, errors=list(err.errors), shown=body)
    except GatewayError as err:
        await console.rollback()
        errors = [{"loc": [], "message": err.detail if console.lang == "en" else err.detail_vi}]
        return await _grant_page(console, client_id, status=err.status, errors=errors, shown=body)
    if isinstance(result, ChangeOut):
        return await _grant_page(console, client_id, status=202, pending=result.change_id)
    return RedirectResponse(f"/console/clients/{client_id}/grant?saved=1", status_code=303)
