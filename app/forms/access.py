"""Prefill: a form's values from the resident's record, limited to what the client's grant allows.

``POST /v1/citizens/prefill`` (scope ``citizen.read``) is a lookup whose fields come from a form template: the
``X-Purpose`` must be the form's purpose (and in the grant, and registered), the request counts against the
client's rate and distinct-resident quota like a lookup, a resident outside the grant's provinces is answered as
unknown, and every outcome is an audit event ``citizen.prefill`` naming the resident and the fields released (or,
for a refusal, the fields the form asks for), committed before the answer.

A value whose source field the grant does not hold is null and its name is listed in ``withheld``; an item
without a source (filled by hand) is null and not withheld.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.writer import AuditContext, AuditEvent, AuditWriter, Outcome
from app.auth.context import AuthContext
from app.backends.base import RESIDENCE_FIELDS, Backend
from app.citizens.errors import EndUserRequired, PurposeNotAllowed, PurposeRequired, SubjectQuotaExceeded
from app.citizens.limits import Limiter, seconds_to_utc_midnight
from app.errors import GatewayError, InvalidPersonalId, NotFound
from app.forms.models import FormTemplate
from app.forms.service import active_form
from app.forms.sources import field_of, read_source, write
from vnid import InvalidPersonalId as _BadId
from vnid import parse_personal_id

PREFILL = "citizen.prefill"
UNKNOWN_EN = "No resident with this personal ID is available to this client."
UNKNOWN_VI = "Không có công dân nào với số định danh này trong phạm vi được cấp."


@dataclass(frozen=True, slots=True)
class FormCall:
    """Who asks, for what: built once per request by the router (the purpose is not checked yet)."""

    auth: AuthContext
    purpose: str | None
    purpose_registered: bool
    """Whether ``purpose`` is a registered purpose (as the access cache holds them)."""
    dossier_id: str | None
    request_id: str | None
    issuer: str
    end_user: str | None = None
    """``X-End-User`` as the route validated it."""
    client_ip: str | None = None


def subject_of(personal_id: str) -> str | None:
    """A structurally valid ID, or None (never store arbitrary input in an event)."""
    try:
        return parse_personal_id(personal_id).number
    except _BadId:
        return None


def form_fields(form: FormTemplate) -> tuple[str, ...]:
    """The resident fields a form reads (``personal_id`` aside: always returned, never counted as released)."""
    found = {field_of(f["source"]) for f in form.fields if f.get("source")}
    return tuple(sorted(found - {"personal_id"}))


class Events:
    """The events of one request, written together before the answer leaves."""

    def __init__(self, writer: AuditWriter, call: FormCall, action: str) -> None:
        self.writer = writer
        self.call = AuditContext.of_client(
            call.auth.client_id,
            call.request_id,
            purpose=call.purpose if call.purpose and len(call.purpose) <= 64 else None,
            dossier_id=call.dossier_id,
            end_user=call.end_user,
            client_ip=call.client_ip,
        )
        self.action = action
        self.events: list[AuditEvent] = []

    def add(
        self,
        outcome: Outcome,
        status: int,
        *,
        subject: str | None,
        fields: Sequence[str] = (),
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        action: str | None = None,
        subject_ref: str | None = None,
    ) -> None:
        self.events.append(
            self.call.event(
                action or self.action,
                outcome,
                status,
                subject=subject,
                subject_ref=subject_ref,
                fields=fields,
                reason=reason,
                detail=detail,
            )
        )

    def refused(
        self,
        error: GatewayError,
        *,
        subject: str | None,
        fields: Sequence[str] = (),
        detail: dict[str, Any] | None = None,
        subject_ref: str | None = None,
    ) -> None:
        self.events.append(
            self.call.refusal(
                self.action, error, subject=subject, subject_ref=subject_ref, fields=fields, detail=detail
            )
        )

    async def finish(self) -> None:
        await self.writer.write(self.events)


class FormAccess:
    """Prefill on behalf of one client."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: Backend,
        limiter: Limiter,
        audit: AuditWriter,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.backend = backend
        self.limiter = limiter
        self.audit = audit

    async def checked_form(
        self, call: FormCall, events: Events, personal_id: str, code: str
    ) -> tuple[FormTemplate, str]:
        """The active form ``code`` and the resident's ID, once the purpose is the form's, granted and
        registered, and the ID well formed; each refusal is recorded in ``events`` and raised."""
        subject = subject_of(personal_id)
        try:
            async with self.sessionmaker() as session:
                form = await active_form(session, code)
        except GatewayError as missing:
            events.refused(missing, subject=subject, detail={"form": code})
            raise
        detail = {"form": form.code}
        error: GatewayError | None = None
        if not call.purpose:
            error = PurposeRequired()
        elif (
            call.purpose != form.purpose
            or call.purpose not in call.auth.grant.purposes
            or not call.purpose_registered
        ):
            error = PurposeNotAllowed(
                "The purpose is not the form's, or not registered, or not in this client's grant.",
                detail_vi="Mục đích sử dụng không phải của mẫu tờ khai, chưa đăng ký hoặc không thuộc quyền được cấp.",
            )
        elif call.auth.grant.lacks_end_user(call.end_user):
            error = EndUserRequired()
        elif subject is None:
            error = InvalidPersonalId()
        if error is not None:
            events.refused(error, subject=subject, fields=form_fields(form), detail=detail)
            raise error
        assert subject is not None  # noqa: S101 - checked above (mypy)
        return form, subject

    async def admit(self, call: FormCall, subject: str) -> None:
        """Count the request against the rate and the resident against the distinct quota (429 beyond)."""
        grant = call.auth.grant
        (within,) = await self.limiter.admit(
            call.auth.client_id,
            grant.rate_limit_per_minute,
            [self.audit.hasher.ref(subject)],
            grant.distinct_subjects_per_day,
        )
        if not within:
            raise SubjectQuotaExceeded(seconds_to_utc_midnight())

    async def prefill(self, call: FormCall, personal_id: str, code: str) -> dict[str, Any]:
        events = Events(self.audit, call, PREFILL)
        subject: str | None = subject_of(personal_id)
        wanted: tuple[str, ...] = ()
        detail: dict[str, Any] = {"form": code}
        try:
            form, subject = await self.checked_form(call, events, personal_id, code)
            wanted = form_fields(form)
            grant = call.auth.grant
            released = tuple(f for f in wanted if f in grant.fields)
            await self.admit(call, subject)
            record = await self.backend.get(subject, (*released, *RESIDENCE_FIELDS))
            if record is None:
                events.add("allowed", 404, subject=subject, reason="not_found", detail=detail)
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            if not grant.covers_province(record.province):
                events.add(
                    "denied", 404, subject=subject, fields=wanted, reason="out_of_scope", detail=detail
                )
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            values: dict[str, Any] = {}
            withheld: list[str] = []
            for item in form.fields:
                source = item.get("source")
                if source is None:
                    values[item["name"]] = None
                elif field_of(source) != "personal_id" and field_of(source) not in grant.fields:
                    values[item["name"]] = None
                    withheld.append(item["name"])
                else:
                    value = read_source(record.fields, record.personal_id, source)
                    values[item["name"]] = write(value, item.get("format"))
            events.add(
                "allowed",
                200,
                subject=subject,
                fields=released,
                detail={"form": form.code, "withheld": withheld},
            )
            return {
                "form": form.code,
                "values": values,
                "withheld": withheld,
                "_meta": {
                    "source": record.source,
                    "retrieved_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "record_updated_at": record.record_updated_at,
                },
            }
        except GatewayError as error:
            if not events.events:
                events.refused(error, subject=subject, fields=wanted, detail=detail)
            raise
        finally:
            await events.finish()
