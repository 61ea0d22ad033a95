"""The console's clients and grant pages (``admin``), docs/contract.md, section 15, and docs/console.md.

Every change goes through ``AdminService`` as the operator (actor ``op:<username>``), so the REST API's
validation and audit apply unchanged: with ``DANCU_ADMIN__REQUIRE_APPROVAL=true`` a change that widens access
(a grant widening, a reinstatement, another client's secret or keys) becomes a pending change that another
operator with ``approver`` decides (``app.console.admin_extra``).

The service's refusals come back as ``errors[]`` with a ``loc`` (``["scopes", 1]``, ``["keys", 0, "kid"]``);
``_by_control`` puts each beside the control that caused it, in the page's language (``cerr.<code>`` words,
else the message). A client secret is shown only in the answer to the request that made it (a creation or a
rotation), never again: the page is not stored (``Cache-Control: no-store``) and no GET shows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

import vnid
from app.admin.schemas import ChangeOut
from app.auth.context import SCOPES
from app.auth.schemas import (
    MAX_SECRET_GRACE_SECONDS,
    ClientCreate,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
    GrantIn,
    JWKSetIn,
)
from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from app.console.dashboard import VIETNAM
from app.console.router import Console, _form, require_operator
from app.errors import FieldError, GatewayError, NotFound, ValidationFailed
from app.problems import field_errors

router = APIRouter(prefix="/console", include_in_schema=False)

AdminPage = Annotated[Console, Depends(require_operator("admin"))]

GRANT_FIELDS: Final = tuple(f for f in RESIDENT_FIELDS if f != "personal_id")
"""The 26 fields a grant names (``personal_id`` is always returned), in contract order."""
_LIST_MEMBERS: Final = ("scopes", "fields", "provinces", "purposes")
_NUMBER_MEMBERS: Final = ("rate_limit_per_minute", "distinct_subjects_per_day")
_TIME_MEMBERS: Final = ("valid_from", "valid_until")
_BOOL_MEMBERS: Final = ("verify_details", "require_end_user")
MAX_JWKS_TEXT: Final = 64 * 1024
MAX_LISTED: Final = 1000
GRACE_CHOICES: Final = (0, 3600, MAX_SECRET_GRACE_SECONDS)
_LOCAL_TIME: Final = "%Y-%m-%dT%H:%M"


# --- errors beside their controls ------------------------------------------------------------------------


def _by_control(
    console: Console, errors: Iterable[Mapping[str, Any]], body: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """``errors`` (``{loc, code, message}``) as messages per control: the first ``loc`` member that is not
    ``body``; ``""`` for the form as a whole. A list member's item is named (the field or province it is)."""
    shown: dict[str, list[str]] = {}
    for error in errors:
        loc = [part for part in error.get("loc", []) if part != "body"]
        control = str(loc[0]) if loc else ""
        words = console.t(f"cerr.{error.get('code', '')}")
        message = error.get("message", "") if words.startswith("cerr.") else words
        if len(loc) > 1 and isinstance(loc[1], int) and body is not None:
            items = body.get(control)
            if isinstance(items, list) and 0 <= loc[1] < len(items):
                message = f"{_item_name(console, control, items, loc[1])}: {message}"
        shown.setdefault(control, []).append(message)
    return shown


def _item_name(console: Console, control: str, items: list[Any], index: int) -> str:
    """The item a list member's error is about, as the page names it (a key by its place, never its text)."""
    item = str(items[index])[:64]
    if control == "keys":
        return f"{console.t('cl.key')} {index + 1}"
    if control == "fields" and item in GRANT_FIELDS:
        return console.t(f"field.{item}")
    if control == "provinces" and item in vnid.PROVINCES_2025:
        return vnid.PROVINCES_2025[item].name
    return item


def _schema_errors(console: Console, err: ValidationError) -> list[FieldError]:
    return field_errors(err.errors(), language=console.lang)


def _gateway_error(console: Console, err: GatewayError) -> dict[str, list[str]]:
    if isinstance(err, ValidationFailed):
        return {}
    return {"": [err.detail_vi if console.lang == "vi" else err.detail]}


# --- the clients list ------------------------------------------------------------------------------------


@router.get("/clients")
async def clients(console: AdminPage, q: str = "", status: str = "") -> Response:
    service = console.admin()
    listed = await service.auth.list_clients(limit=MAX_LISTED)
    wanted = q.strip().casefold()[:200]
    if wanted:
        listed = [c for c in listed if wanted in c.name.casefold() or wanted in c.client_id.casefold()]
    if status in ("active", "suspended"):
        listed = [c for c in listed if c.status == status]
    grants = {c.client_id: (await service.get_grant(c.client_id)).scopes for c in listed}
    return console.page(
        "clients.html",
        "clients.title",
        clients=listed,
        grants=grants,
        q=q[:200],
        status_filter=status if status in ("active", "suspended") else "",
    )


# --- creating a client -----------------------------------------------------------------------------------


def _new_page(
    console: Console, *, shown: Mapping[str, str] | None = None, errors: Mapping[str, list[str]] | None = None
) -> Response:
    return console.page(
        "client_new.html",
        "cl.new.title",
        status=422 if errors else 200,
        shown=shown or {},
        errors=errors or {},
    )


def _optional(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


@router.get("/clients/new")
async def new_client_page(console: AdminPage) -> Response:
    return _new_page(console)


@router.post("/clients/new")
async def new_client(console: AdminPage) -> Response:
    form = await _form(console.request)
    body = {
        "name": form.get("name", ""),
        "description": _optional(form, "description"),
        "contact_email": _optional(form, "contact_email"),
    }
    try:
        created = await console.admin().create_client(ClientCreate.model_validate(body))
    except ValidationError as err:
        return _new_page(console, shown=form, errors=_by_control(console, _schema_errors(console, err)))
    except ValidationFailed as err:
        await console.rollback()
        return _new_page(console, shown=form, errors=_by_control(console, err.errors))
    # The secret is shown in this answer only (not a redirect: nothing else can show it again).
    return await _detail_page(
        console, created.client.client_id, status=201, secret=created.client_secret, notice="cl.created"
    )


# --- one client --------------------------------------------------------------------------------------------


async def _detail_page(
    console: Console,
    client_id: str,
    *,
    status: int = 200,
    secret: str | None = None,
    notice: str | None = None,
    pending: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    shown: Mapping[str, str] | None = None,
) -> Response:
    service = console.admin()
    try:
        client = await service.get_client(client_id)
        grant = await service.get_grant(client_id)
    except NotFound:
        return _not_found(console)
    changes = await service.list_changes(status="pending", cursor=None, limit=200)
    return console.page(
        "client.html",
        "cl.detail",
        status=status,
        client=client,
        grant=grant,
        kids=_kids(client),
        field_names={f: console.t(f"field.{f}") for f in GRANT_FIELDS},
        provinces={code: p.name for code, p in vnid.PROVINCES_2025.items()},
        pending_changes=[c for c in changes.items if c.target_client_id == client_id],
        secret=secret,
        notice=console.t(notice) if notice else None,
        pending=console.t("cl.pending.notice").format(change_id=pending) if pending else None,
        errors=errors or {},
        shown=shown or {},
        grace_choices=GRACE_CHOICES,
    )


def _kids(client: ClientOut) -> list[str]:
    keys = (client.jwks or {}).get("keys") or []
    return [str(k.get("kid") or k.get("kty") or "?")[:80] for k in keys if isinstance(k, dict)]


def _not_found(console: Console) -> Response:
    return console.page("forbidden.html", "cl.notfound", status=404, text=console.t("cl.notfound"))


@router.get("/clients/{client_id}")
async def client_page(client_id: str, console: AdminPage, done: str = "") -> Response:
    notices = {
        "saved": "cl.saved",
        "suspended": "cl.suspended.done",
        "reinstated": "cl.reinstated.done",
        "keys": "cl.jwks.saved",
        "secret_off": "cl.secret_off.done",
        "grant": "grant.saved",
    }
    return await _detail_page(console, client_id[:64], notice=notices.get(done))


async def _after_change(
    console: Console, client_id: str, result: object, done: str, *, secret: str | None = None
) -> Response:
    """A pending change: the page names it (202); applied: back to the client (303), or with a new secret,
    the page that shows it this once."""
    if isinstance(result, ChangeOut):
        return await _detail_page(console, client_id, status=202, pending=result.change_id)
    if secret is not None:
        return await _detail_page(console, client_id, secret=secret, notice="cl.rotated")
    return RedirectResponse(f"/console/clients/{client_id}?done={done}", status_code=303)


@router.post("/clients/{client_id}/edit")
async def edit_client(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    form = await _form(console.request)
    body = {
        "name": form.get("name", ""),
        "description": _optional(form, "description"),
        "contact_email": _optional(form, "contact_email"),
    }
    return await _update(console, client_id, body, form, done="saved")


@router.post("/clients/{client_id}/status")
async def client_status(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    form = await _form(console.request)
    status = form.get("status", "")
    reason = form.get("reason", "").strip()
    if not reason:
        errors = {"reason": [console.t("cerr.reason_required")]}
        return await _detail_page(console, client_id, status=422, errors=errors, shown=form)
    body = {"status": status, "reason": reason}
    done = "suspended" if status == "suspended" else "reinstated"
    return await _update(console, client_id, body, form, done=done)


async def _update(
    console: Console, client_id: str, body: dict[str, Any], form: Mapping[str, str], *, done: str
) -> Response:
    try:
        result = await console.admin().update_client(client_id, ClientUpdate.model_validate(body))
    except ValidationError as err:
        errors = _by_control(console, _schema_errors(console, err))
        return await _detail_page(console, client_id, status=422, errors=errors, shown=form)
    except NotFound:
        await console.rollback()
        return _not_found(console)
    except GatewayError as err:
        await console.rollback()
        errors = _by_control(console, err.errors) if isinstance(err, ValidationFailed) else {}
        errors = {**errors, **_gateway_error(console, err)}
        return await _detail_page(console, client_id, status=err.status, errors=errors, shown=form)
    return await _after_change(console, client_id, result, done)


@router.post("/clients/{client_id}/secret")
async def rotate_secret(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    form = await _form(console.request)
    grace_text = form.get("grace_seconds", "0")
    grace = int(grace_text) if grace_text.isascii() and grace_text.isdigit() else -1
    if grace not in GRACE_CHOICES:
        grace = 0
    try:
        result = await console.admin().rotate_secret(client_id, grace)
    except NotFound:
        await console.rollback()
        return _not_found(console)
    secret = result.client_secret if isinstance(result, ClientSecretOut) else None
    return await _after_change(console, client_id, result, "saved", secret=secret)


@router.post("/clients/{client_id}/secret/off")
async def disable_secret(client_id: str, console: AdminPage) -> Response:
    """Secret authentication off for a key-only client (``DELETE /v1/admin/clients/{id}/secret``): 409 beside
    the button while it has no registered keys (it would be locked out)."""
    client_id = client_id[:64]
    try:
        result = await console.admin().disable_secret(client_id)
    except NotFound:
        await console.rollback()
        return _not_found(console)
    except GatewayError as err:
        await console.rollback()
        return await _detail_page(console, client_id, status=err.status, errors=_gateway_error(console, err))
    return await _after_change(console, client_id, result, "secret_off")


@router.post("/clients/{client_id}/jwks")
async def register_keys(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    posted = (await console.request.form()).get("jwks")
    text = posted[:MAX_JWKS_TEXT] if isinstance(posted, str) else ""
    shown = {"jwks": text}
    try:
        document = json.loads(text)
    except ValueError:
        errors = {"jwks": [console.t("cerr.jwks_not_json")]}
        return await _detail_page(console, client_id, status=422, errors=errors, shown=shown)
    try:
        result = await console.admin().set_jwks(client_id, JWKSetIn.model_validate(document))
    except ValidationError as err:
        errors = {"jwks": _flat(_by_control(console, _schema_errors(console, err), document))}
        return await _detail_page(console, client_id, status=422, errors=errors, shown=shown)
    except NotFound:
        await console.rollback()
        return _not_found(console)
    except ValidationFailed as err:
        await console.rollback()
        errors = {"jwks": _flat(_by_control(console, err.errors, document))}
        if any(error["code"] == "private_key" for error in err.errors):
            shown = {"jwks": ""}  # a private key is not shown back (nor kept in the browser's form)
        return await _detail_page(console, client_id, status=422, errors=errors, shown=shown)
    return await _after_change(console, client_id, result, "keys")


def _flat(errors: Mapping[str, list[str]]) -> list[str]:
    """Every message of ``errors``: a JWK Set's problems all belong to its one text area (``keys[1]``
    named as the second key)."""
    return [message for messages in errors.values() for message in messages]


# --- the grant editor ------------------------------------------------------------------------------------


def _local(at: object) -> str:
    """A ``datetime-local`` value in Vietnam time ("" for none)."""
    if isinstance(at, datetime):
        return at.astimezone(VIETNAM).strftime(_LOCAL_TIME)
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at).astimezone(VIETNAM).strftime(_LOCAL_TIME)
        except ValueError:
            return at[:32]
    return ""


def _instant(text: str) -> str | None:
    """A ``datetime-local`` value, read in Vietnam time, as RFC 3339 (the text itself when it is not one:
    the schema refuses it beside the control)."""
    text = text.strip()
    if not text:
        return None
    try:
        at = datetime.strptime(text, _LOCAL_TIME)  # noqa: DTZ007 - Vietnam time, set just below
    except ValueError:
        return text[:64]
    return at.replace(tzinfo=VIETNAM).isoformat()


async def _grant_page(
    console: Console,
    client_id: str,
    *,
    status: int = 200,
    errors: Mapping[str, list[str]] | None = None,
    pending: str | None = None,
    saved: bool = False,
    shown: dict[str, Any] | None = None,
) -> Response:
    service = console.admin()
    try:
        client = await service.get_client(client_id)
        grant = await service.get_grant(client_id)
    except NotFound:
        return _not_found(console)
    values = shown or grant.model_dump(mode="json")
    purposes = [  # a retired purpose is offered no more, but one the grant still names is shown ticked
        p
        for p in (await service.list_purposes(cursor=None, limit=MAX_LISTED)).items
        if p.retired_at is None or p.code in values.get("purposes", [])
    ]
    return console.page(
        "grant.html",
        "g.title",
        status=status,
        client=client,
        grant=values,
        local={name: _local(values.get(name)) for name in _TIME_MEMBERS},
        scopes=SCOPES,
        fields=[(f, console.t(f"field.{f}"), f in SENSITIVE_FIELDS) for f in GRANT_FIELDS],
        provinces=sorted((p.code, p.name) for p in vnid.PROVINCES_2025.values()),
        purposes=purposes,
        unknown_purposes=[p for p in values.get("purposes", []) if p not in {q.code for q in purposes}],
        errors=errors or {},
        pending=console.t("cl.pending.notice").format(change_id=pending) if pending else None,
        saved=saved,
    )


@router.get("/clients/{client_id}/grant")
async def grant_page(client_id: str, console: AdminPage, saved: str = "") -> Response:
    return await _grant_page(console, client_id[:64], saved=saved == "1")


async def _grant_form(console: Console) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The grant form's lists (checkboxes: every value of a name) and its single values."""
    form = await console.request.form()
    lists = {
        name: [v[:64] for v in form.getlist(name) if isinstance(v, str)][:1000] for name in _LIST_MEMBERS
    }
    single = await _form(console.request)
    return lists, single


def _grant_body(
    current: dict[str, Any], lists: Mapping[str, list[str]], form: Mapping[str, str]
) -> dict[str, Any]:
    """The grant ``form`` asks for, on top of ``current``.

    The editor (``editor=1``) sends every member: an unticked box is an empty list or ``false``. A form
    without it (a script's, or an older page) changes only the members it names, lists comma-separated."""
    body = dict(current)
    editor = form.get("editor") == "1"
    for member in _LIST_MEMBERS:
        if editor:
            values = [v.strip() for v in lists[member] if v.strip()]
            if member in ("fields", "provinces") and "*" in values:
                # "*" stands for every non-sensitive field (the sensitive ones stay named) or every province.
                values = ["*", *(v for v in values if member == "fields" and v in SENSITIVE_FIELDS)]
            body[member] = values
        elif member in form:
            body[member] = [part.strip() for part in form[member].split(",") if part.strip()]
    for member in _NUMBER_MEMBERS:
        if member in form:
            text = form[member].strip()
            body[member] = int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else text
    for member in _BOOL_MEMBERS:
        if editor or member in form:
            body[member] = form.get(member) in ("1", "on", "true")
    for member in _TIME_MEMBERS:
        if member in form:
            body[member] = _instant(form[member])
    return body


@router.post("/clients/{client_id}/grant")
async def grant_change(client_id: str, console: AdminPage) -> Response:
    client_id = client_id[:64]
    lists, form = await _grant_form(console)
    service = console.admin()
    try:
        current = await service.get_grant(client_id)
    except NotFound:
        return _not_found(console)
    body = _grant_body(current.model_dump(mode="json", exclude={"client_id", "updated_at"}), lists, form)
    try:
        result = await service.replace_grant(client_id, GrantIn.model_validate(body))
    except ValidationError as err:  # the form's values against the schema (messages name no value)
        await console.rollback()
        errors = _by_control(console, _schema_errors(console, err), body)
        return await _grant_page(console, client_id, status=422, errors=errors, shown=body)
    except GatewayError as err:
        await console.rollback()
        errors = _by_control(console, err.errors, body) if isinstance(err, ValidationFailed) else {}
        errors = {**errors, **_gateway_error(console, err)}
        return await _grant_page(console, client_id, status=err.status, errors=errors, shown=body)
    if isinstance(result, ChangeOut):
        return await _grant_page(console, client_id, status=202, pending=result.change_id)
    return RedirectResponse(f"/console/clients/{client_id}/grant?saved=1", status_code=303)
