"""The mock national population database's HTTP service (``mock-csdlqg serve``).

``create_app(settings)`` builds it; the lifespan opens the seeded store and closes it, and nothing connects
before. Records go out as the bytes the store holds (one indexed read, no re-serialisation); request
bodies on the two hot routes are checked with orjson and a regex, and the pydantic model runs only to
explain a refusal. The wire models in ``mock_csdlqg.wire`` document every shape in ``openapi_document()``.
Routes reach the store through ``request.app.state.mock`` rather than a dependency: a dependency costs
more per request than the lookup's own read.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.middleware import Middleware

from mock_csdlqg.config import MockSettings, get_settings
from mock_csdlqg.faults import FAULT_HEADER, FaultInjectionMiddleware
from mock_csdlqg.middleware import HEALTH_PATH, MockMiddleware
from mock_csdlqg.otp import OtpDesk, phone_of
from mock_csdlqg.personas import personas
from mock_csdlqg.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_REF,
    FieldErrorModel,
    InvalidApiKey,
    InvalidFault,
    MockProblem,
    NotFound,
    Problem,
    ValidationFailed,
    field_error,
    field_errors,
    install_problem_handlers,
    problem_responses,
)
from mock_csdlqg.statistics import StatsEngine, StatsQueryError
from mock_csdlqg.store import ResidentStore, StoreError, open_store
from mock_csdlqg.wire import (
    PERSONAL_ID_PATTERN,
    BatchGetRequest,
    BatchGetResponse,
    CongDan,
    FaultMode,
    HoGiaDinh,
    LookupRequest,
    OtpCheckRequest,
    OtpCheckResponse,
    OtpSendRequest,
    OtpSendResponse,
    Outbox,
    Persona,
    PersonaList,
    SampleList,
    ThongKeRequest,
    ThongKeResponse,
)
from vnid import PROVINCES_2025

VERSION = "1.0.0"
API_KEY_SCHEME = "ApiKey"
JSON_MEDIA_TYPE = "application/json"

_PERSONAL_ID = re.compile(PERSONAL_ID_PATTERN)
_Body = TypeVar("_Body", bound=BaseModel)


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MockState:
    """What the routes and the fault middleware share: settings, the open store, the global fault mode."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.fault_mode = FaultMode()
        self.residents = 0
        self.startup_error: str | None = None
        self.otp = OtpDesk()
        """One-time codes sent to registered mobiles (memory only) and the outbox tests read."""
        self._store: ResidentStore | None = None
        self._stats: StatsEngine | None = None

    @property
    def store(self) -> ResidentStore:
        if self._store is None:
            raise RuntimeError("the mock's store is not open (the lifespan has not run)")
        return self._store

    @property
    def stats(self) -> StatsEngine:
        if self._stats is None:
            self._stats = StatsEngine(self.store)
        return self._stats

    def attach(self, store: ResidentStore, residents: int) -> None:
        self._store, self.residents, self._stats = store, residents, None

    def detach(self) -> None:
        self._store = self._stats = None


def _state(request: Request) -> MockState:
    state: MockState = request.app.state.mock
    return state


class Liveness(BaseModel):
    status: str = "ok"


class Health(BaseModel):
    status: str = "ok"
    residents: int


# ------------------------------------------------------------------------------------- OpenAPI helpers

_FAULT_PARAMETER = {
    "name": FAULT_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Fault injection, honoured only when the mock runs with faults enabled: "
        "`latency=<ms>;status=<400-599>;malformed;wrong_id;trickle` (any subset; empty or `none`: no fault). "
        "Overrides the global mode of `PUT /_mock/faults` for this request."
    ),
    "schema": {"type": "string"},
}
_INJECTED = {
    "description": "`injected_fault`: the status a fault asked for (`Retry-After: 1` on 429 and 503)",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
}
_REQUEST_BODIES = (LookupRequest, BatchGetRequest, ThongKeRequest, OtpSendRequest, OtpCheckRequest)


def _doc(
    ok: type[BaseModel] | None,
    *problems: type[MockProblem],
    ok_description: str = "Successful Response",
    body: type[BaseModel] | None = None,
    keyed: bool = True,
    faults: bool = False,
) -> dict[str, Any]:
    """``responses=`` and ``openapi_extra=`` for a route: its answers, API key, fault header, raw body.

    ``keyed`` and ``faults`` must agree with ``requires_key`` and ``is_faultable`` (test_openapi checks).
    """
    responses: dict[int | str, dict[str, Any]] = {}
    if ok is not None:
        responses[200] = {"model": ok, "description": ok_description}
    keyed_problems = (InvalidApiKey,) if keyed else ()
    fault_problems = (InvalidFault,) if faults else ()
    responses.update(problem_responses(*keyed_problems, *problems, *fault_problems))
    extra: dict[str, Any] = {}
    if keyed:
        extra["security"] = [{API_KEY_SCHEME: []}]
    if faults:
        responses["default"] = _INJECTED
        extra["parameters"] = [_FAULT_PARAMETER]
    if body is not None:
        schema = {"$ref": f"#/components/schemas/{body.__name__}"}
        extra["requestBody"] = {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}
    return {"responses": responses, "openapi_extra": extra}


class MockApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """FastAPI's document plus what routes declare by hand: API-key scheme, problem and body schemas."""
        document = super().openapi()
        components = document.setdefault("components", {})
        components["securitySchemes"] = {
            API_KEY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "The key the mock was started with (MOCK_CSDLQG_API_KEY).",
            }
        }
        schemas = components.setdefault("schemas", {})
        for model in (Problem, FieldErrorModel, *_REQUEST_BODIES):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return document


# ------------------------------------------------------------------------------------- request bodies


def _refusal(err: ValidationError) -> ValidationFailed:
    errors = err.errors(include_url=False, include_input=False, include_context=True)
    return ValidationFailed(errors=field_errors(errors, prefix=("body",)))


def _lookup_id(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and len(doc) == 1:
        pid = doc.get("soDinhDanh")
        if isinstance(pid, str) and _PERSONAL_ID.fullmatch(pid):
            return pid
    try:  # the slow path only explains the refusal
        return LookupRequest.model_validate_json(body).soDinhDanh
    except ValidationError as err:
        raise _refusal(err) from None


def _batch_ids(body: bytes, limit: int) -> list[str]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and len(doc) == 1:
        ids = doc.get("ids")
        if (
            isinstance(ids, list)
            and 0 < len(ids) <= limit
            and all(isinstance(pid, str) and _PERSONAL_ID.fullmatch(pid) for pid in ids)
        ):
            return ids
    try:
        ids = BatchGetRequest.model_validate_json(body).ids
    except ValidationError as err:
        raise _refusal(err) from None
    errors = [
        field_error(("body", "ids", index), "string_pattern_mismatch")
        for index, pid in enumerate(ids)
        if not _PERSONAL_ID.fullmatch(pid)
    ]
    if len(ids) > limit:
        errors.insert(0, field_error(("body", "ids"), "too_long", max_length=limit))
    raise ValidationFailed(errors=errors)


# --------------------------------------------------------------------------------------------- routes

router = APIRouter()


@router.post(
    "/api/v1/residents/lookup",
    summary="One resident's full record",
    tags=["residents"],
    **_doc(
        CongDan,
        NotFound,
        ValidationFailed,
        ok_description="The record as the national database holds it",
        body=LookupRequest,
        faults=True,
    ),
)
async def lookup(request: Request) -> Response:
    """The record of the resident whose personal ID (`soDinhDanh`) is in the body; 404 when unknown."""
    pid = _lookup_id(await request.body())
    record = await _state(request).store.get(pid)
    if record is None:
        raise NotFound
    return Response(record, media_type=JSON_MEDIA_TYPE)


@router.post(
    "/api/v1/residents/batch-get",
    summary="Several residents' records",
    tags=["residents"],
    **_doc(
        BatchGetResponse,
        ValidationFailed,
        ok_description="Records in request order (each once) and the IDs not on record",
        body=BatchGetRequest,
        faults=True,
    ),
)
async def batch_get(request: Request) -> Response:
    """Up to the configured batch size (default 1000) of IDs; duplicates are answered once."""
    state = _state(request)
    wanted = list(dict.fromkeys(_batch_ids(await request.body(), state.settings.max_batch)))
    found = await state.store.get_many(wanted)
    records = b",".join(found[pid] for pid in wanted if pid in found)
    missing = orjson.dumps([pid for pid in wanted if pid not in found])
    return Response(b'{"records":[' + records + b'],"missing":' + missing + b"}", media_type=JSON_MEDIA_TYPE)


@router.get(
    "/api/v1/households/{maHo}",
    summary="A household with its members",
    tags=["households"],
    **_doc(HoGiaDinh, NotFound, ValidationFailed, ok_description="The head and every member", faults=True),
)
async def household(
    request: Request,
    household_id: Annotated[
        str, Path(alias="maHo", pattern=r"^[0-9A-Za-z_-]{1,64}$", description="the household code")
    ],
) -> Response:
    """The household (`maHo` from a resident's record); its members include the head (`chu_ho`)."""
    record = await _state(request).store.household(household_id)
    if record is None:
        raise NotFound
    return Response(record, media_type=JSON_MEDIA_TYPE)


@router.post(
    "/api/v1/statistics/population",
    summary="Raw population aggregates",
    tags=["statistics"],
    **_doc(
        ThongKeResponse,
        ValidationFailed,
        ok_description="Per non-empty cell: the count and the sum of record keys (for the cell-key method)",
        body=ThongKeRequest,
        faults=True,
    ),
)
async def population_statistics(request: Request) -> Response:
    """Counts of residents alive at `ngayTinh` living in the province (and wards), by up to three dimensions.

    Each cell also carries `tongKhoa`, the sum of its residents' record keys: a caller publishing the counts
    derives each cell's key from it (cell-key method). Record keys themselves never leave the database.
    """
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ValidationFailed(errors=[field_error(("body",), "json_invalid")]) from None
    try:
        answer = await _state(request).stats.answer(doc)
    except ValidationError as err:
        raise _refusal(err) from None
    except StatsQueryError as err:
        raise ValidationFailed(errors=[field_error(("body", *err.loc), err.code)]) from None
    return Response(orjson.dumps(answer), media_type=JSON_MEDIA_TYPE)


def _parsed(model: type[_Body], body: bytes) -> _Body:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        raise _refusal(err) from None


@router.post(
    "/api/v1/residents/otp/send",
    summary="Send a one-time code to the resident's registered mobile",
    tags=["confirmations"],
    **_doc(
        OtpSendResponse,
        NotFound,
        ValidationFailed,
        ok_description="Sent, or no mobile number on record (`ketQua`)",
        body=OtpSendRequest,
        faults=True,
    ),
)
async def otp_send(request: Request) -> Response:
    """A 6-digit code by SMS to the number on the record (`soDienThoai`), valid 5 minutes; the answer names
    the challenge (`maYeuCau`) and hides the number's middle digits. 404 when the resident is unknown."""
    body = _parsed(OtpSendRequest, await request.body())
    state = _state(request)
    record = await state.store.get(body.soDinhDanh)
    if record is None:
        raise NotFound
    phone = phone_of(orjson.loads(record))
    if phone is None:
        answer = OtpSendResponse(ketQua="khong_co_so_dien_thoai", soDinhDanh=body.soDinhDanh)
    else:
        sent = state.otp.send(body.soDinhDanh, phone, body.noiDung)
        answer = OtpSendResponse(
            ketQua="da_gui",
            soDinhDanh=body.soDinhDanh,
            maYeuCau=sent.challenge_id,
            kenh="sms",
            soDienThoaiAn=sent.destination_hint,
            hetHanLuc=_rfc3339(sent.expires_at),
        )
    return Response(answer.model_dump_json(exclude_none=True), media_type=JSON_MEDIA_TYPE)


@router.post(
    "/api/v1/residents/otp/verify",
    summary="Check a one-time code",
    tags=["confirmations"],
    **_doc(OtpCheckResponse, ValidationFailed, body=OtpCheckRequest, faults=True),
)
async def otp_verify(request: Request) -> Response:
    """Whether the code is the one sent for the challenge. A right code, 5 wrong ones or the expiry use the
    challenge up: after that every code is `hopLe: false`."""
    body = _parsed(OtpCheckRequest, await request.body())
    valid = _state(request).otp.check(body.maYeuCau, body.maXacNhan)
    return Response(b'{"hopLe":true}' if valid else b'{"hopLe":false}', media_type=JSON_MEDIA_TYPE)


@router.get(
    "/_mock/outbox",
    summary="The SMS sent to a resident's number",
    tags=["mock"],
    description="Only when the mock runs with `--faults` or `--test-outbox` (404 otherwise).",
    **_doc(Outbox, NotFound, ValidationFailed),
)
async def outbox(
    request: Request,
    personal_id: Annotated[str, Query(pattern=PERSONAL_ID_PATTERN, description="the resident")],
) -> Response:
    """Oldest first: `{"items": [{"at", "destination", "text"}]}`; the text holds the code."""
    state = _state(request)
    if not (state.settings.faults or state.settings.test_outbox):
        raise NotFound
    return Response(orjson.dumps({"items": state.otp.outbox_for(personal_id)}), media_type=JSON_MEDIA_TYPE)


@router.get(HEALTH_PATH, summary="Liveness and size", tags=["health"], **_doc(Health, keyed=False))
async def health(request: Request) -> Response:
    """No key needed, never faulted; `residents` is counted when the service starts."""
    return Response(b'{"status":"ok","residents":%d}' % _state(request).residents, media_type=JSON_MEDIA_TYPE)


@router.get("/healthz", summary="Liveness", tags=["health"], **_doc(Liveness, keyed=False))
async def healthz() -> Response:
    """Liveness of the process only; needs no key."""
    return Response(b'{"status":"ok"}', media_type=JSON_MEDIA_TYPE)


@cache
def _personas_body() -> bytes:
    items = [
        Persona(personal_id=p.personal_id, scenario=p.scenario, description=p.description) for p in personas()
    ]
    return PersonaList(items=items).model_dump_json().encode()


@router.get("/_mock/personas", summary="The scenario personas", tags=["mock"], **_doc(PersonaList))
async def list_personas() -> Response:
    """Fixed residents present after every seed, one per documented scenario."""
    return Response(_personas_body(), media_type=JSON_MEDIA_TYPE)


@router.get(
    "/_mock/sample", summary="Random resident IDs", tags=["mock"], **_doc(SampleList, ValidationFailed)
)
async def sample(
    request: Request,
    n: Annotated[int, Query(ge=1, le=1000, description="how many IDs")] = 10,
    province: Annotated[
        str | None, Query(pattern=r"^[0-9]{2}$", description="2025 province code of the current residence")
    ] = None,
    seed: Annotated[int | None, Query(description="the same seed gives the same sample")] = None,
) -> Response:
    """IDs for tests and benchmarks; `province` filters on the current residence (2025 code)."""
    if province is not None and province not in PROVINCES_2025:
        raise ValidationFailed(errors=[field_error(("query", "province"), "unknown_province")])
    rng = random.Random(seed) if seed is not None else random.Random()  # noqa: S311 - test data, not secrets
    items = await _state(request).store.sample(n, province, rng)
    return Response(orjson.dumps({"items": items}), media_type=JSON_MEDIA_TYPE)


async def _fault_control(request: Request) -> MockState:
    """The fault endpoints exist only when faults are enabled."""
    state = _state(request)
    if not state.settings.faults:
        raise NotFound
    return state


FaultControl = Annotated[MockState, Depends(_fault_control)]
_FAULTS_DOC = "Only when the mock runs with faults enabled (404 otherwise)."


@router.get("/_mock/faults", summary="The global fault mode", tags=["mock"], **_doc(FaultMode, NotFound))
async def get_faults(state: FaultControl) -> FaultMode:
    """The mode applied to requests that send no `X-Mock-Fault`. Only when faults are enabled (404 otherwise)."""
    return state.fault_mode


@router.put(
    "/_mock/faults",
    summary="Set the global fault mode",
    tags=["mock"],
    description=f"Members left out are off. {_FAULTS_DOC}",
    **_doc(FaultMode, NotFound, ValidationFailed),
)
async def put_faults(state: FaultControl, mode: FaultMode) -> FaultMode:
    state.fault_mode = mode
    return mode


@router.delete(
    "/_mock/faults",
    summary="Clear the global fault mode",
    tags=["mock"],
    status_code=204,
    description=_FAULTS_DOC,
    **_doc(None, NotFound),
)
async def delete_faults(state: FaultControl) -> Response:
    state.fault_mode = FaultMode()
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------- the app


def create_app(settings: MockSettings | None = None) -> FastAPI:
    """The mock service; its lifespan opens the store named by ``settings.database_url``."""
    if settings is None:
        settings = get_settings()
    if settings.api_key is None:
        raise ValueError("the mock needs an API key (MOCK_CSDLQG_API_KEY; `mock-csdlqg serve` makes one)")
    state = MockState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            store = await open_store(settings.database_url)
        except StoreError as err:
            state.startup_error = f"mock-csdlqg cannot start: {err}"
            raise
        try:
            state.attach(store, await store.count())
            yield
        finally:
            state.detach()
            await store.close()

    api_key = settings.api_key.get_secret_value()
    middleware = [Middleware(MockMiddleware, api_key=api_key, startup_error=lambda: state.startup_error)]
    if settings.faults:
        middleware.append(Middleware(FaultInjectionMiddleware, source=state))
    app = MockApp(
        title="Mock CSDLQG về dân cư",
        version=VERSION,
        description=(
            "A province-scale stand-in for Vietnam's national population database, with Vietnamese wire "
            "names. Callers send `X-Api-Key` everywhere under `/api` and `/_mock` except `/api/v1/health`. "
            "Errors are `application/problem+json`. Fault injection (`X-Mock-Fault`, `/_mock/faults`) works "
            "only when the mock runs with faults enabled."
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        middleware=middleware,
        separate_input_output_schemas=False,
        # The routes themselves, not include_router(): an included router is matched through one more
        # layer per request (about 8 µs here), and the lookup is the first route tried.
        routes=router.routes,
    )
    app.state.mock = state
    install_problem_handlers(app)
    return app


def openapi_document() -> dict[str, Any]:
    """The published contract (``openapi/csdlqg.json``), built with neither a database nor the environment."""
    settings = MockSettings.model_construct(api_key=SecretStr("openapi-export"), faults=True)
    return create_app(settings).openapi()
