"""The console's four-eyes approval between people (``approver``), docs/contract.md, section 15; the clients
and grant pages (``admin``) are in ``app.console.clients``.

Changes are made through ``AdminService`` as the operator (actor ``op:<username>``): with
``DANCU_ADMIN__REQUIRE_APPROVAL=true`` a change that widens access becomes a pending change, and only an
operator with ``approver`` other than the one who made it can approve it (``self_approval``, 403, whatever
roles one holds).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from app.admin.errors import SelfApprovalForbidden
from app.admin.service import AdminService
from app.auth.dependencies import KEYS
from app.auth.errors import Conflict
from app.auth.schemas import ClientSecretOut, GrantOut
from app.console.router import Console, _form, require_operator
from app.errors import NotFound

router = APIRouter(prefix="/console", include_in_schema=False)

AdminPage = Annotated[Console, Depends(require_operator("admin"))]
ApproverPage = Annotated[Console, Depends(require_operator("approver"))]


def _admin(console: Console) -> AdminService:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return AdminService(
        console.db,
        console.state[KEYS],
        actor=console.me.actor,
        request_id=console.service.request_id,
        require_approval=console.state.settings.admin.require_approval,
    )


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
