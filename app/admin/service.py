"""Administration use cases for the REST API: the auth context's services, plus four-eyes approval.

Every change goes through ``AuthService`` (validation, separation of duties, the audit event with before and
after in the same transaction). This module adds what only the admin API has: cursor pages, and, when
``DANCU_ADMIN__REQUIRE_APPROVAL`` is on, holding back the changes that widen access until a different
administrator approves them. The CLI does not use the approval flow: an operator with shell access is
trusted, and its changes apply at once (actor ``cli``).

What widens access (and so waits for approval) — anything that lets the client do something it could not
do a moment before:

- a grant gaining a scope, a field (``"*"`` newly in ``fields`` counts even when it names no new field
  today: it will cover fields added later), a province (``["*"]`` replacing a list), or a purpose;
- ``verify_details`` turned on; a higher ``rate_limit_per_minute`` or ``distinct_subjects_per_day``;
- ``require_end_user`` turned off: the grant stops demanding ``X-End-User``, so calls naming no officer, which
  were refused a moment before, are answered (a control loosened is access widened);
- a longer validity: ``valid_from`` earlier or removed, ``valid_until`` later or removed;
- reinstating a suspended client (``PATCH {"status": "active"}``).

Credentials are access, too: rotating the secret of another client, or replacing its ``private_key_jwt``
keys, hands whoever does it that client's grant (the new secret is in the answer). So with approval required
they wait like a widening; the answer to the approval carries the new secret (shown once, to the approving
administrator). A client's own secret and keys are its own business and change at once (a leaked secret must
be replaceable without waiting); so do changes made through the CLI.

Everything else applies at once: narrowing, suspension, renaming, new clients (their grant allows nothing),
purposes (a registered purpose grants nothing by itself) and signing-key rotation. A change that both narrows and widens
waits whole: send the narrowing on its own first when it is urgent.

Approval re-validates the change and refuses it (409) when the client or grant changed since the request, so
an approval can never undo a narrowing or suspension that happened while the change waited.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import ChangeNotFound, ChangeNotPending, ChangeOutdated, SelfApprovalForbidden
from app.admin.models import AdminChange
from app.admin.repository import AdminChangeRepository
from app.admin.schemas import (
    ChangeAction,
    ChangeOut,
    ChangePage,
    ChangeStatus,
    ClientPage,
    PurposePage,
    SigningKeyOut,
    SigningKeyPage,
)
from app.audit.writer import AdminLog
from app.auth.errors import SelfSuspension
from app.auth.keys import CursorSigner, KeyStore
from app.auth.repository import SigningKeyRepository
from app.auth.schemas import (
    ClientCreate,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
    GrantIn,
    GrantOut,
    JWKSetIn,
    PurposeIn,
    PurposeOut,
)
from app.auth.service import DEFAULT_FIELDS, AuthService, CreatedClient, grant_problems, jwks_audit
from app.auth.tokens import public_jwks_problems, registrable_jwks
from app.db import utcnow
from app.errors import ValidationFailed

GRANT_REPLACE = "admin.grant.replace"
CLIENT_UPDATE = "admin.client.update"
SECRET_ROTATE = "admin.client.secret_rotate"  # noqa: S105 - an audit action name
JWKS_REPLACE = "admin.client.jwks"
_WIDENS_CREDENTIALS: dict[str, list[str]] = {SECRET_ROTATE: ["client_secret"], JWKS_REPLACE: ["jwks"]}

Item = TypeVar("Item")

_MAX_CURSOR_CHARS = 512


# --- cursors ----------------------------------------------------------------------------------------------


def encode_cursor(values: Sequence[str], signer: CursorSigner) -> str:
    """An opaque cursor: where the next page starts (the last item's sort key), under the gateway's MAC."""
    return signer.seal(json.dumps(list(values)).encode())


def decode_cursor(cursor: str | None, size: int, signer: CursorSigner) -> list[str] | None:
    """The sort key in ``cursor`` (``size`` strings); 422 ``validation_failed`` unless the gateway made it."""
    if cursor is None:
        return None
    data = signer.open(cursor) if len(cursor) <= _MAX_CURSOR_CHARS else None
    try:
        values = json.loads(data) if data is not None else None
    except ValueError:
        values = None
    if not (isinstance(values, list) and len(values) == size and all(isinstance(v, str) for v in values)):
        raise _invalid_cursor()
    return values


def _invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        [{"loc": ["query", "cursor"], "code": "invalid_cursor", "message": "Not a cursor from this list."}]
    )


def page_of(
    items: Iterable[Item], key: Callable[[Item], str], *, cursor: str | None, limit: int, signer: CursorSigner
) -> tuple[list[Item], str | None]:
    """Keyset paging over a short list held in memory (purposes, signing keys), sorted by ``key``."""
    start = decode_cursor(cursor, 1, signer)
    ordered = sorted(items, key=key)
    if start is not None:
        ordered = [item for item in ordered if key(item) > start[0]]
    page = ordered[:limit]
    return page, encode_cursor([key(page[-1])], signer) if len(ordered) > limit else None


# --- what widens access -------------------------------------------------------------------------------------


def _fields(names: Iterable[str]) -> set[str]:
    expanded = set(names)
    if "*" in expanded:
        expanded |= DEFAULT_FIELDS
    return expanded


def _later(new: datetime | None, old: datetime | None) -> bool:
    """A validity end moved later (None: no end)."""
    return old is not None and (new is None or new > old)


def _earlier(new: datetime | None, old: datetime | None) -> bool:
    """A validity start moved earlier (None: no start)."""
    return old is not None and (new is None or new < old)


def grant_widening(current: GrantOut, spec: GrantIn) -> list[str]:
    """The members of ``spec`` that let the client do more than ``current`` does (empty: it only narrows)."""
    widens: list[str] = []
    if set(spec.scopes) - set(current.scopes):
        widens.append("scopes")
    if ("*" in spec.fields and "*" not in current.fields) or _fields(spec.fields) - _fields(current.fields):
        widens.append("fields")
    if current.provinces != ["*"] and (set(spec.provinces) - set(current.provinces)):
        widens.append("provinces")
    if set(spec.purposes) - set(current.purposes):
        widens.append("purposes")
    if spec.verify_details and not current.verify_details:
        widens.append("verify_details")
    if current.require_end_user and not spec.require_end_user:
        widens.append("require_end_user")
    if spec.rate_limit_per_minute > current.rate_limit_per_minute:
        widens.append("rate_limit_per_minute")
    if spec.distinct_subjects_per_day > current.distinct_subjects_per_day:
        widens.append("distinct_subjects_per_day")
    if _earlier(spec.valid_from, current.valid_from):
        widens.append("valid_from")
    if _later(spec.valid_until, current.valid_until):
        widens.append("valid_until")
    return widens


GRANT_MEMBERS_ADDED: dict[str, Any] = {"require_end_user": False}
"""Grant members added after changes may have been requested, with the value every grant had before: a change
pending since then recorded a ``base`` without them, and is compared as if it had them."""


def _grant_state(grant: GrantOut) -> dict[str, Any]:
    """A grant as audit events and pending changes record it (JSON, without ``client_id`` and ``updated_at``)."""
    return grant.model_dump(mode="json", exclude={"client_id", "updated_at"})


def _client_state(client: ClientOut) -> dict[str, Any]:
    return client.model_dump(mode="json", include={"name", "description", "contact_email", "status"})


def change_view(change: AdminChange) -> ChangeOut:
    return ChangeOut(
        change_id=change.change_id,
        status=cast(ChangeStatus, change.status),
        action=cast(ChangeAction, change.action)
        if change.action in (GRANT_REPLACE, SECRET_ROTATE, JWKS_REPLACE)
        else CLIENT_UPDATE,
        target_client_id=change.target_client_id,
        payload=change.payload,
        base=change.base,
        widens=_widens(change),
        requested_by=change.requested_by,
        created_at=change.created_at,
        decided_by=change.decided_by,
        decided_at=change.decided_at,
    )


def _widens(change: AdminChange) -> list[str]:
    if change.action in _WIDENS_CREDENTIALS:
        return list(_WIDENS_CREDENTIALS[change.action])
    if change.action == GRANT_REPLACE and change.base is not None:
        current = GrantOut.model_validate(
            {**change.base, "client_id": change.target_client_id or "", "updated_at": change.created_at}
        )
        return grant_widening(current, GrantIn.model_validate(change.payload))
    return ["status"]


# --- the service --------------------------------------------------------------------------------------------


class AdminService:
    """The admin API's use cases on behalf of ``actor`` (an admin client's id)."""

    def __init__(
        self,
        session: AsyncSession,
        keys: KeyStore,
        *,
        actor: str,
        request_id: str | None = None,
        require_approval: bool = False,
    ) -> None:
        self.session = session
        self.keys = keys
        self.actor = actor
        self.request_id = request_id
        self.require_approval = require_approval
        self.log = AdminLog(session, actor=actor, request_id=request_id)
        self.auth = AuthService(session, keys.secrets, self.log)
        self.changes = AdminChangeRepository(session)

    async def _audit(
        self, action: str, client_id: str | None, detail: dict[str, Any], status_code: int = 200
    ) -> None:
        """An event of the approval flow, chained in this transaction (committed with the change)."""
        await self.log.record(action, client_id, detail, status_code)

    # clients

    async def create_client(self, data: ClientCreate) -> CreatedClient:
        return await self.auth.create_client(data)

    async def list_clients(self, *, cursor: str | None, limit: int) -> ClientPage:
        start = decode_cursor(cursor, 1, self.keys.cursors)
        items = await self.auth.list_clients(after=start[0] if start else None, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return ClientPage(
            items=items, next_cursor=encode_cursor([items[-1].client_id], self.keys.cursors) if more else None
        )

    async def get_client(self, client_id: str) -> ClientOut:
        return await self.auth.get_client(client_id)

    async def update_client(self, client_id: str, data: ClientUpdate) -> ClientOut | ChangeOut:
        """Edit, suspend or reinstate; a reinstatement waits for approval when approval is required. A client
        cannot suspend itself (409): it would lock itself out, and it is never what an administrator means."""
        if data.status == "suspended" and client_id == self.actor:
            raise SelfSuspension()
        if self.require_approval and data.status == "active":
            client = await self.auth.get_client(client_id)
            if client.status == "suspended":
                after = {
                    **_client_state(client),
                    **data.model_dump(mode="json", exclude_unset=True, exclude={"reason"}),
                }
                if after.get("name") is None:
                    after["name"] = client.name
                return await self._hold(
                    CLIENT_UPDATE,
                    client_id,
                    payload=data.model_dump(mode="json", exclude_unset=True),
                    base={"status": client.status},
                    before=_client_state(client),
                    after=after,
                )
        return await self.auth.update_client(client_id, data)

    async def rotate_secret(self, client_id: str, grace_seconds: int = 0) -> ClientSecretOut | ChangeOut:
        """A new secret (the old one kept ``grace_seconds``); another client's waits for approval when
        approval is required (the grace period then starts at the approval)."""
        if self.require_approval and client_id != self.actor:
            await self.auth.get_client(client_id)  # 404 for an unknown client, never a pending change
            payload = {"grace_seconds": grace_seconds} if grace_seconds else {}
            return await self._hold(
                SECRET_ROTATE, client_id, payload=payload, base={}, before=None, after=None
            )
        return await self.auth.rotate_secret(client_id, grace_seconds)

    async def disable_secret(self, client_id: str) -> ClientOut:
        """Turn the client's secret authentication off (it narrows access: never waits for approval)."""
        return await self.auth.disable_secret(client_id)

    async def set_jwks(self, client_id: str, jwks: JWKSetIn) -> ClientOut | ChangeOut:
        """Register public keys; another client's wait for approval when approval is required."""
        if self.require_approval and client_id != self.actor:
            document = jwks.model_dump()
            problems = public_jwks_problems(document)
            if problems:  # refused now, never a pending change
                raise ValidationFailed(problems)
            client = await self.auth.get_client(client_id)
            keys = registrable_jwks(document) if document["keys"] else None
            return await self._hold(
                JWKS_REPLACE,
                client_id,
                payload=document,
                base={"jwks": client.jwks},
                before=jwks_audit(client.jwks),
                after=jwks_audit(keys),
            )
        return await self.auth.set_jwks(client_id, jwks)

    # grants

    async def get_grant(self, client_id: str) -> GrantOut:
        return await self.auth.get_grant(client_id)

    async def replace_grant(self, client_id: str, spec: GrantIn) -> GrantOut | ChangeOut:
        """Replace the grant; when approval is required and it widens access, record it as pending instead."""
        if self.require_approval:
            current = await self.auth.get_grant(client_id)
            if grant_widening(current, spec):
                # Refused now, not at approval: an invalid grant never becomes a pending change.
                problems = grant_problems(spec, await self.auth.purposes.registered(set(spec.purposes)))
                if problems:
                    raise ValidationFailed(problems)
                return await self._hold(
                    GRANT_REPLACE,
                    client_id,
                    payload=spec.model_dump(mode="json"),
                    base=_grant_state(current),
                    before=_grant_state(current),
                    after=spec.model_dump(mode="json"),
                )
        return await self.auth.replace_grant(client_id, spec)

    # purposes

    async def add_purpose(self, data: PurposeIn) -> PurposeOut:
        return await self.auth.add_purpose(data)

    async def retire_purpose(self, code: str) -> PurposeOut:
        """Retire a purpose (it narrows what can be granted: never waits for approval)."""
        return await self.auth.retire_purpose(code)

    async def list_purposes(self, *, cursor: str | None, limit: int) -> PurposePage:
        # Purposes are a short catalogue (procedure codes): paged in memory.
        items, next_cursor = page_of(
            await self.auth.list_purposes(),
            lambda p: p.code,
            cursor=cursor,
            limit=limit,
            signer=self.keys.cursors,
        )
        return PurposePage(items=items, next_cursor=next_cursor)

    # signing keys

    async def rotate_signing_key(self) -> SigningKeyOut:
        kid = await self.auth.rotate_signing_key(self.keys)
        return next(key for key in await self._signing_keys() if key.kid == kid)

    async def list_signing_keys(self, *, cursor: str | None, limit: int) -> SigningKeyPage:
        items, next_cursor = page_of(
            await self._signing_keys(),
            lambda k: k.created_at.isoformat() + k.kid,
            cursor=cursor,
            limit=limit,
            signer=self.keys.cursors,
        )
        return SigningKeyPage(items=items, next_cursor=next_cursor)

    async def _signing_keys(self) -> list[SigningKeyOut]:
        return [
            SigningKeyOut(
                kid=row.kid,
                alg=row.alg,
                active=row.active,
                created_at=row.created_at,
                retired_at=row.retired_at,
            )
            for row in await SigningKeyRepository(self.session).all()
        ]

    # four eyes

    async def _hold(
        self,
        action: str,
        client_id: str,
        *,
        payload: dict[str, Any],
        base: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> ChangeOut:
        change = AdminChange(
            change_id=str(uuid.uuid4()),
            created_at=utcnow(),
            requested_by=self.actor,
            action=action,
            target_client_id=client_id,
            payload=payload,
            base=base,
            status="pending",
            decided_by=None,
            decided_at=None,
        )
        await self.changes.add(change)
        await self._audit(
            "admin.change.request",
            client_id,
            {"change_id": change.change_id, "before": before, "after": after},
            status_code=202,
        )
        return change_view(change)

    async def list_changes(
        self, *, status: ChangeStatus | None, cursor: str | None, limit: int
    ) -> ChangePage:
        start = decode_cursor(cursor, 2, self.keys.cursors)
        after: tuple[datetime, str] | None = None
        if start is not None:
            try:
                at = datetime.fromisoformat(start[0])
            except ValueError:
                raise _invalid_cursor() from None
            if at.tzinfo is None:
                raise _invalid_cursor()
            after = (at, start[1])
        rows = await self.changes.page(status=status, after=after, limit=limit + 1)
        items = [change_view(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ChangePage(
            items=items,
            next_cursor=encode_cursor(
                [items[-1].created_at.isoformat(), items[-1].change_id], self.keys.cursors
            )
            if more
            else None,
        )

    async def get_change(self, change_id: str) -> ChangeOut:
        return change_view(await self._change(change_id))

    async def _change(self, change_id: str) -> AdminChange:
        change = await self.changes.get(change_id) if len(change_id) <= 36 else None
        if change is None:
            raise ChangeNotFound()
        return change

    async def approve(
        self, change_id: str, *, reason: str | None = None
    ) -> GrantOut | ClientOut | ClientSecretOut:
        """Apply a pending change on behalf of a second administrator; answers the target's new state."""
        change = await self._change(change_id)
        if change.status != "pending":
            raise ChangeNotPending()
        if change.requested_by == self.actor:
            raise SelfApprovalForbidden()
        if not await self.changes.decide(change, "approved", by=self.actor, at=utcnow()):
            raise ChangeNotPending()
        client_id = change.target_client_id or ""
        await self._audit(
            "admin.change.approve",
            client_id,
            {
                "change_id": change.change_id,
                "before": {"status": "pending", "requested_by": change.requested_by},
                "after": {"status": "approved", "decided_by": self.actor},
                **({"reason": reason} if reason else {}),
            },
        )
        # Applied as this administrator, through the same validation as a direct change (a purpose or client
        # may be gone); the audit event of the change itself follows the approval's.
        if change.action == GRANT_REPLACE:
            current = await self.auth.get_grant(client_id)
            if _grant_state(current) != {**GRANT_MEMBERS_ADDED, **(change.base or {})}:
                raise ChangeOutdated()
            return await self.auth.replace_grant(client_id, GrantIn.model_validate(change.payload))
        if change.action == SECRET_ROTATE:
            return await self.auth.rotate_secret(
                client_id, int((change.payload or {}).get("grace_seconds", 0))
            )
        client = await self.auth.get_client(client_id)
        if change.action == JWKS_REPLACE:
            if change.base is None or client.jwks != change.base.get("jwks"):
                raise ChangeOutdated()
            return await self.auth.set_jwks(client_id, JWKSetIn.model_validate(change.payload))
        if change.base is None or client.status != change.base.get("status"):
            raise ChangeOutdated()
        return await self.auth.update_client(client_id, ClientUpdate.model_validate(change.payload))

    async def reject(self, change_id: str, *, reason: str | None = None) -> ChangeOut:
        """Refuse a pending change; any administrator may, including the one who asked (a withdrawal)."""
        change = await self._change(change_id)
        if not await self.changes.decide(change, "rejected", by=self.actor, at=utcnow()):
            raise ChangeNotPending()
        await self._audit(
            "admin.change.reject",
            change.target_client_id,
            {
                "change_id": change.change_id,
                "before": {"status": "pending", "requested_by": change.requested_by},
                "after": {"status": "rejected", "decided_by": self.actor},
                **({"reason": reason} if reason else {}),
            },
        )
        return change_view(change)
