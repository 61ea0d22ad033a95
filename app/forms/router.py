"""HTTP for forms: templates (``/v1/admin/forms``, scope ``admin``) and prefill (``/v1/citizens/prefill``,
scope ``citizen.read``). The prefill goes through FastAPI's declared path (no fast path): it reads a template
from the database anyway."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Response

from app.audit.errors import AuditUnavailable
from app.backends.errors import NoRegisteredContact, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.citizens.errors import (
    EndUserRequired,
    LimitsUnavailable,
    PurposeNotAllowed,
    PurposeRequired,
    RateLimited,
    SubjectQuotaExceeded,
)
from app.errors import InsufficientScope, InvalidPersonalId, InvalidToken, NotFound, ValidationFailed
from app.forms.dependencies import (
    ConfirmationsDep,
    ConfirmCall,
    FormAccessDep,
    FormAdministration,
    ReadFormCall,
)
from app.forms.errors import (
    ConfirmationCodeInvalid,
    ConfirmationDone,
    ConfirmationExpired,
    ConfirmationLocked,
    ConfirmationNotFound,
    FormExists,
    FormNotFound,
    ResendRefused,
)
from app.forms.schemas import (
    FORM_CODE_PATTERN,
    ConfirmationComplete,
    ConfirmationDoneOut,
    ConfirmationOut,
    ConfirmationStart,
    FormIn,
    FormOut,
    FormPage,
    FormReplace,
    PrefillRequest,
    PrefillResponse,
)
from app.problems import problem_responses
from app.routing import GatewayRoute, PreparedJSON

admin_router = APIRouter(prefix="/v1/admin/forms", tags=["forms"], route_class=GatewayRoute)
"""Included by ``app.api`` with ``require_admin``."""

FormCodePath = Annotated[str, Path(pattern=FORM_CODE_PATTERN, description="The form's `code` (e.g. `CT01`).")]
_AUTH: Final = (InvalidToken, InsufficientScope)
_CITIZEN: Final = (
    *_AUTH,
    PurposeRequired,
    PurposeNotAllowed,
    EndUserRequired,
    InvalidPersonalId,
    FormNotFound,
    NotFound,
    RateLimited,
    SubjectQuotaExceeded,
    LimitsUnavailable,
    AuditUnavailable,
    UpstreamBadResponse,
    UpstreamUnavailable,
    UpstreamTimeout,
)

router = APIRouter(prefix="/v1", tags=["forms"], route_class=GatewayRoute)
"""The citizen-facing routes: each names its scope in its signature."""


@router.post("/citizens/prefill", response_model=PrefillResponse, responses=problem_responses(*_CITIZEN))
async def prefill(body: PrefillRequest, call: ReadFormCall, forms: FormAccessDep) -> PreparedJSON:
    """A form's values from the resident's record; values the grant does not allow are null and listed in
    `withheld`. `X-Purpose` must be the form's purpose."""
    return PreparedJSON(await forms.prefill(call, body.personal_id, body.form))


ConfirmationIdPath = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="The `confirmation_id` the start answered.",
    ),
]
_FLOW: Final = (
    *_AUTH,
    EndUserRequired,
    ConfirmationNotFound,
    ConfirmationDone,
    ConfirmationExpired,
    ConfirmationLocked,
    RateLimited,
    LimitsUnavailable,
    AuditUnavailable,
    UpstreamBadResponse,
    UpstreamUnavailable,
    UpstreamTimeout,
    ValidationFailed,
)


@router.post(
    "/confirmations",
    status_code=201,
    response_model=ConfirmationOut,
    responses=problem_responses(NoRegisteredContact, ValidationFailed, *_CITIZEN),
)
async def start_confirmation(
    body: ConfirmationStart, call: ConfirmCall, flow: ConfirmationsDep
) -> PreparedJSON:
    """Have the population database send a one-time code to the resident's registered mobile, to confirm the
    declaration whose SHA-256 is `document_sha256`. `X-Purpose` must be the form's purpose."""
    answer = await flow.start(call, body.personal_id, body.form, body.document_sha256)
    return PreparedJSON(answer, status_code=201)


@router.post(
    "/confirmations/{confirmation_id}/complete",
    response_model=ConfirmationDoneOut,
    responses=problem_responses(ConfirmationCodeInvalid, *_FLOW),
)
async def complete_confirmation(
    confirmation_id: ConfirmationIdPath, body: ConfirmationComplete, call: ConfirmCall, flow: ConfirmationsDep
) -> PreparedJSON:
    """The code the resident typed: a right one answers the signed receipt (`confirmation+jwt`)."""
    return PreparedJSON(await flow.complete(call, confirmation_id, body.code))


@router.post(
    "/confirmations/{confirmation_id}/resend",
    response_model=ConfirmationOut,
    responses=problem_responses(ResendRefused, NoRegisteredContact, *_FLOW),
)
async def resend_confirmation(
    confirmation_id: ConfirmationIdPath, call: ConfirmCall, flow: ConfirmationsDep
) -> PreparedJSON:
    """Send a new code (the earlier one stops counting): at most 3 times, 60 seconds apart."""
    return PreparedJSON(await flow.resend(call, confirmation_id))


@admin_router.post(
    "",
    status_code=201,
    response_model=FormOut,
    responses=problem_responses(*_AUTH, FormExists, ValidationFailed),
)
async def create_form(body: FormIn, forms: FormAdministration, response: Response) -> FormOut:
    """Define a form: its fields, the record field or member each is filled from, and how it is written."""
    created = await forms.create(body)
    response.headers["Location"] = f"{admin_router.prefix}/{created.code}"
    return created


@admin_router.get("", response_model=FormPage, responses=problem_responses(*_AUTH))
async def list_forms(forms: FormAdministration) -> FormPage:
    """Every template, retired ones included (`status`), in `code` order."""
    return await forms.list()


@admin_router.get(
    "/{code}", response_model=FormOut, responses=problem_responses(*_AUTH, FormNotFound, ValidationFailed)
)
async def get_form(code: FormCodePath, forms: FormAdministration) -> FormOut:
    return await forms.get(code)


@admin_router.put(
    "/{code}", response_model=FormOut, responses=problem_responses(*_AUTH, FormNotFound, ValidationFailed)
)
async def replace_form(code: FormCodePath, body: FormReplace, forms: FormAdministration) -> FormOut:
    """Replace the whole definition (a retired form is put back in use)."""
    return await forms.replace(code, body)


@admin_router.delete(
    "/{code}", status_code=204, responses=problem_responses(*_AUTH, FormNotFound, ValidationFailed)
)
async def retire_form(code: FormCodePath, forms: FormAdministration) -> Response:
    """Retire the form: prefills and confirmations of it answer 404 `form_not_found`; its row stays."""
    await forms.retire(code)
    return Response(status_code=204)
