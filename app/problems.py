"""Renders every error as ``application/problem+json`` (RFC 9457), in Vietnamese or English.

A problem body is ``{type, title, status, detail, code, request_id}``, plus ``errors`` (``[{loc, code,
message}]``, at most 20; ``errors_truncated`` counts the others) for validation failures and whatever members the error class adds. ``title`` and ``detail`` are
Vietnamese when ``Accept-Language`` prefers ``vi``, English otherwise. Nothing the caller submitted is ever
echoed: pydantic's ``input`` and ``ctx`` are dropped and field messages come from the table below, because
a rejected personal ID must not come back in a 422 body or reach a log line.

The first half (language choice, body building, field errors) is framework-free, so the mock's service can
follow the same pattern without importing the gateway. The second half plugs it into FastAPI: exception
handlers, the response class, and the OpenAPI models for ``responses=``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Literal

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import (
    MAX_ERRORS,
    BadRequest,
    FieldError,
    GatewayError,
    InternalError,
    InvalidToken,
    MethodNotAllowed,
    NotFound,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

Language = Literal["vi", "en"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:dancu:problem:"
REQUEST_ID_KEY = "request_id"
"""Where the gateway's middleware (``app.middleware``) leaves the request id in ``scope["state"]``."""
MALFORMED_JSON_KEY = "dancu.malformed_json"
"""Set in the ASGI scope by ``app.routing`` when a JSON body did not decode (reported after authentication)."""

# --- framework-independent: language, bodies, field errors -----------------------------------------------

_MAX_LANGUAGE_RANGES = 32


def preferred_language(accept_language: str | None) -> Language:
    """``vi`` when ``Accept-Language`` ranks Vietnamese above English (RFC 9110 §12.5.4), else ``en``.

    Ranges are weighed by their ``q`` (default 1; ``q=0`` means "not acceptable"); a ``*`` range stands for
    any language the header does not name; equal weights go to the range listed first; no header: English.
    """
    if not accept_language:
        return "en"
    ranked: dict[str, tuple[float, int]] = {}
    for position, item in enumerate(accept_language.split(",")[:_MAX_LANGUAGE_RANGES]):
        tag, *params = (part.strip() for part in item.split(";"))
        primary = tag.split("-", 1)[0].lower()
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = -1.0
        if not 0.0 <= weight <= 1.0 or primary not in ("vi", "en", "*"):
            continue
        best = ranked.get(primary)
        if best is None or weight > best[0]:
            ranked[primary] = (weight, position)
    wildcard = ranked.get("*", (0.0, _MAX_LANGUAGE_RANGES))
    vi_weight, vi_position = ranked.get("vi", wildcard)
    en_weight, en_position = ranked.get("en", wildcard)
    if vi_weight > en_weight or (vi_weight == en_weight > 0 and vi_position < en_position):
        return "vi"
    return "en"


def problem_type(code: str) -> str:
    """The problem's ``type``: a stable URN per code (there is no public documentation site to point at)."""
    return PROBLEM_TYPE_PREFIX + code


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 body; ``extensions`` may add members but never replace the standard ones."""
    body: dict[str, Any] = dict(extensions or {})
    body.update(
        type=problem_type(code), title=title, status=status, detail=detail, code=code, request_id=request_id
    )
    return body


def error_body(error: GatewayError, *, language: Language, request_id: str | None) -> dict[str, Any]:
    """The problem body for a GatewayError in ``language``."""
    vietnamese = language == "vi"
    return problem_body(
        status=error.status,
        code=error.code,
        title=error.title_vi if vietnamese else error.title_en,
        detail=error.detail_vi if vietnamese else error.detail,
        request_id=request_id,
        extensions=error.extensions(),
    )


# Messages per pydantic error type, English and Vietnamese. Placeholders may only name the constraint
# (from the schema), never the input; a type missing here gets the generic message. Feature packages add
# their custom error types (e.g. `invalid_personal_id`) here.
_FIELD_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("Field required.", "Thiếu trường bắt buộc."),
    "extra_forbidden": ("Unknown field.", "Trường không được hỗ trợ."),
    "json_invalid": ("Malformed JSON.", "JSON không đúng cú pháp."),
    "model_attributes_type": ("Expected a JSON object.", "Cần một đối tượng JSON."),
    "model_type": ("Expected a JSON object.", "Cần một đối tượng JSON."),
    "dict_type": ("Expected a JSON object.", "Cần một đối tượng JSON."),
    "list_type": ("Expected a list.", "Cần một danh sách."),
    "string_type": ("Expected a string.", "Cần một chuỗi ký tự."),
    "string_too_short": ("Must have at least {min_length} characters.", "Cần ít nhất {min_length} ký tự."),
    "string_too_long": ("Must have at most {max_length} characters.", "Tối đa {max_length} ký tự."),
    "string_pattern_mismatch": ("Does not have the expected format.", "Không đúng định dạng."),
    "int_type": ("Expected an integer.", "Cần một số nguyên."),
    "int_parsing": ("Expected an integer.", "Cần một số nguyên."),
    "int_from_float": ("Expected an integer.", "Cần một số nguyên."),
    "float_type": ("Expected a number.", "Cần một số."),
    "float_parsing": ("Expected a number.", "Cần một số."),
    "bool_type": ("Expected true or false.", "Cần giá trị true hoặc false."),
    "bool_parsing": ("Expected true or false.", "Cần giá trị true hoặc false."),
    "greater_than": ("Must be greater than {gt}.", "Phải lớn hơn {gt}."),
    "greater_than_equal": ("Must be at least {ge}.", "Phải lớn hơn hoặc bằng {ge}."),
    "less_than": ("Must be less than {lt}.", "Phải nhỏ hơn {lt}."),
    "less_than_equal": ("Must be at most {le}.", "Phải nhỏ hơn hoặc bằng {le}."),
    "too_short": ("Must have at least {min_length} items.", "Cần ít nhất {min_length} phần tử."),
    "too_long": ("Must have at most {max_length} items.", "Tối đa {max_length} phần tử."),
    "literal_error": ("Must be one of {expected}.", "Phải là một trong các giá trị {expected}."),
    "enum": ("Must be one of {expected}.", "Phải là một trong các giá trị {expected}."),
    "date_type": ("Expected a date (YYYY-MM-DD).", "Cần một ngày dạng YYYY-MM-DD."),
    "date_parsing": ("Expected a date (YYYY-MM-DD).", "Cần một ngày dạng YYYY-MM-DD."),
    "date_from_datetime_parsing": ("Expected a date (YYYY-MM-DD).", "Cần một ngày dạng YYYY-MM-DD."),
    "datetime_type": ("Expected an RFC 3339 timestamp.", "Cần một thời điểm theo RFC 3339."),
    "datetime_parsing": ("Expected an RFC 3339 timestamp.", "Cần một thời điểm theo RFC 3339."),
    "datetime_from_date_parsing": ("Expected an RFC 3339 timestamp.", "Cần một thời điểm theo RFC 3339."),
    "timezone_aware": ("Must include a time zone.", "Phải có múi giờ."),
    "uuid_type": ("Expected a UUID.", "Cần một UUID."),
    "uuid_parsing": ("Expected a UUID.", "Cần một UUID."),
    "claim_required": (
        "At least one of full_name, date_of_birth, gender is required.",
        "Cần ít nhất một trong các trường full_name, date_of_birth, gender.",
    ),
    "control_character": ("Control characters are not allowed.", "Không được chứa ký tự điều khiển."),
    "header_not_utf8": ("Must be UTF-8 text.", "Phải là văn bản UTF-8."),
    "datetime_out_of_range": (
        "Must lie between the years 1900 and 9999.",
        "Phải nằm trong khoảng từ năm 1900 đến năm 9999.",
    ),
}
_GENERIC_FIELD_MESSAGE = ("Invalid value.", "Giá trị không hợp lệ.")
_CONSTRAINT_KEYS = frozenset({"min_length", "max_length", "gt", "ge", "lt", "le", "expected"})
_PLACEHOLDER = re.compile(r"{(\w+)}")


def field_errors(errors: Iterable[Mapping[str, Any]], *, language: Language) -> list[FieldError]:
    """pydantic/FastAPI errors as ``{loc, code, message}``: ``input``, ``ctx``, ``msg``, ``url`` dropped."""
    index = 1 if language == "vi" else 0
    result: list[FieldError] = []
    for error in errors:
        code = str(error.get("type", "value_error"))
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        template = _FIELD_MESSAGES.get(code, _GENERIC_FIELD_MESSAGE)[index]
        constraints = {
            key: value
            for key, value in (error.get("ctx") or {}).items()
            if key in _CONSTRAINT_KEYS and isinstance(value, int | float | str)
        }
        if not set(_PLACEHOLDER.findall(template)) <= constraints.keys():
            template = _GENERIC_FIELD_MESSAGE[index]
        result.append({"loc": loc, "code": code, "message": template.format_map(constraints)})
    return result


# --- FastAPI: responses, handlers, OpenAPI models ---------------------------------------------------------


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def request_id_of(request: Request) -> str | None:
    """The id the gateway's middleware gave this request (None outside it)."""
    value = request.scope.get("state", {}).get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else None


def problem_response(
    error: GatewayError, request: Request, language: Language | None = None
) -> ProblemResponse:
    """The answer for ``error`` to ``request``, in the language the caller prefers."""
    language = language or preferred_language(request.headers.get("accept-language"))
    return ProblemResponse(
        error_body(error, language=language, request_id=request_id_of(request)),
        status_code=error.status,
        headers={**error.headers(), "Content-Language": language, "Vary": "Accept-Language"},
    )


async def gateway_error_handler(request: Request, exc: GatewayError) -> ProblemResponse:
    return problem_response(exc, request)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> ProblemResponse:
    """422 ``validation_failed``, malformed JSON included (FastAPI reports it as ``json_invalid``)."""
    language = preferred_language(request.headers.get("accept-language"))
    raw = exc.errors()
    if request.scope.get(MALFORMED_JSON_KEY):
        raw = [{"type": "json_invalid", "loc": ("body",)}]
    errors = field_errors(raw[:MAX_ERRORS], language=language)
    return problem_response(ValidationFailed(errors, more=max(0, len(raw) - MAX_ERRORS)), request, language)


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    """The framework's own HTTP errors (routing 404/405, unreadable bodies) as problems."""
    error: GatewayError
    match exc.status_code:
        case 400:
            error = BadRequest()
        case 401:
            error = InvalidToken(token_sent=False)
        case 404:
            error = NotFound()
        case 405:
            error = MethodNotAllowed(allow=(exc.headers or {}).get("Allow"))
        case status:
            # The framework raises no other status today: keep it, name the problem after its reason phrase.
            phrase = HTTPStatus(status).phrase
            body = problem_body(
                status=status,
                code=re.sub(r"\W+", "_", phrase.lower()),
                title=phrase,
                detail=phrase,
                request_id=request_id_of(request),
            )
            return ProblemResponse(body, status_code=status, headers=exc.headers)
    return problem_response(error, request)


async def unhandled_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """500 ``internal_error``; the log line names the exception type, where it was raised and the request id.

    It never carries the exception's message, a stack trace or the body: any of them may hold personal data.
    """
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_globals.get('__name__', '?')}:{frame.tb_lineno}" if frame else "?"
    logger.error(
        "unhandled %s at %s (request_id=%s, %s %s)",
        type(exc).__qualname__,
        where,
        request_id_of(request),
        request.method,
        request.url.path,
    )
    return problem_response(InternalError(), request)


ProblemHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

PROBLEM_HANDLERS: dict[int | type[Exception], ProblemHandler] = {
    GatewayError: gateway_error_handler,
    RequestValidationError: validation_error_handler,
    StarletteHTTPException: http_exception_handler,
    # FastAPI installs a plain-JSON handler for its own subclass unless that key is taken as well.
    HTTPException: http_exception_handler,
    # Starlette's last resort (ServerErrorMiddleware, outside every user middleware). The gateway's own
    # middleware (app.middleware) answers an unhandled exception first, with the request id and headers.
    Exception: unhandled_error_handler,
}


class FieldErrorModel(BaseModel):
    loc: list[str | int]
    code: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem as the gateway sends it (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None
    errors: list[FieldErrorModel] | None = None
    errors_truncated: int | None = Field(
        default=None, description="how many more errors there were beyond the 20 listed (absent when none)"
    )


def problem_responses(
    *errors: type[GatewayError], model: type[Problem] = Problem
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the errors a route may answer (see ``problem_openapi``)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(
            error.status, {"model": model, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": ""}
        )
        entry["description"] = "; ".join(
            part for part in (entry["description"], f"`{error.code}`: {error.title_en}") if part
        )
    return responses


def problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Make FastAPI's OpenAPI document say what the gateway really sends for errors.

    FastAPI files every ``responses=`` model under the route's own media type (``application/json``) and
    documents a 422 of its own (``HTTPValidationError``) on routes with parameters or a body. Both become
    ``application/problem+json`` here, so clients and contract tests see the bodies they will get.
    """
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    problem_ref = {"$ref": "#/components/schemas/" + Problem.__name__}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status, response in responses.items():
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema", {})
                if json_schema.get("$ref", "").endswith("/HTTPValidationError"):
                    responses[status] = {
                        "description": f"`{ValidationFailed.code}`: {ValidationFailed.title_en}",
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}},
                    }
                elif json_schema and content.get(PROBLEM_MEDIA_TYPE) == {}:
                    content[PROBLEM_MEDIA_TYPE]["schema"] = content.pop("application/json")["schema"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if Problem.__name__ not in schemas:
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas[Problem.__name__] = problem_schema
    return document
