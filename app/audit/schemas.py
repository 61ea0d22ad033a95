"""Request and response bodies of the auditor API (docs/contract.md, Audit), and the one view of an event.

Timestamps in filters are RFC 3339 strings with a time zone (a naive one is 422 ``timezone_aware``; a bare
date or a Unix number is 422 ``datetime_parsing``). Every answer gives ``at`` in UTC with ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from app.audit.checkpoints import Checkpoint
from app.audit.integrity import Problem
from app.audit.models import AuditEventRow
from app.inputs import RequestModel, in_range_utc

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 50
CURSOR_MAX_LENGTH: Final = 512

Order = Literal["asc", "desc"]
Outcome = Literal["allowed", "denied", "error"]
GroupBy = Literal["client", "purpose", "outcome", "action", "day"]
ExportFormat = Literal["ndjson", "csv"]

# The zone is optional here so that a naive timestamp reaches AwareDatetime and is refused as
# `timezone_aware` (a precise message) rather than as an unreadable timestamp.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?")


def _rfc3339_text(value: object) -> object:
    """Only RFC 3339 text: pydantic alone would also take Unix numbers and bare dates."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError("datetime_parsing", "Expected an RFC 3339 timestamp.")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(in_range_utc)]
"""An RFC 3339 timestamp with a time zone (any offset; compared in UTC), within the years 1900-9999 in UTC
(422 ``datetime_out_of_range`` beyond: ``0001-01-01T00:00:00+14:00`` has no UTC form at all)."""


def rfc3339(value: datetime) -> str:
    """``2026-11-26T10:00:00.123456Z``: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Request(RequestModel):
    """Unknown members are refused (no mass assignment); the input never comes back in an error; no control
    characters in any text (app.inputs)."""


class EventFilter(_Request):
    """The search filters and ``order``: what search and export share."""

    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    personal_id: str | None = Field(
        default=None, max_length=64, description="12 ASCII digits; matched through every subject key"
    )
    purpose: str | None = Field(default=None, min_length=1, max_length=64, description="purpose code")
    action: str | None = Field(default=None, min_length=1, max_length=64, description="e.g. citizen.read")
    outcome: Outcome | None = None
    end_user: str | None = Field(
        default=None, min_length=1, max_length=128, description="the X-End-User given"
    )
    client_ip: str | None = Field(
        default=None, min_length=1, max_length=45, description="IPv4 or IPv6 address"
    )
    dossier_id: str | None = Field(default=None, min_length=1, max_length=64)
    actor: str | None = Field(
        default=None, min_length=1, max_length=64, description="a client_id, `cli` or `op:<username>`"
    )
    job_id: str | None = Field(default=None, min_length=1, max_length=64)
    since: Timestamp | None = Field(default=None, description="inclusive, RFC 3339 with a time zone")
    until: Timestamp | None = Field(default=None, description="exclusive, RFC 3339 with a time zone")
    order: Order = Field(default="asc", description="by seq")


class ExportRequest(EventFilter):
    """The search filters and ``order``; an export is unpaged, so ``limit`` and ``cursor`` are refused."""


class SearchRequest(EventFilter):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(
        default=None, min_length=1, max_length=CURSOR_MAX_LENGTH, description="next_cursor of the last page"
    )


class SubjectReportRequest(_Request):
    personal_id: str = Field(max_length=64, description="12 ASCII digits")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=CURSOR_MAX_LENGTH)


class Event(BaseModel):
    """One stored event; ``hash`` covers every other member."""

    event_id: str
    seq: int
    at: str = Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, UTC, with Z")
    request_id: str | None
    client_id: str | None
    actor: str
    action: str
    purpose: str | None
    dossier_id: str | None
    subject_ref: str | None = Field(description="keyed hash (HMAC) of the personal ID, never the ID")
    fields: list[str]
    sensitive_fields: list[str]
    outcome: Outcome
    status_code: int
    reason: str | None
    detail: dict[str, Any] | None
    end_user: str | None = Field(description="the caller's X-End-User (format 2; null before)")
    client_ip: str | None = Field(description="the caller's address (format 2; null before)")
    job_id: str | None = Field(description="the bulk job the event belongs to (format 2)")
    format: int = Field(description="the canonical form's version the hash covers (docs/audit-format.md)")
    prev_hash: str | None
    hash: str | None


EVENT_COLUMNS: Final = tuple(Event.model_fields)
"""The members of an event, in the contract's order (also the CSV header)."""


def event_view(row: AuditEventRow) -> dict[str, Any]:
    """A stored event as the API shows it (JSON-ready)."""
    return {
        "event_id": row.event_id,
        "seq": row.seq,
        "at": rfc3339(row.at),
        "request_id": row.request_id,
        "client_id": row.client_id,
        "actor": row.actor,
        "action": row.action,
        "purpose": row.purpose,
        "dossier_id": row.dossier_id,
        "subject_ref": row.subject_ref,
        "fields": list(row.fields or ()),
        "sensitive_fields": list(row.sensitive_fields or ()),
        "outcome": row.outcome,
        "status_code": row.status_code,
        "reason": row.reason,
        "detail": row.detail,
        "end_user": row.end_user,
        "client_ip": row.client_ip,
        "job_id": row.job_id,
        "format": row.format,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(description="pass it back as `cursor` for the next page; null at the end")


class StatsItem(BaseModel):
    key: str | None = Field(
        description="client_id, purpose code, outcome, action or UTC date YYYY-MM-DD; null for events "
        "without one (e.g. no purpose)"
    )
    count: int


class Stats(BaseModel):
    items: list[StatsItem]


class SubjectReportItem(BaseModel):
    at: str = Field(json_schema_extra={"format": "date-time"}, description="RFC 3339, UTC, with Z")
    client_id: str | None
    client_name: str | None = Field(description="null when the client is no longer registered")
    action: Literal[
        "citizen.verify",
        "citizen.read",
        "household.read",
        "citizen.prefill",
        "confirmation.start",
        "confirmation.complete",
        "confirmation.resend",
    ]
    purpose: str | None
    purpose_title: str | None = Field(description="Vietnamese; null when the purpose is not registered")
    legal_basis: str | None
    fields: list[str]
    dossier_id: str | None
    outcome: Outcome


class SubjectReport(BaseModel):
    items: list[SubjectReportItem]
    next_cursor: str | None


class IntegrityOut(BaseModel):
    ok: bool
    checked: int = Field(description="events found intact: all of them, or those before `first_bad_seq`")
    first_bad_seq: int | None
    problem: Problem | None = Field(
        description="`modified`, `deleted`, `inserted`, `reordered`, `truncated`, `rewritten` or "
        "`bad_checkpoint_signature` (docs/audit-format.md); null when `ok`"
    )
    checkpoint_seq: int | None = Field(
        description="the `seq` of the latest signed checkpoint checked against"
    )


class CheckpointOut(BaseModel):
    log_id: str
    seq: int
    hash: str
    at: str = Field(description="RFC 3339 UTC with six fraction digits, exactly as signed")
    kid: str = Field(description="the checkpoint key in /.well-known/jwks.json")
    jws: str = Field(description="compact JWS (ES256, typ checkpoint+jwt) over the other members")

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointOut:
        return cls.model_validate(checkpoint.document())
