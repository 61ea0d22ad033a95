"""Citizen use cases: verify, batch verify, lookup, household.

Every request that gets this far (an authenticated client) leaves audit events, written and committed
before the answer is returned, whether the request is allowed, denied or fails: the ``_Audit`` collector
gathers them while the use case runs and ``finish`` writes them, also on the error path. If they cannot be
written the caller gets 503 ``audit_unavailable`` and no data.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from app.audit.writer import AuditContext, AuditEvent, AuditWriter, Outcome, SubjectHasher
from app.auth.context import AuthContext, Grant
from app.backends.base import (
    RESIDENCE_FIELDS,
    RESIDENT_FIELDS,
    VERIFY_FIELDS,
    Backend,
    Household,
    ResidentRecord,
)
from app.backends.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.citizens import matching
from app.citizens.errors import (
    BatchTooLarge,
    FieldNotAllowed,
    SubjectQuotaExceeded,
    VerificationAttemptsExceeded,
)
from app.citizens.limits import Limiter, seconds_to_utc_midnight
from app.citizens.schemas import HouseholdRequest, LookupRequest, VerifyRequest
from app.db import new_uuid
from app.errors import GatewayError, InvalidPersonalId, NotFound, ValidationFailed
from app.frozen import frozen
from app.problems import Language, problem_type
from vnid import InvalidPersonalId as _BadId
from vnid import PersonalId, parse_personal_id

MEMBER_FIELDS = ("full_name", "relation_to_head")
VERIFY_CHECKED = ("full_name", "date_of_birth", "gender")
"""The fields a verification may supply for checking, in the order events and attestations list them."""
RESIDENT_FIELD_NAMES = frozenset(RESIDENT_FIELDS)
BATCH_CONCURRENCY = 2
"""Batches worked on at once; the others wait their turn. A batch is CPU-bound once its records are read, so
more at once adds no throughput, only memory: 64 batches of 100 in flight held ~6,400 records and took the
gateway from ~125 to ~200 MiB RSS (bench/harness.py), which the allocator then keeps."""
UPSTREAM_ERRORS = (UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable)


DEFAULT_ATTESTATION_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_MISMATCHES_PER_SUBJECT_PER_DAY = 5
"""``DANCU_VERIFY_MISMATCHES_PER_SUBJECT_PER_DAY``: a client's mismatching verification answers per resident and
UTC day; then that resident is not checked for it again that day (429 ``verification_attempts_exceeded``). Without
it, a verify-only client learned a stranger's exact birth date in two batches (12 months, then 31 days)."""
INPUT_SALT_BYTES = 16


def input_hash(salt: str, body: VerifyRequest) -> str:
    """The attestation's ``input_hash``: what was claimed, provable later without being stored anywhere.

    SHA-256 (lowercase hex) of the UTF-8 text ``<input_salt>\n`` followed by one ``name=value\n`` line for
    ``personal_id`` and then for each supplied field in ``checked_fields`` order (``full_name`` in NFC,
    ``date_of_birth`` and ``gender`` as sent). Whoever holds the values (the dossier) recomputes it; the random
    salt keeps anyone who holds only the attestation from confirming a guess (docs/contract.md, Verification).
    """
    text = f"{salt}\npersonal_id={body.personal_id}\n"  # one string built in place: a verification's hot path
    if (full_name := body.full_name) is not None:
        text += f"full_name={unicodedata.normalize('NFC', full_name)}\n"
    if (date_of_birth := body.date_of_birth) is not None:
        text += f"date_of_birth={unicodedata.normalize('NFC', date_of_birth)}\n"
    if (gender := body.gender) is not None:
        text += f"gender={unicodedata.normalize('NFC', gender)}\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Attester(Protocol):
    """Signs compact JWS with a key published in the JWKS (``app.auth.keys.KeyStore``)."""

    async def sign_jws(self, claims: Mapping[str, Any], typ: str) -> str: ...


@frozen  # built once per request (app.frozen)
class CallContext:
    """Who asks, for what, and how to answer: built once per request by the router."""

    auth: AuthContext
    purpose: str
    dossier_id: str | None
    request_id: str | None
    issuer: str
    language: Language
    end_user: str | None = None
    """The caller's ``X-End-User`` (validated by the route), recorded in every event of the call."""
    client_ip: str | None = None
    """The caller's address (``app.addresses``), recorded in every event of the call."""


@dataclass(slots=True)
class _Audit:
    """Events of one request, written together before the answer leaves."""

    action: str
    hasher: SubjectHasher
    call: AuditContext
    events: list[AuditEvent] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    """Each subject's keyed hash, made once: the quota counts it, the event stores it."""

    def ref(self, subject: str) -> str:
        found = self.refs.get(subject)
        if found is None:
            found = self.refs[subject] = self.hasher.ref(subject)
        return found

    def add(
        self,
        outcome: Outcome,
        status: int,
        *,
        subject: str | None = None,
        fields: Sequence[str] = (),
        reason: str | None = None,
        action: str | None = None,
    ) -> None:
        ref = self.ref(subject) if subject else None
        self.events.append(
            self.call.event(
                action or self.action,
                outcome,
                status,
                subject=subject,
                subject_ref=ref,
                fields=fields,
                reason=reason,
            )
        )

    def refused(self, error: GatewayError, *, subject: str | None = None, fields: Sequence[str] = ()) -> None:
        ref = self.ref(subject) if subject else None
        self.events.append(
            self.call.refusal(self.action, error, subject=subject, subject_ref=ref, fields=fields)
        )

    def refused_all(self, error: GatewayError, named: Sequence[Named]) -> None:
        """A refusal of the whole request: one event per resident it names (a search by personal ID finds
        the attempt), or one without a subject when it names none."""
        for subject, fields in named:
            self.refused(error, subject=subject, fields=fields)
        if not named:
            self.refused(error)


Named = tuple[str, tuple[str, ...]]
"""A resident a request names (a structurally valid personal ID) and the fields it asks about: what the audit
event of a refusal records (docs/contract.md, "Audit": for a refusal, the fields requested)."""

RouteKind = Literal["verify", "batch", "lookup", "household"]


def _parse(personal_id: str, loc: Sequence[str | int] = ("body", "personal_id")) -> PersonalId:
    try:
        return parse_personal_id(personal_id)
    except _BadId as err:
        raise InvalidPersonalId(loc) from err


class CitizenService:
    def __init__(
        self,
        backend: Backend,
        limiter: Limiter,
        audit: AuditWriter,
        attester: Attester,
        batch_max_items: int,
        attestation_ttl_seconds: int = DEFAULT_ATTESTATION_TTL_SECONDS,
        mismatches_per_subject_per_day: int = DEFAULT_MISMATCHES_PER_SUBJECT_PER_DAY,
    ) -> None:
        self._attestation_ttl = attestation_ttl_seconds
        self._mismatches = mismatches_per_subject_per_day
        self._backend = backend
        self._limiter = limiter
        self._audit = audit
        self._attester = attester
        self._batch_max = batch_max_items
        self._batch_slots = asyncio.Semaphore(BATCH_CONCURRENCY)

    # ------------------------------------------------------------------------------------------ helpers
    def _collect(self, ctx: CallContext, action: str) -> _Audit:
        """The collector of one request's events (subjects hashed with the writer's keys)."""
        call = AuditContext.of_client(
            ctx.auth.client_id,
            ctx.request_id,
            purpose=ctx.purpose,
            dossier_id=ctx.dossier_id,
            end_user=ctx.end_user,
            client_ip=ctx.client_ip,
        )
        return _Audit(action, self._audit.hasher, call)

    async def _finish(self, audit: _Audit) -> None:
        await self._audit.write(audit.events)

    async def _admit_verification(
        self, ctx: CallContext, audit: _Audit, subjects: Sequence[str], requests: int = 1
    ) -> tuple[list[bool], list[bool]]:
        """``_admit``, and per subject whether it has attempts left today (``Limiter.verifiable``), in one
        call to the limiter."""
        grant = ctx.auth.grant
        return await self._limiter.admit_verification(
            ctx.auth.client_id,
            grant.rate_limit_per_minute,
            [audit.ref(s) for s in subjects],
            grant.distinct_subjects_per_day,
            self._mismatches,
            requests,
        )

    async def _admit(
        self, ctx: CallContext, audit: _Audit, subjects: Sequence[str], requests: int = 1
    ) -> list[bool]:
        """Count ``requests`` against the rate limit (a batch: its items) and each subject against the
        distinct quota."""
        grant = ctx.auth.grant
        return await self._limiter.admit(
            ctx.auth.client_id,
            grant.rate_limit_per_minute,
            [audit.ref(s) for s in subjects],
            grant.distinct_subjects_per_day,
            requests,
        )

    async def _attest(
        self,
        ctx: CallContext,
        verification_id: str,
        body: VerifyRequest,
        checked: Sequence[str],
        result: matching.Verification,
    ) -> str:
        now = int(datetime.now(UTC).timestamp())
        salt = secrets.token_urlsafe(INPUT_SALT_BYTES)
        return await self._attester.sign_jws(
            {
                "iss": ctx.issuer,
                "verification_id": verification_id,
                "personal_id": body.personal_id,
                "checked_fields": list(checked),
                "input_hash": input_hash(salt, body),
                "input_salt": salt,
                "match": result.match,
                "reason": result.reason,
                "client_id": ctx.auth.client_id,
                "purpose": ctx.purpose,
                "dossier_id": ctx.dossier_id,
                "iat": now,
                "exp": now + self._attestation_ttl,
            },
            "verification+jwt",
        )

    async def _answer(
        self, ctx: CallContext, body: VerifyRequest, result: matching.Verification, checked: Sequence[str]
    ) -> dict[str, Any]:
        verification_id = new_uuid()
        answer: dict[str, Any] = {
            "verification_id": verification_id,
            "match": result.match,
            "reason": result.reason,
        }
        if ctx.auth.grant.verify_details:
            answer["fields"] = result.fields
        answer["attestation"] = await self._attest(ctx, verification_id, body, checked, result)
        return answer

    @staticmethod
    def _checked(body: VerifyRequest) -> list[str]:
        return [name for name in VERIFY_CHECKED if getattr(body, name) is not None]

    # ------------------------------------------------------------------------------- refused up front
    async def refuse(
        self,
        kind: RouteKind,
        action: str,
        error: GatewayError,
        *,
        auth: AuthContext,
        purpose: str | None,
        dossier_id: str | None,
        request_id: str | None,
        body: Any,
        end_user: str | None = None,
        client_ip: str | None = None,
    ) -> None:
        """Record a request refused before its use case ran (its purpose missing or not granted, its end user
        missing): one event per resident its ``body`` (decoded JSON, not validated yet) names, with the fields
        it asked about, so a search by personal ID finds the attempt. A body that names none gets one event
        without one."""
        call = AuditContext.of_client(
            auth.client_id,
            request_id,
            purpose=purpose,
            dossier_id=dossier_id,
            end_user=end_user,
            client_ip=client_ip,
        )
        audit = _Audit(action, self._audit.hasher, call)
        audit.refused_all(error, self._named(kind, body, auth.grant))
        await self._finish(audit)

    def _named(self, kind: RouteKind, body: Any, grant: Grant) -> list[Named]:
        """The residents ``body`` names and the fields it asks about, read leniently (it has not been
        validated: a member that does not validate names nothing, an ID must be well formed)."""
        if kind == "batch":
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list) or len(items) > self._batch_max:
                return []  # too large a batch is refused as a whole, whatever it names
            return [found for item in items for found in _named_in(item, _verify_fields)]
        if kind == "verify":
            return _named_in(body, _verify_fields)
        if kind == "lookup":
            return _named_in(body, lambda item: _requested_fields(item.get("fields"), grant))
        return _named_in(body, lambda _item: ())

    # ------------------------------------------------------------------------------------------- verify
    async def verify(self, ctx: CallContext, body: VerifyRequest) -> dict[str, Any]:
        audit = self._collect(ctx, "citizen.verify")
        checked = self._checked(body)
        try:
            pid = _parse(body.personal_id)
            ((within,), (verifiable,)) = await self._admit_verification(ctx, audit, [pid.number])
            if not within:
                raise _quota_error()
            if not verifiable:
                raise _attempts_error()
            client_id, ref = ctx.auth.client_id, audit.ref(pid.number)
            result = matching.precheck_verification(pid, body)
            if result is None:
                record = await self._backend.get(pid.number, VERIFY_FIELDS)
                result = _compare(record, body)
            (released,) = await self._limiter.settle(
                client_id, [(ref, _mismatching(result))], self._mismatches
            )
            if not released:  # concurrent mismatches used the attempts up meanwhile
                raise _attempts_error()
            answer = await self._answer(ctx, body, result, checked)
            audit.add(
                "allowed", 200, subject=pid.number, fields=_compared(result, checked), reason=result.reason
            )
            return answer
        except GatewayError as error:
            audit.refused(error, subject=_subject_of(body.personal_id), fields=checked)
            raise
        finally:
            await self._finish(audit)

    async def verify_batch(self, ctx: CallContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self._batch_slots:
            return await self._verify_batch(ctx, items)

    async def _verify_batch(self, ctx: CallContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        audit = self._collect(ctx, "citizen.verify")
        results: list[dict[str, Any] | None] = [None] * len(items)
        computed: list[tuple[int, VerifyRequest, PersonalId, matching.Verification]] = []

        def refused(index: int, body: VerifyRequest, pid: PersonalId, error: GatewayError) -> None:
            results[index] = self._item_problem(ctx, index, error)
            audit.refused(error, subject=pid.number, fields=self._checked(body))

        try:
            if len(items) > self._batch_max:
                raise BatchTooLarge(self._batch_max)
            valid: list[tuple[int, VerifyRequest, PersonalId]] = []
            invalid: list[tuple[int, ValidationFailed]] = []
            for index, item in enumerate(items):
                try:
                    body = VerifyRequest.model_validate(item)
                    pid = _parse(body.personal_id, ("body", "items", index, "personal_id"))
                except ValidationError:
                    invalid.append((index, ValidationFailed()))  # the item's own 422; the others are answered
                    continue
                except InvalidPersonalId as error:
                    invalid.append((index, error))
                    continue
                valid.append((index, body, pid))
            try:  # each item counts against the rate, each resident against the quota
                within, verifiable = await self._admit_verification(
                    ctx, audit, [pid.number for _, _, pid in valid], len(items)
                )
            except GatewayError as error:  # the whole batch refused: each resident named is recorded
                audit.refused_all(error, [(pid.number, tuple(self._checked(body))) for _, body, pid in valid])
                raise
            for index, problem in invalid:
                results[index] = self._item_problem(ctx, index, problem)
                audit.refused(problem)
            counted = [(item, open_) for item, ok, open_ in zip(valid, within, verifiable, strict=True) if ok]
            for index, body, pid in (item for item, ok in zip(valid, within, strict=True) if not ok):
                refused(index, body, pid, _quota_error())
            client_id = ctx.auth.client_id
            pending: list[tuple[int, VerifyRequest, PersonalId]] = []
            for (index, body, pid), ok in counted:
                if not ok:
                    refused(index, body, pid, _attempts_error())
                    continue
                result = matching.precheck_verification(pid, body)
                if result is not None:
                    computed.append((index, body, pid, result))
                    continue
                pending.append((index, body, pid))
            if pending:
                try:
                    records = await self._backend.get_many(
                        [pid.number for _, _, pid in pending], VERIFY_FIELDS
                    )
                except UPSTREAM_ERRORS as upstream:
                    for index, body, pid in pending:
                        refused(index, body, pid, upstream)
                else:
                    for index, body, pid in pending:
                        try:
                            result = _compare(records.get(pid.number), body)
                        except UpstreamBadResponse as bad:
                            refused(index, body, pid, bad)
                            continue
                        computed.append((index, body, pid, result))
            # The answers are released in item order, each only while its resident has attempts left: the
            # guesses of one batch are counted one by one, as if sent one at a time.
            computed.sort(key=lambda answer: answer[0])
            released = await self._limiter.settle(
                client_id,
                [(audit.ref(pid.number), _mismatching(result)) for _, _, pid, result in computed],
                self._mismatches,
            )
            for (index, body, pid, result), ok in zip(computed, released, strict=True):
                if not ok:
                    refused(index, body, pid, _attempts_error())
                    continue
                checked = self._checked(body)
                results[index] = {"index": index, **(await self._answer(ctx, body, result, checked))}
                audit.add(
                    "allowed",
                    200,
                    subject=pid.number,
                    fields=_compared(result, checked),
                    reason=result.reason,
                )
            return [r for r in results if r is not None]
        except GatewayError as error:
            if not audit.events:
                audit.refused(error)
            raise
        finally:
            await self._finish(audit)

    @staticmethod
    def _item_problem(ctx: CallContext, index: int, error: GatewayError) -> dict[str, Any]:
        vietnamese = ctx.language == "vi"
        return {
            "index": index,
            "problem": {
                "type": problem_type(error.code),
                "title": error.title_vi if vietnamese else error.title_en,
                "status": error.status,
                "code": error.code,
            },
        }

    # ------------------------------------------------------------------------------------------- lookup
    async def lookup(self, ctx: CallContext, body: LookupRequest) -> dict[str, Any]:
        audit = self._collect(ctx, "citizen.read")
        grant = ctx.auth.grant
        requested = list(_requested_fields(body.fields, grant))
        try:
            pid = _parse(body.personal_id)
            outside = sorted(set(requested) - grant.fields)
            (within,) = await self._admit(ctx, audit, [pid.number])
            if not within:
                raise _quota_error()
            if outside:
                raise FieldNotAllowed(outside)
            record = await self._backend.get(pid.number, (*requested, *RESIDENCE_FIELDS))
            if record is None:
                audit.add("allowed", 404, subject=pid.number, reason="not_found")
                raise NotFound(_UNKNOWN_EN, detail_vi=_UNKNOWN_VI)
            if not grant.covers_province(record.province):
                audit.add("denied", 404, subject=pid.number, fields=requested, reason="out_of_scope")
                raise NotFound(_UNKNOWN_EN, detail_vi=_UNKNOWN_VI)
            answer = _released(record, requested)
            audit.add("allowed", 200, subject=pid.number, fields=requested)
            return answer
        except GatewayError as error:
            if not audit.events:
                audit.refused(error, subject=_subject_of(body.personal_id), fields=requested)
            raise
        finally:
            await self._finish(audit)

    # ---------------------------------------------------------------------------------------- household
    async def household(self, ctx: CallContext, body: HouseholdRequest) -> dict[str, Any]:
        audit = self._collect(ctx, "household.read")
        try:
            pid = _parse(body.personal_id)
            (within,) = await self._admit(ctx, audit, [pid.number])
            if not within:
                raise _quota_error()
            record = await self._backend.get(pid.number, ("household_id", *RESIDENCE_FIELDS))
            if record is None:
                audit.add("allowed", 404, subject=pid.number, reason="not_found")
                raise NotFound(_UNKNOWN_EN, detail_vi=_UNKNOWN_VI)
            if not ctx.auth.grant.covers_province(record.province):
                audit.add("denied", 404, subject=pid.number, reason="out_of_scope")
                raise NotFound(_UNKNOWN_EN, detail_vi=_UNKNOWN_VI)
            household_id = record.fields.get("household_id")
            household = await self._backend.household(household_id) if household_id else None
            if household is None:
                audit.add("allowed", 404, subject=pid.number, reason="no_household")
                raise NotFound(_UNKNOWN_EN, detail_vi=_UNKNOWN_VI)
            visible = await self._in_scope(ctx, household)
            members = [m for m in household.members if m.personal_id in visible]
            head = household.head if household.head.personal_id in visible else None
            # Every resident released counts towards the distinct quota like the named one: all of them, or
            # the call releases nothing.
            released = list(
                dict.fromkeys([*(m.personal_id for m in members), *([head.personal_id] if head else [])])
            )
            if not await self._limiter.hit_subjects_all(
                ctx.auth.client_id, [audit.ref(r) for r in released], ctx.auth.grant.distinct_subjects_per_day
            ):
                raise _quota_error()
            audit.add("allowed", 200, subject=pid.number, fields=["household_id"])
            for member in members:
                audit.add("allowed", 200, subject=member.personal_id, fields=MEMBER_FIELDS)
            return {
                "household_id": household.household_id,
                "head": {"personal_id": head.personal_id, "full_name": head.full_name} if head else None,
                "members": [
                    {
                        "personal_id": m.personal_id,
                        "full_name": m.full_name,
                        "relation_to_head": m.relation_to_head,
                    }
                    for m in members
                ],
            }
        except GatewayError as error:
            if not audit.events:
                audit.refused(error, subject=_subject_of(body.personal_id))
            raise
        finally:
            await self._finish(audit)

    async def _in_scope(self, ctx: CallContext, household: Household) -> set[str]:
        """The IDs of the household's people (head and members) whose current residence is in the grant's
        provinces: one living elsewhere, or without a current record, is left out (its lookup answers 404)."""
        people = list(
            dict.fromkeys([household.head.personal_id, *(m.personal_id for m in household.members)])
        )
        grant = ctx.auth.grant
        if grant.provinces is None:
            return set(people)
        records = await self._backend.get_many(people, RESIDENCE_FIELDS)
        return {
            personal_id
            for personal_id in people
            if (record := records.get(personal_id)) is not None and grant.covers_province(record.province)
        }


_UNKNOWN_EN = "No resident with this personal ID is available to this client."
_UNKNOWN_VI = "Không có công dân nào với số định danh này trong phạm vi được cấp."


def _quota_error() -> SubjectQuotaExceeded:
    return SubjectQuotaExceeded(seconds_to_utc_midnight())


def _attempts_error() -> VerificationAttemptsExceeded:
    return VerificationAttemptsExceeded(seconds_to_utc_midnight())


def _mismatching(result: matching.Verification) -> bool:
    """Whether a verification answer tells the caller that something it supplied is wrong: a ``mismatch``,
    or (a deceased resident's answer) a field whose detail is a mismatch."""
    fields = result.fields
    return result.reason == "mismatch" or "mismatch" in (
        fields["full_name"]["result"],
        fields["date_of_birth"]["result"],
        fields["gender"]["result"],
    )


def _compare(record: ResidentRecord | None, body: VerifyRequest) -> matching.Verification:
    try:
        return matching.verify_record(record.fields if record else None, body)
    except matching.InvalidRecordValue as err:  # the upstream's data, not the caller's
        raise UpstreamBadResponse() from err


def _subject_of(personal_id: str) -> str | None:
    """The subject of an audit event: only a structurally valid ID (never store arbitrary input)."""
    try:
        return parse_personal_id(personal_id).number
    except _BadId:
        return None


def _released(record: ResidentRecord, fields: Sequence[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"personal_id": record.personal_id}
    for name in fields:
        answer[name] = record.fields.get(name)
    answer["_meta"] = {
        "source": record.source,
        "retrieved_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "record_updated_at": record.record_updated_at,
    }
    return answer


def _compared(result: matching.Verification, checked: Sequence[str]) -> Sequence[str]:
    """The fields a verification compared with a record: none when there is no record (an unknown or
    cancelled ID releases nothing, not even a yes or no per field)."""
    return () if result.reason == "not_found" else checked


def _requested_fields(fields: object, grant: Grant) -> tuple[str, ...]:
    """The fields a lookup asks for: those named (the known names among them), or every granted one when it
    names none; never ``personal_id`` (always returned, never counted as released)."""
    if fields is None:
        fields = sorted(grant.fields)
    if not isinstance(fields, list):
        return ()
    return tuple(f for f in fields if isinstance(f, str) and f in RESIDENT_FIELD_NAMES and f != "personal_id")


def _verify_fields(item: dict[str, Any]) -> tuple[str, ...]:
    """The fields a verification body supplies for checking (those present and not null)."""
    return tuple(name for name in VERIFY_CHECKED if item.get(name) is not None)


def _named_in(item: object, fields: Callable[[dict[str, Any]], Sequence[str]]) -> list[Named]:
    """The resident a (not yet validated) body names, with ``fields(body)``; none unless its ``personal_id``
    is a well-formed ID."""
    if not isinstance(item, dict):
        return []
    personal_id = item.get("personal_id")
    subject = _subject_of(personal_id) if isinstance(personal_id, str) else None
    return [] if subject is None else [(subject, tuple(fields(item)))]
