"""The console's administration pages built so far: clients with their grants (``admin``) and four-eyes
approval between people (``approver``), docs/contract.md, section 15.

A grant change made here goes through ``AdminService`` as the operator (actor ``op:<username>``): with
``DANCU_ADMIN__REQUIRE_APPROVAL=true`` a change that widens access becomes a pending change, and only an
operator with ``approver`` other than the one who made it can approve it (``self_approval``, 403, whatever
roles one holds). Issue 16 builds the rest of the clients pages.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.admin.errors import SelfApprovalForbidden
from app.admin.schemas import ChangeOut
from app.admin.service import AdminService
from app.auth.dependencies import KEYS
from app.auth.errors import Conflict
from app.auth.schemas import ClientSecretOut, GrantIn, GrantOut
from app.console.router import Console, _form, require_operator
from app.errors import GatewayError, NotFound, ValidationFailed

router = APIRouter(prefix="/console", include_in_schema=False)

AdminPage = Annotated[Console, Depends(require_operator("admin"))]
ApproverPage = Annotated[Console, Depends(require_operator("approver"))]

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


# --- clients and grants (admin) ------------------------------------------------------------------------------


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


# --- approvals (approver) ------------------------------------------------------------------------------------


def _differences(before: dict[str, Any] | None, after: dict[str, Any]) -> tuple[str, str]:
    """The members that differ, one per line (the whole of each side when there is no ``before``)."""
    before = before or {}
    keys = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]

    def side(values: dict[str, Any]) -> str:
        return "\n".join(f"{k}: {json.dumps(values.get(k), ensure_ascii=False)}" for k in keys) or "–"

    return side(before), side(after)


async def _approvals_page(
    console: Console, *, status: int = 200, error: str | None = None, secret: str | None = None
) -> Response:
    page = await _admin(console).list_changes(status="pending", cursor=None, limit=200)
    rows = []
    for change in page.items:
        before, after = _differences(change.base, change.payload)
        rows.append(
            {
                "change_id": change.change_id,
                "action": change.action,
                "target_client_id": change.target_client_id,
                "requested_by": change.requested_by,
                "created_at": change.created_at,
                "widens": change.widens,
                "before": before,
                "after": after,
            }
        )
    return console.page(
        "approvals.html", "approvals.title", status=status, changes=rows, error=error, secret=secret
    )


@router.get("/approvals")
async def approvals(console: ApproverPage) -> Response:
    return await _approvals_page(console)


@router.post("/approvals/{change_id}")
async def decide(change_id: str, console: ApproverPage) -> Response:
    form = await _form(console.request)
    decision = form.get("decision")
    reason = form.get("reason", "").strip()[:500] or None
    service = _admin(console)
    try:
        if decision == "approve":
            result: GrantOut | Any = await service.approve(change_id[:64], reason=reason)
        elif decision == "reject":
            await service.reject(change_id[:64], reason=reason)
            result = None
        else:
            return await _approvals_page(console, status=422, error="decision")
    except SelfApprovalForbidden:
        await console.rollback()
        return await _approvals_page(console, status=403, error=console.t("approvals.self"))
    except (Conflict, NotFound):
        await console.rollback()  # an approval refused half-way must not stay recorded as approved
        return await _approvals_page(console, status=409, error=console.t("approvals.gone"))
    if isinstance(result, ClientSecretOut):  # an approved secret rotation: shown once, to the approver
        return await _approvals_page(console, secret=result.client_secret)
    return RedirectResponse("/console/approvals", status_code=303)
