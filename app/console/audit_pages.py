"""The auditor's pages (``auditor``): audit search, one event with its place in the chain, and the export of
the current search as CSV or NDJSON (docs/contract.md, section 15; docs/console.md).

Every read goes through the REST API's ``AuditService`` as the operator (``Reader.operator``: actor
``op:<username>``), so it is validated and audited exactly like ``POST /v1/audit/events/search``,
``GET /v1/audit/events/{event_id}`` and ``POST /v1/audit/export``: one ``audit.search`` event per page
shown, one ``audit.event`` per event opened, one ``audit.export`` per export, refusals included.

A personal ID never reaches a URL, a page title or the browser history: the search form is POSTed, checked
against the API's own request model, kept behind a random token (``app.console.stash``: encrypted with
``DANCU_KEYS__ENCRYPTION_KEY``, bound to the operator's session, removed when it ends) and answered with a
redirect to ``/console/audit/r/<token>``.
Pages follow the API's MAC'd keyset cursors on ``seq`` (``?cursor=``), so paging never skips or repeats an
event, even while events arrive. Times are typed and shown in Vietnam time and searched in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from app.audit.dependencies import get_audit_service
from app.audit.export import ENCODERS, attachment
from app.audit.schemas import CURSOR_MAX_LENGTH, ExportRequest, SearchRequest
from app.audit.service import AuditService, Reader
from app.console import stash
from app.console.dashboard import VIETNAM
from app.console.router import Console, _fernet, _form, require_operator
from app.console.text import TEXT
from app.db import utcnow
from app.errors import GatewayError, InvalidPersonalId, NotFound, ValidationFailed

router = APIRouter(prefix="/console", include_in_schema=False)

AuditorPage = Annotated[Console, Depends(require_operator("auditor"))]

PAGE_SIZE: Final = 50
"""Events per result page."""
KIND: Final = "audit"
"""The stash's kind for this page's results (``app.console.stash``)."""

TEXT_FILTERS: Final = ("personal_id", "client_id", "purpose", "action", "end_user", "dossier_id")
TIME_FILTERS: Final = ("since", "until")
FORM_FIELDS: Final = (*TEXT_FILTERS, "outcome", *TIME_FILTERS, "order")
OUTCOMES: Final = ("allowed", "denied", "error")
ACTIONS: Final = (
    "citizen.verify",
    "citizen.read",
    "household.read",
    "citizen.prefill",
    "confirmation.start",
    "confirmation.complete",
    "audit.search",
    "audit.event",
    "audit.export",
    "audit.subject_report",
    "stats.population",
    "operator.login",
)
"""Offered in the action field's list (any other action may be typed)."""
_VN_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


# --- the form and its filters --------------------------------------------------------------------------------


def _vn_to_utc(text: str) -> str | None:
    """A Vietnam wall time typed in the form (``datetime-local``) as RFC 3339 with the +07:00 offset; None
    when it is not one."""
    for layout in _VN_TIME_FORMATS:
        try:
            typed = datetime.strptime(text, layout)  # noqa: DTZ007 - the zone is Vietnam's, set next
        except ValueError:
            continue
        return typed.replace(tzinfo=VIETNAM).isoformat(timespec="seconds")
    return None


def _filters(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's filter members for the typed form, and the errors (message keys) by field."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in TEXT_FILTERS:
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    outcome = form.get("outcome", "")
    if outcome:
        body["outcome"] = outcome
    for name in TIME_FILTERS:
        value = form.get(name, "").strip()
        if value:
            converted = _vn_to_utc(value)
            if converted is None:
                errors[name] = "audit.error.time"
            else:
                body[name] = converted
    body["order"] = "asc" if form.get("order") == "asc" else "desc"
    if not errors:
        try:
            ExportRequest.model_validate(body)  # the API's own checks of every member
        except ValidationError as err:
            for problem in err.errors():
                field = str(problem["loc"][0]) if problem["loc"] else "form"
                errors.setdefault(field, _message_key(problem["type"]))
    return body, errors


def _message_key(kind: str) -> str:
    return {
        "string_too_long": "audit.error.too_long",
        "string_too_short": "audit.error.empty",
        "control_character": "audit.error.control",
        "literal_error": "audit.error.choice",
        "datetime_out_of_range": "audit.error.time",
        "timezone_aware": "audit.error.time",
        "datetime_parsing": "audit.error.time",
    }.get(kind, "audit.error.invalid")


def _shown(form: dict[str, str]) -> dict[str, str]:
    """The form's members as typed, to show them again."""
    return {name: form.get(name, "").strip()[:128] for name in FORM_FIELDS}


# --- the result token ------------------------------------------------------------------------------------------


async def _keep(console: Console, form: dict[str, str]) -> str:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return await stash.keep(
        console.db, _fernet(console.state), console.me.session.token_hash, KIND, {"form": form}
    )


async def _kept(console: Console, token: str) -> dict[str, str] | None:
    """The form kept under ``token`` for this session, or None (another session's, ended, or made up)."""
    assert console.me is not None  # noqa: S101 - require_operator set it
    kept = await stash.read(console.db, _fernet(console.state), console.me.session.token_hash, KIND, token)
    form = kept.get("form") if kept is not None else None
    if not isinstance(form, dict):
        return None
    return {str(k): str(v) for k, v in form.items() if k in FORM_FIELDS}


# --- the service, as the operator ------------------------------------------------------------------------------


async def _service(console: Console) -> tuple[AuditService, Reader]:
    """The API's audit service and the operator as its reader. The request's own transaction is committed
    first: it may hold the session's touch, and the audit writer commits in a transaction of its own."""
    assert console.me is not None  # noqa: S101 - require_operator set it
    await console.db.commit()
    reader = Reader.operator(console.me.actor, console.service.request_id, console.service.client_ip)
    return await get_audit_service(console.state), reader


def _search_page(
    console: Console,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    return console.page(
        "audit.html",
        "audit.title",
        status=status,
        form=_shown(form or {}),
        errors={field: console.t(key) for field, key in (errors or {}).items()},
        outcomes=OUTCOMES,
        actions=ACTIONS,
        **context,
    )


# --- search ----------------------------------------------------------------------------------------------------


@router.get("/audit")
async def search_form(console: AuditorPage) -> Response:
    return _search_page(console)


@router.post("/audit")
async def search(console: AuditorPage) -> Response:
    form = {name: value for name, value in (await _form(console.request)).items() if name in FORM_FIELDS}
    _body, errors = _filters(form)
    if errors:
        return _search_page(console, form=form, errors=errors, status=422)
    return RedirectResponse(f"/console/audit/r/{await _keep(console, form)}", status_code=303)


def _refusal(error: GatewayError) -> dict[str, str]:
    """The service's refusal as a message key by field (the personal ID's beside its field)."""
    field = "personal_id" if isinstance(error, InvalidPersonalId) else "form"
    code = error.code
    if isinstance(error, ValidationFailed) and error.errors:
        code = error.errors[0]["code"]
    return {field: f"audit.error.{code}" if f"audit.error.{code}" in TEXT else "audit.error.invalid"}


@router.get("/audit/r/{token}")
async def results(
    console: AuditorPage,
    token: Annotated[str, Path(max_length=64)],
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH)] = None,
) -> Response:
    form = await _kept(console, token)
    if form is None:
        return _search_page(console, errors={"form": "audit.expired"}, status=404)
    body, errors = _filters(form)
    if errors:
        return _search_page(console, form=form, errors=errors, status=422)
    service, reader = await _service(console)
    try:
        page = await service.search(
            reader, SearchRequest.model_validate({**body, "limit": PAGE_SIZE, "cursor": cursor})
        )
    except ValidationError:  # an empty or overlong cursor: not one the gateway handed out
        return _search_page(console, form=form, errors={"form": "audit.error.cursor"}, status=422)
    except GatewayError as error:
        return _search_page(console, form=form, errors=_refusal(error), status=error.status)
    return _search_page(
        console,
        form=form,
        token=token,
        events=[{**item, "when": datetime.fromisoformat(item["at"])} for item in page["items"]],
        next_cursor=page["next_cursor"],
        paged=cursor is not None,
    )


# --- export ----------------------------------------------------------------------------------------------------


@router.post("/audit/r/{token}/export")
async def export(console: AuditorPage, token: Annotated[str, Path(max_length=64)]) -> Response:
    chosen = (await _form(console.request)).get("format", "")
    form = await _kept(console, token)
    if form is None:
        return _search_page(console, errors={"form": "audit.expired"}, status=404)
    body, errors = _filters(form)
    if errors or chosen not in ENCODERS:
        return _search_page(console, form=form, errors=errors or {"form": "audit.error.choice"}, status=422)
    encoder = ENCODERS[chosen]  # type: ignore[index]  # checked just above
    service, reader = await _service(console)
    try:
        stream = await service.export(reader, ExportRequest.model_validate(body), encoder)
    except GatewayError as error:
        return _search_page(console, form=form, errors=_refusal(error), status=error.status)
    return StreamingResponse(
        stream,
        media_type=encoder.media_type,
        headers={"Content-Disposition": attachment(encoder, utcnow())},
    )


# --- one event -------------------------------------------------------------------------------------------------


@router.get("/audit/events/{event_id}")
async def event(console: AuditorPage, event_id: Annotated[str, Path(max_length=64)]) -> Response:
    service, reader = await _service(console)
    try:
        found = await service.event(reader, event_id)
    except NotFound:
        return console.page(
            "forbidden.html", "audit.event.title", status=404, text=console.t("audit.event.none")
        )
    except GatewayError as error:
        return console.page(
            "forbidden.html",
            "audit.event.title",
            status=error.status,
            text=console.t(next(iter(_refusal(error).values()))),
        )
    members = [(name, _member(value)) for name, value in found.items()]
    at = datetime.fromisoformat(found["at"])
    return console.page("audit_event.html", "audit.event.title", event=found, at=at, members=members)


def _member(value: Any) -> str:
    """A member's value as text: JSON for lists, objects and null (exactly as the API gives it)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode("utf-8")
