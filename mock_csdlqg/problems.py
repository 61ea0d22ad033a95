"""The mock's errors as ``application/problem+json`` (RFC 9457), rendered the way the gateway renders its own.

A body is ``{type, title, status, detail, code, request_id}``, plus ``errors`` (``[{loc, code, message}]``)
on 422. Nothing the caller sent is echoed: field messages come from the table below (never pydantic's
``msg`` or ``input``), and a ``loc`` member that is not a plain field name (an unknown key could be a
personal ID) is masked. English only: the mock stands in for a machine-to-machine upstream.

Family: ``MockProblem`` (status, code, title, detail)
    ``BadRequest`` 400, ``InvalidFault`` 400, ``InvalidApiKey`` 401, ``NotFound`` 404,
    ``MethodNotAllowed`` 405, ``PayloadTooLarge`` 413, ``ValidationFailed`` 422, ``InternalError`` 500,
    ``InjectedFault`` (any status a fault asks for).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:csdlqg:problem:"
REQUEST_ID_KEY = "request_id"
"""Where the middleware leaves the request id in ``scope["state"]``."""

FieldError = dict[str, Any]


class MockProblem(Exception):
    """An error the mock answers as a problem; subclasses fix status, code and title."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    default_detail: ClassVar[str] = "The mock could not answer this request."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors
        self.headers = dict(headers or {})
        super().__init__(self.code)

    @property
    def status_code(self) -> int:
        return self.status


class BadRequest(MockProblem):
    status, code, title = 400, "bad_request", "Bad request"
    default_detail = "The request could not be read."


class InvalidFault(MockProblem):
    status, code, title = 400, "invalid_fault", "Invalid fault"
    default_detail = (
        "X-Mock-Fault takes ';'-separated items from: latency=<ms, 0-60000>, status=<400-599>, "
        "malformed, wrong_id, trickle (or none)."
    )


class InvalidApiKey(MockProblem):
    status, code, title = 401, "invalid_api_key", "Invalid API key"
    default_detail = "Send the mock's API key in the X-Api-Key header."


class NotFound(MockProblem):
    status, code, title = 404, "not_found", "Not found"
    default_detail = "Nothing is on record under this identifier."


class MethodNotAllowed(MockProblem):
    status, code, title = 405, "method_not_allowed", "Method not allowed"
    default_detail = "This path does not answer this method."


class PayloadTooLarge(MockProblem):
    status, code, title = 413, "payload_too_large", "Payload too large"
    default_detail = "The request body is larger than the mock accepts."


class ValidationFailed(MockProblem):
    status, code, title = 422, "validation_failed", "Validation failed"
    default_detail = "The request does not match the contract; see errors."


class InternalError(MockProblem):
    status, code, title = 500, "internal_error", "Internal error"


class InjectedFault(MockProblem):
    """The status a fault asked for (``X-Mock-Fault: status=503`` or the global mode)."""

    code, title = "injected_fault", "Injected fault"
    default_detail = "Fault injection answered this request with the status it was asked for."

    def __init__(self, status: int) -> None:
        self.injected_status = status
        retry = {"Retry-After": "1"} if status in (429, 503) else None
        super().__init__(headers=retry)

    @property
    def status_code(self) -> int:
        return self.injected_status


# --------------------------------------------------------------------------------------------- rendering


def problem_bytes(problem: MockProblem, request_id: str | None) -> bytes:
    status = problem.status_code
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + problem.code,
        "title": problem.title if not isinstance(problem, InjectedFault) else _phrase(status),
        "status": status,
        "detail": problem.detail,
        "code": problem.code,
        "request_id": request_id,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return orjson.dumps(body)


def problem_response(problem: MockProblem, request_id: str | None) -> Response:
    return Response(
        problem_bytes(problem, request_id),
        status_code=problem.status_code,
        headers=problem.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def request_id_of(scope: Mapping[str, Any]) -> str | None:
    value = scope.get("state", {}).get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return InjectedFault.title


# ----------------------------------------------------------------------------------------- field errors

# Messages per pydantic error type. Placeholders name only the constraint (from ``ctx``), never the input.
_FIELD_MESSAGES: dict[str, str] = {
    "missing": "Field required.",
    "extra_forbidden": "Unknown field.",
    "json_invalid": "Malformed JSON.",
    "json_type": "Expected a JSON document.",
    "model_type": "Expected a JSON object.",
    "model_attributes_type": "Expected a JSON object.",
    "dict_type": "Expected a JSON object.",
    "list_type": "Expected a list.",
    "string_type": "Expected a string.",
    "string_pattern_mismatch": "Does not have the expected format.",
    "string_too_short": "Must have at least {min_length} characters.",
    "string_too_long": "Must have at most {max_length} characters.",
    "too_short": "Must have at least {min_length} items.",
    "too_long": "Must have at most {max_length} items.",
    "int_type": "Expected an integer.",
    "int_parsing": "Expected an integer.",
    "int_from_float": "Expected an integer.",
    "bool_type": "Expected true or false.",
    "bool_parsing": "Expected true or false.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
    "invalid_personal_id": "Expected a personal ID of 12 digits.",
    "unknown_province": "Not a 2025 province code.",
}
_GENERIC_MESSAGE = "Invalid value."
_CONSTRAINTS = frozenset({"min_length", "max_length", "ge", "le"})
_PLACEHOLDER = re.compile(r"{(\w+)}")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MASKED_LOC = "*"


def field_error(loc: Iterable[str | int], code: str, **constraints: int) -> FieldError:
    """One ``{loc, code, message}`` item; ``loc`` members that are not plain names or indexes are masked."""
    template = _FIELD_MESSAGES.get(code, _GENERIC_MESSAGE)
    if not set(_PLACEHOLDER.findall(template)) <= constraints.keys():
        template = _GENERIC_MESSAGE
    return {
        "loc": [part if isinstance(part, int) or _PLAIN_NAME.fullmatch(part) else MASKED_LOC for part in loc],
        "code": code,
        "message": template.format_map(constraints),
    }


def field_errors(errors: Iterable[Mapping[str, Any]], *, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    """pydantic/FastAPI error dicts as field errors; ``input``, ``msg``, ``url`` and ``ctx`` are dropped."""
    result = []
    for error in errors:
        ctx = error.get("ctx") or {}
        constraints = {k: v for k, v in ctx.items() if k in _CONSTRAINTS and isinstance(v, int)}
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        result.append(field_error([*prefix, *loc], str(error.get("type", "value_error")), **constraints))
    return result


# ------------------------------------------------------------------------------------- FastAPI handlers


async def _problem_handler(request: Request, exc: Exception) -> Response:
    problem = exc if isinstance(exc, MockProblem) else InternalError()
    return problem_response(problem, request_id_of(request.scope))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else ()
    problem = ValidationFailed(errors=field_errors(errors))
    return problem_response(problem, request_id_of(request.scope))


_FRAMEWORK_ERRORS: dict[int, type[MockProblem]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    """The framework's own errors (routing 404/405, unreadable bodies) as problems."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    headers = exc.headers if isinstance(exc, StarletteHTTPException) else None
    fallback = BadRequest if 400 <= status < 500 else InternalError
    detail = "There is no such path." if status == 404 else None
    problem = _FRAMEWORK_ERRORS.get(status, fallback)(detail, headers=headers)
    return problem_response(problem, request_id_of(request.scope))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MockProblem, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)


# ---------------------------------------------------------------------------------------------- OpenAPI


class FieldErrorModel(BaseModel):
    loc: list[str | int]
    code: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem as the mock sends it (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None
    errors: list[FieldErrorModel] | None = None


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*problems: type[MockProblem]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the problems a route may answer (several codes may share a status)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for problem in problems:
        entry = responses.setdefault(
            problem.status, {"description": "", "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}
        )
        line = f"`{problem.code}`: {problem.title}"
        entry["description"] = f"{entry['description']}; {line}" if entry["description"] else line
    return responses
