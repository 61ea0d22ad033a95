"""Confirmation of a declaration by a one-time code sent to the resident's registered mobile.

Most residents hold no personal digital signature. Instead, the population database sends a 6-digit code to the
mobile number on the resident's record; the resident types it into the portal, the portal passes it on, the
database says whether it is right, and the gateway issues a receipt (a compact JWS, ``typ: confirmation+jwt``,
signed by a key of its JWKS) binding the document's SHA-256 to the resident, the form, the client, the purpose
and the time. The gateway never generates, stores or logs a code; it runs the flow around it:

- a confirmation lives 5 minutes from the last code sent (``EXPIRY``), then answers 410 ``confirmation_expired``;
- at most 5 codes are checked (``MAX_ATTEMPTS``): a wrong one is 400 ``confirmation_code_invalid`` with
  ``attempts_left``, the fifth wrong one and any code after it 423 ``confirmation_locked``;
- a code may be sent again at most 3 times (``MAX_RESENDS``), 60 seconds apart (``RESEND_SPACING``), else 429
  ``rate_limited`` with ``Retry-After``;
- a confirmation is its client's: another client's is 404 ``not_found``.

Each state change commits (in a transaction of its own, conditional on the state it was judged on, so two
requests racing for the last attempt cannot both use it) before the audit event that records it is written;
every step, allowed or refused, is an event (``confirmation.start``, ``confirmation.complete``,
``confirmation.resend``) naming the resident by ``subject_ref``. The resident's personal ID is kept only while the
confirmation is pending (the receipt names it) and erased when it ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.writer import AuditWriter
from app.backends.base import RESIDENCE_FIELDS, Backend
from app.backends.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.citizens.errors import EndUserRequired
from app.citizens.limits import Limiter
from app.db import new_uuid, utcnow
from app.errors import GatewayError, NotFound
from app.forms.access import (
    UNKNOWN_EN,
    UNKNOWN_VI,
    Events,
    FormAccess,
    FormCall,
    subject_of,
)
from app.forms.errors import (
    ConfirmationCodeInvalid,
    ConfirmationDone,
    ConfirmationExpired,
    ConfirmationLocked,
    ConfirmationNotFound,
    ResendRefused,
)
from app.forms.models import FormConfirmation

START: Final = "confirmation.start"
COMPLETE: Final = "confirmation.complete"
RESEND: Final = "confirmation.resend"
EXPIRY: Final = timedelta(minutes=5)
MAX_ATTEMPTS: Final = 5
MAX_RESENDS: Final = 3
RESEND_SPACING: Final = timedelta(seconds=60)
METHOD: Final = "otp_registered_mobile"
RECEIPT_TYP: Final = "confirmation+jwt"
CODE_DIGITS: Final = 6
_UPSTREAM = (UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable)


class Signer(Protocol):
    """Signs compact JWS with a key published in the JWKS (``app.auth.keys.KeyStore``)."""

    async def sign_jws(self, claims: Mapping[str, Any], typ: str) -> str: ...


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _about(form: str, client_name: str) -> str:
    """What the SMS says the code confirms: the form and who asks (at most 120 characters)."""
    return f"{form} ({client_name})"[:120]


class Confirmations:
    """The confirmation flow on behalf of one client."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: Backend,
        limiter: Limiter,
        audit: AuditWriter,
        signer: Signer,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.backend = backend
        self.limiter = limiter
        self.audit = audit
        self.signer = signer
        self.access = FormAccess(sessionmaker, backend, limiter, audit)

    # ------------------------------------------------------------------------------------------- start
    async def start(
        self, call: FormCall, personal_id: str, form_code: str, document_sha256: str
    ) -> dict[str, Any]:
        events = Events(self.audit, call, START)
        subject = subject_of(personal_id)
        detail: dict[str, Any] = {"form": form_code}
        try:
            form, subject = await self.access.checked_form(call, events, personal_id, form_code)
            await self.access.admit(call, subject)
            record = await self.backend.get(subject, RESIDENCE_FIELDS)
            if record is None:
                events.add("allowed", 404, subject=subject, reason="not_found", detail=detail)
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            if not call.auth.grant.covers_province(record.province):
                events.add("denied", 404, subject=subject, reason="out_of_scope", detail=detail)
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            sent = await self.backend.send_code(subject, _about(form.code, call.auth.client_name))
            if sent is None:  # gone between the two calls
                events.add("allowed", 404, subject=subject, reason="not_found", detail=detail)
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            now = utcnow()
            row = FormConfirmation(
                confirmation_id=new_uuid(),
                client_id=call.auth.client_id,
                personal_id=subject,
                subject_ref=self.audit.hasher.ref(subject),
                form=form.code,
                document_sha256=document_sha256.lower(),
                purpose=form.purpose,
                dossier_id=call.dossier_id,
                end_user=call.end_user,
                challenge_id=sent.challenge_id,
                destination_hint=sent.destination_hint,
                status="pending",
                attempts=0,
                resends=0,
                created_at=now,
                last_sent_at=now,
                expires_at=now + EXPIRY,
                confirmed_at=None,
            )
            async with self.sessionmaker() as session:
                await _expire_abandoned(session, now)
                session.add(row)
                await session.commit()
            detail["confirmation_id"] = row.confirmation_id
            events.add("allowed", 201, subject=subject, detail=detail, subject_ref=row.subject_ref)
            return _pending(row)
        except GatewayError as error:
            if not events.events:
                events.refused(error, subject=subject, detail=detail)
            raise
        finally:
            await events.finish()

    # ---------------------------------------------------------------------------------------- complete
    async def complete(self, call: FormCall, confirmation_id: str, code: str) -> dict[str, Any]:
        events = Events(self.audit, call, COMPLETE)
        detail: dict[str, Any] = {"confirmation_id": confirmation_id}
        ref: str | None = None
        try:
            row = await self._own(call, confirmation_id)
            ref = row.subject_ref
            detail["form"] = row.form
            events.call = replace(
                events.call, purpose=row.purpose, dossier_id=row.dossier_id
            )  # the confirmation's
            if call.auth.grant.lacks_end_user(call.end_user):
                raise EndUserRequired()
            await self.limiter.hit_request(call.auth.client_id, call.auth.grant.rate_limit_per_minute)
            await self._still_pending(row)
            attempts = await self._take_attempt(row)
            try:
                right = len(code) == CODE_DIGITS and code.isascii() and code.isdigit()
                right = right and await self.backend.check_code(row.challenge_id, code)
            except _UPSTREAM:
                await self._give_back_attempt(row)
                raise
            if not right:
                if attempts >= MAX_ATTEMPTS:
                    await self._end(row, "locked")
                    raise ConfirmationLocked()
                raise ConfirmationCodeInvalid(MAX_ATTEMPTS - attempts)
            now = utcnow()
            if not await self._end(row, "confirmed", now):
                raise ConfirmationDone()  # another request confirmed it meanwhile
            receipt = await self.signer.sign_jws(
                {
                    "iss": call.issuer,
                    "confirmation_id": row.confirmation_id,
                    "personal_id": row.personal_id,
                    "form": row.form,
                    "document_sha256": row.document_sha256,
                    "method": METHOD,
                    "client_id": row.client_id,
                    "purpose": row.purpose,
                    "dossier_id": row.dossier_id,
                    "end_user": row.end_user,
                    "iat": int(now.timestamp()),
                },
                RECEIPT_TYP,
            )
            events.add("allowed", 200, subject=None, subject_ref=ref, detail={**detail, "attempts": attempts})
            return {"status": "confirmed", "receipt": receipt}
        except GatewayError as error:
            events.refused(error, subject=None, subject_ref=ref, detail=detail)
            raise
        finally:
            await events.finish()

    # ------------------------------------------------------------------------------------------ resend
    async def resend(self, call: FormCall, confirmation_id: str) -> dict[str, Any]:
        events = Events(self.audit, call, RESEND)
        detail: dict[str, Any] = {"confirmation_id": confirmation_id}
        ref: str | None = None
        try:
            row = await self._own(call, confirmation_id)
            ref = row.subject_ref
            detail["form"] = row.form
            events.call = replace(
                events.call, purpose=row.purpose, dossier_id=row.dossier_id
            )  # the confirmation's
            if call.auth.grant.lacks_end_user(call.end_user):
                raise EndUserRequired()
            await self.limiter.hit_request(call.auth.client_id, call.auth.grant.rate_limit_per_minute)
            await self._still_pending(row)
            now = utcnow()
            if row.resends >= MAX_RESENDS:
                raise ResendRefused(_seconds(row.expires_at - now), too_many=True)
            wait = row.last_sent_at + RESEND_SPACING - now
            if wait > timedelta(0):
                raise ResendRefused(_seconds(wait), too_many=False)
            async with self.sessionmaker() as session:
                taken = await session.execute(
                    update(FormConfirmation)
                    .where(
                        FormConfirmation.confirmation_id == row.confirmation_id,
                        FormConfirmation.status == "pending",
                        FormConfirmation.resends == row.resends,
                    )
                    .values(resends=row.resends + 1, last_sent_at=now)
                )
                await session.commit()
            if taken.rowcount != 1:  # type: ignore[attr-defined]  # another resend won the race
                raise ResendRefused(_seconds(RESEND_SPACING), too_many=False)
            assert row.personal_id is not None  # noqa: S101 - pending rows hold it
            sent = await self.backend.send_code(row.personal_id, _about(row.form, call.auth.client_name))
            if sent is None:
                raise NotFound(UNKNOWN_EN, detail_vi=UNKNOWN_VI)
            row.challenge_id, row.destination_hint = sent.challenge_id, sent.destination_hint
            row.last_sent_at, row.expires_at, row.resends = now, now + EXPIRY, row.resends + 1
            async with self.sessionmaker() as session:
                await session.execute(
                    update(FormConfirmation)
                    .where(FormConfirmation.confirmation_id == row.confirmation_id)
                    .values(
                        challenge_id=sent.challenge_id,
                        destination_hint=sent.destination_hint,
                        expires_at=row.expires_at,
                    )
                )
                await session.commit()
            events.add(
                "allowed", 200, subject=None, subject_ref=ref, detail={**detail, "resends": row.resends}
            )
            return _pending(row)
        except GatewayError as error:
            events.refused(error, subject=None, subject_ref=ref, detail=detail)
            raise
        finally:
            await events.finish()

    # ----------------------------------------------------------------------------------------- helpers
    async def _own(self, call: FormCall, confirmation_id: str) -> FormConfirmation:
        async with self.sessionmaker() as session:
            row = await session.get(FormConfirmation, confirmation_id)
        if row is None or row.client_id != call.auth.client_id:
            raise ConfirmationNotFound()
        return row

    async def _still_pending(self, row: FormConfirmation) -> None:
        """Refuse a confirmation that has ended (or whose time ran out now, which ends it)."""
        if row.status == "confirmed":
            raise ConfirmationDone()
        if row.status == "locked":
            raise ConfirmationLocked()
        if row.status == "expired":
            raise ConfirmationExpired()
        if utcnow() >= row.expires_at:
            await self._end(row, "expired")
            raise ConfirmationExpired()

    async def _take_attempt(self, row: FormConfirmation) -> int:
        """Count one code checked; the number counted so far, or 423 when none is left (or it ended)."""
        async with self.sessionmaker() as session:
            taken = await session.execute(
                update(FormConfirmation)
                .where(
                    FormConfirmation.confirmation_id == row.confirmation_id,
                    FormConfirmation.status == "pending",
                    FormConfirmation.attempts < MAX_ATTEMPTS,
                )
                .values(attempts=FormConfirmation.attempts + 1)
                .returning(FormConfirmation.attempts)
            )
            attempts = taken.scalar_one_or_none()
            await session.commit()
        if attempts is None:
            fresh = await self._reload(row)
            if fresh.status == "confirmed":
                raise ConfirmationDone()
            raise ConfirmationLocked()
        return int(attempts)

    async def _give_back_attempt(self, row: FormConfirmation) -> None:
        """The database did not answer: the attempt did not happen."""
        async with self.sessionmaker() as session:
            await session.execute(
                update(FormConfirmation)
                .where(
                    FormConfirmation.confirmation_id == row.confirmation_id,
                    FormConfirmation.status == "pending",
                    FormConfirmation.attempts > 0,
                )
                .values(attempts=FormConfirmation.attempts - 1)
            )
            await session.commit()

    async def _end(self, row: FormConfirmation, status: str, at: datetime | None = None) -> bool:
        """Move a pending confirmation to ``status`` and erase the personal ID; False when it was no longer
        pending."""
        values: dict[str, Any] = {"status": status, "personal_id": None}
        if status == "confirmed":
            values["confirmed_at"] = at
        async with self.sessionmaker() as session:
            done = await session.execute(
                update(FormConfirmation)
                .where(
                    FormConfirmation.confirmation_id == row.confirmation_id,
                    FormConfirmation.status == "pending",
                )
                .values(**values)
            )
            await session.commit()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def _reload(self, row: FormConfirmation) -> FormConfirmation:
        async with self.sessionmaker() as session:
            fresh = await session.get(FormConfirmation, row.confirmation_id)
        assert fresh is not None  # noqa: S101 - rows are never deleted
        return fresh


async def _expire_abandoned(session: AsyncSession, now: datetime) -> None:
    """End the pending confirmations whose time ran out, erasing their personal IDs (nobody came back)."""
    await session.execute(
        update(FormConfirmation)
        .where(FormConfirmation.status == "pending", FormConfirmation.expires_at <= now)
        .values(status="expired", personal_id=None)
    )


def _pending(row: FormConfirmation) -> dict[str, Any]:
    return {
        "confirmation_id": row.confirmation_id,
        "status": "pending",
        "channel": "sms",
        "destination_hint": row.destination_hint,
        "expires_at": _rfc3339(row.expires_at),
    }


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
