"""The console's purposes and signing keys (``admin``) and four-eyes approvals (``approver``),
docs/contract.md, section 15.

Every change goes through ``AdminService`` as the operator (actor ``op:<username>``), so the validation and the
audit events are those of the REST API (docs/contract.md, section 7). The approvals page shows each pending
change as a comparison a non-programmer can read: members by their Vietnamese names, provinces by name,
purposes by title, fields by their Vietnamese names, added items marked green and removed ones red (with a
``+``/``−`` sign as well, so colour is never the only cue). Approving one's own change is refused by the
service (403 ``self_approval``), whatever roles one holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

import vnid
from app.admin.errors import SelfApprovalForbidden
from app.admin.schemas import ChangeOut
from app.auth.errors import Conflict
from app.auth.schemas import ClientSecretOut, PurposeIn
from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from app.console.router import Console, _form, _vntime, require_operator
from app.errors import GatewayError, NotFound, ValidationFailed

router = APIRouter(prefix="/console", include_in_schema=False)

AdminPage = Annotated[Console, Depends(require_operator("admin"))]
ApproverPage = Annotated[Console, Depends(require_operator("approver"))]

MAX_PURPOSES_SHOWN: Final = 1000
MAX_CHANGES_SHOWN: Final = 200
GRANT_MEMBERS: Final = (
    "scopes",
    "fields",
    "provinces",
    "purposes",
    "verify_details",
    "rate_limit_per_minute",
    "distinct_subjects_per_day",
    "valid_from",
    "valid_until",
)
"""A grant's members in the order the comparison shows them."""
LIST_MEMBERS: Final = frozenset({"scopes", "fields", "provinces", "purposes"})
CLIENT_MEMBERS: Final = ("name", "description", "contact_email", "status")


def _message(console: Console, err: GatewayError) -> str:
    return err.detail if console.lang == "en" else err.detail_vi


# --- purposes (admin) ----------------------------------------------------------------------------------------


_PURPOSE_FORM: Final = ("code", "title", "legal_basis")


async def _purposes_page(
    console: Console,
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    shown: Mapping[str, str] | None = None,
    notice: str | None = None,
    row_error: tuple[str, str] | None = None,
) -> Response:
    page = await console.admin().list_purposes(cursor=None, limit=MAX_PURPOSES_SHOWN)
    return console.page(
        "purposes.html",
        "purposes.title",
        status=status,
        purposes=page.items,
        errors=errors or {},
        shown=shown or {},
        notice=notice,
        row_error=row_error,
    )


@router.get("/purposes")
async def purposes(console: AdminPage) -> Response:
    done = next((key for key in ("added", "retired") if console.request.query_params.get(key)), None)
    return await _purposes_page(
        console,
        notice=console.t("purposes.added" if done == "added" else "purposes.retired_msg") if done else None,
    )


@router.post("/purposes")
async def add_purpose(console: AdminPage) -> Response:
    form = await _form(console.request)
    shown = {name: form.get(name, "") for name in _PURPOSE_FORM}
    try:
        await console.admin().add_purpose(PurposeIn.model_validate(shown))
    except ValidationError as err:  # each refusal next to its field; messages name no value
        await console.rollback()
        errors: dict[str, str] = {}
        for problem in err.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "code"
            errors.setdefault(name, console.t(f"purposes.error.{name}"))
        return await _purposes_page(console, status=422, errors=errors, shown=shown)
    except GatewayError as err:  # 409: the code is registered already (in any mix of case)
        await console.rollback()
        return await _purposes_page(
            console, status=err.status, errors={"code": _message(console, err)}, shown=shown
        )
    return RedirectResponse("/console/purposes?added=1", status_code=303)


@router.post("/purposes/{code}/retire")
async def retire_purpose(code: str, console: AdminPage) -> Response:
    code = code[:64]
    try:
        await console.admin().retire_purpose(code)
    except GatewayError as err:  # 404 unknown; 409 still in a grant: shown beside its row
        await console.rollback()
        return await _purposes_page(console, status=err.status, row_error=(code, _message(console, err)))
    return RedirectResponse("/console/purposes?retired=1", status_code=303)


# --- signing keys (admin) ------------------------------------------------------------------------------------


@router.get("/keys")
async def signing_keys(console: AdminPage) -> Response:
    page = await console.admin().list_signing_keys(cursor=None, limit=1000)
    rotated = console.request.query_params.get("rotated")
    return console.page(
        "keys.html",
        "keys.title",
        keys=page.items,
        notice=console.t("keys.rotated") if rotated else None,
    )


@router.post("/keys/rotate")
async def rotate_signing_key(console: AdminPage) -> Response:
    await console.admin().rotate_signing_key()
    return RedirectResponse("/console/keys?rotated=1", status_code=303)


# --- approvals (approver) ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Item:
    """One element of a list member: its readable text, its raw value, and ``kept``/``added``/``removed``."""

    text: str
    code: str
    state: str


@dataclass(slots=True)
class Line:
    """One member that differs: lists as items, single values as before and after."""

    label: str
    items: list[Item] = field(default_factory=list)
    before: str | None = None
    after: str | None = None
    widens: bool = False


class Names:
    """Readable names of the things a change names: provinces, purposes, fields, scopes."""

    def __init__(self, console: Console, purposes: Mapping[str, str]) -> None:
        self.console = console
        self.purposes = purposes

    def item(self, member: str, code: str) -> str:
        t = self.console.t
        if member == "provinces":
            if code == "*":
                return t("approvals.all_provinces")
            province = vnid.PROVINCES_2025.get(code)
            return f"{province.name} ({code})" if province else code
        if member == "purposes":
            title = self.purposes.get(code)
            return f"{title} ({code})" if title else code
        if member == "fields":
            if code == "*":
                return t("approvals.all_fields")
            name = t(f"field.{code}") if code in RESIDENT_FIELDS else code
            marked = f" · {t('approvals.sensitive')}" if code in SENSITIVE_FIELDS else ""
            return f"{name} ({code}){marked}"
        if member == "scopes":
            name = t(f"scope.{code}")
            return f"{name} ({code})" if name != f"scope.{code}" else code
        return code

    def value(self, member: str, value: Any) -> str:
        t = self.console.t
        if value is None:
            return t("approvals.none_value")
        if isinstance(value, bool):
            return t("approvals.yes") if value else t("approvals.no")
        if member in ("valid_from", "valid_until") and isinstance(value, str):
            try:
                return _vntime(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                return value
        if member == "status":
            return t(f"approvals.status.{value}")
        return str(value)


def compare(
    names: Names,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    members: Iterable[str],
    widens: set[str],
) -> list[Line]:
    """The members of ``after`` that differ from ``before``, in a readable form."""
    lines: list[Line] = []
    for member in members:
        if member not in after or before.get(member) == after.get(member):
            continue
        label = names.console.t(f"approvals.member.{member}")
        if member in LIST_MEMBERS:
            old = [str(v) for v in before.get(member) or []]
            new = [str(v) for v in after.get(member) or []]
            items = [Item(names.item(member, v), v, "kept" if v in old else "added") for v in new]
            items += [Item(names.item(member, v), v, "removed") for v in old if v not in new]
            lines.append(Line(label, items=items, widens=member in widens))
        else:
            lines.append(
                Line(
                    label,
                    before=names.value(member, before.get(member)),
                    after=names.value(member, after.get(member)),
                    widens=member in widens,
                )
            )
    return lines


def _kids(jwks: Any) -> list[str]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return [str(k.get("kid") or k.get("kty") or "?") for k in keys or [] if isinstance(k, dict)]


def describe(names: Names, change: ChangeOut) -> list[Line]:
    """What a pending change would do, member by member."""
    t = names.console.t
    widens = set(change.widens)
    if change.action == "admin.grant.replace":
        return compare(names, change.base or {}, change.payload, GRANT_MEMBERS, widens)
    if change.action == "admin.client.update":
        return compare(names, change.base or {}, change.payload, CLIENT_MEMBERS, widens)
    if change.action == "admin.client.jwks":
        old = _kids((change.base or {}).get("jwks"))
        new = _kids(change.payload)
        items = [Item(kid, kid, "kept" if kid in old else "added") for kid in new]
        items += [Item(kid, kid, "removed") for kid in old if kid not in new]
        return [Line(t("approvals.member.jwks"), items=items, widens=True)]
    grace = int((change.payload or {}).get("grace_seconds", 0))  # a secret rotation
    return [
        Line(
            t("approvals.member.client_secret"),
            before=t("approvals.secret.before"),
            after=t("approvals.secret.after").format(grace=grace),
            widens=True,
        )
    ]


async def _approvals_page(
    console: Console,
    *,
    status: int = 200,
    error: str | None = None,
    error_change: str | None = None,
    secret: str | None = None,
    notice: str | None = None,
) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    service = console.admin()
    page = await service.list_changes(status="pending", cursor=None, limit=MAX_CHANGES_SHOWN)
    titles = {p.code: p.title for p in await service.auth.list_purposes()}
    names = Names(console, titles)
    client_names: dict[str, str] = {}
    rows = []
    for change in page.items:
        target = change.target_client_id or ""
        if target and target not in client_names:
            try:
                client_names[target] = (await service.get_client(target)).name
            except NotFound:
                client_names[target] = target
        rows.append(
            {
                "change_id": change.change_id,
                "action": change.action,
                "action_label": console.t(f"approvals.action.{change.action}"),
                "target_client_id": target,
                "client_name": client_names.get(target, ""),
                "requested_by": change.requested_by,
                "own": change.requested_by == console.me.actor,
                "created_at": change.created_at,
                "lines": describe(names, change),
                "error": error if error_change == change.change_id else None,
            }
        )
    return console.page(
        "approvals.html",
        "approvals.title",
        status=status,
        changes=rows,
        error=error if error_change is None or error_change not in {r["change_id"] for r in rows} else None,
        secret=secret,
        notice=notice,
    )


@router.get("/approvals")
async def approvals(console: ApproverPage) -> Response:
    done = console.request.query_params.get("done")
    notice = console.t(f"approvals.{done}") if done in ("approved", "rejected") else None
    return await _approvals_page(console, notice=notice)


@router.post("/approvals/{change_id}")
async def decide(change_id: str, console: ApproverPage) -> Response:
    change_id = change_id[:64]
    form = await _form(console.request)
    decision = form.get("decision")
    reason = form.get("reason", "").strip()[:500] or None
    service = console.admin()
    try:
        if decision == "approve":
            result: Any = await service.approve(change_id, reason=reason)
        elif decision == "reject":
            await service.reject(change_id, reason=reason)
            result = None
        else:
            return await _approvals_page(
                console, status=422, error=console.t("approvals.decision"), error_change=change_id
            )
    except SelfApprovalForbidden:
        await console.rollback()
        return await _approvals_page(
            console, status=403, error=console.t("approvals.self"), error_change=change_id
        )
    except (Conflict, NotFound):
        await console.rollback()  # an approval refused half-way must not stay recorded as approved
        return await _approvals_page(
            console, status=409, error=console.t("approvals.gone"), error_change=change_id
        )
    except ValidationFailed as err:  # the change is no longer valid (a purpose retired meanwhile...)
        await console.rollback()
        return await _approvals_page(
            console,
            status=422,
            error=f"{console.t('approvals.invalid')} {_message(console, err)}",
            error_change=change_id,
        )
    if isinstance(result, ClientSecretOut):  # an approved secret rotation: shown once, to the approver
        return await _approvals_page(
            console, secret=result.client_secret, notice=console.t("approvals.approved")
        )
    done = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/console/approvals?done={done}", status_code=303)
