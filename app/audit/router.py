"""HTTP for the auditor API (``/v1/audit/...``): parse, name the reader, delegate to ``AuditService``.

Scope ``audit.read`` everywhere, except the subject report (``audit.read`` or ``audit.subject_report``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from app.audit.dependencies import AuditServiceDep
from app.audit.errors import AuditUnavailable
from app.audit.export import ENCODERS, attachment
from app.audit.schemas import (
    Event,
    EventPage,
    ExportFormat,
    ExportRequest,
    GroupBy,
    SearchRequest,
    Stats,
    SubjectReport,
    SubjectReportRequest,
    Timestamp,
)
from app.audit.service import Reader
from app.auth.context import AuthContext
from app.auth.dependencies import AuditReader, SubjectReportReader
from app.db import utcnow
from app.errors import InsufficientScope, InvalidPersonalId, InvalidToken, NotFound, ValidationFailed
from app.problems import problem_responses, request_id_of
from app.routing import GatewayRoute

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=GatewayRoute)

COMMON_ERRORS = (InvalidToken, InsufficientScope, ValidationFailed, AuditUnavailable)


def _reader(request: Request, auth: AuthContext) -> Reader:
    return Reader(client_id=auth.client_id, request_id=request_id_of(request))


@router.post(
    "/events/search",
    response_model=EventPage,
    responses=problem_responses(*COMMON_ERRORS, InvalidPersonalId),
)
async def search_events(
    body: SearchRequest, request: Request, auth: AuditReader, service: AuditServiceDep
) -> dict[str, Any]:
    """Events matching every filter given, by ``seq`` (ascending unless ``order`` is ``desc``), a page at a
    time; ``personal_id`` is matched through every subject key, past ones included."""
    return await service.search(_reader(request, auth), body)


@router.get(
    "/events/{event_id}",
    response_model=Event,
    responses=problem_responses(*COMMON_ERRORS, NotFound),
)
async def get_event(
    event_id: Annotated[str, Path(max_length=64)],
    request: Request,
    auth: AuditReader,
    service: AuditServiceDep,
) -> dict[str, Any]:
    """One event, by its ``event_id``."""
    return await service.event(_reader(request, auth), event_id)


_EXPORT_CONTENT = {
    encoder.media_type.split(";")[0]: {"schema": {"type": "string"}} for encoder in ENCODERS.values()
}


@router.post(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"description": "Every matching event, streamed, as an attachment.", "content": _EXPORT_CONTENT},
        **problem_responses(*COMMON_ERRORS, InvalidPersonalId),
    },
)
async def export_events(
    body: ExportRequest,
    request: Request,
    auth: AuditReader,
    service: AuditServiceDep,
    export_format: Annotated[
        ExportFormat, Query(alias="format", description="`ndjson` (one event per line) or `csv`")
    ] = "ndjson",
) -> StreamingResponse:
    """Every event matching the search filters, unpaged and streamed (``limit`` and ``cursor`` are 422).

    NDJSON, or CSV with a header row and a UTF-8 byte order mark (list and object members as JSON text).
    """
    encoder = ENCODERS[export_format]
    stream = await service.export(_reader(request, auth), body, encoder)
    return StreamingResponse(
        stream,
        media_type=encoder.media_type,
        headers={"Content-Disposition": attachment(encoder, utcnow())},
    )


@router.get("/stats", response_model=Stats, responses=problem_responses(*COMMON_ERRORS))
async def stats(
    request: Request,
    auth: AuditReader,
    service: AuditServiceDep,
    group_by: Annotated[GroupBy, Query(description="what to count events by; `day` is the UTC date")],
    since: Annotated[Timestamp | None, Query(description="inclusive, RFC 3339 with a time zone")] = None,
    until: Annotated[Timestamp | None, Query(description="exclusive, RFC 3339 with a time zone")] = None,
) -> dict[str, Any]:
    """How many events per client, purpose, outcome, action or UTC day, every group at once."""
    return await service.stats(_reader(request, auth), group_by, since, until)


@router.post(
    "/subject-report",
    response_model=SubjectReport,
    responses=problem_responses(*COMMON_ERRORS, InvalidPersonalId),
)
async def subject_report(
    body: SubjectReportRequest, request: Request, auth: SubjectReportReader, service: AuditServiceDep
) -> dict[str, Any]:
    """A resident's access report, newest first: when, which client, for which purpose (title and legal
    basis), which fields, which dossier, and the outcome. Citizen-data events only."""
    return await service.subject_report(_reader(request, auth), body)
