"""Operators' use cases: accounts (the CLI), and signing in, sessions and credentials (the console).

Every change is an audit event in the change's own transaction (``add_admin_event``): the CLI's with actor
``cli``, an operator's own with actor ``op:<username>`` (docs/contract.md, section 15). A refused login is
an event too (outcome ``denied``, ``reason`` one of ``bad_credentials``, ``locked``, ``totp_required``,
``totp_invalid``, ``disabled``); an unknown username is recorded as ``op:?``, never as typed.

The answer to any failed login is the same (``LoginOutcome.denied``, one message): whether the username
exists, the account is locked or disabled, or the password or code is wrong. An unknown username is checked
against a dummy hash, so it takes about as long as a wrong password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import lock_chain
from app.audit.writer import Outcome, add_admin_event
from app.db import utcnow
from app.operators import credentials
from app.operators.errors import LastAdminOperator, OperatorExists, OperatorNotFound, invalid
from app.operators.models import Operator, OperatorSession

ROLES: Final = ("admin", "approver", "auditor", "analyst")
Role = Literal["admin", "approver", "auditor", "analyst"]
USERNAME: Final = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MAX_FAILED_LOGINS: Final = 5
LOCKOUT: Final = timedelta(minutes=15)
IDLE_TIMEOUT: Final = timedelta(minutes=15)
ABSOLUTE_TIMEOUT: Final = timedelta(hours=8)
TOUCH_EVERY: Final = timedelta(seconds=15)
"""A session's ``last_seen_at`` is written at most this often (the idle timeout is minutes)."""
UNKNOWN_ACTOR: Final = "op:?"

Stage = Literal["code", "change_password", "enrol", "ready"]


def actor_of(username: str) -> str:
    return f"op:{username}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles in their canonical order; 422 for an unknown one, none at all, or admin with auditor."""
    wanted = {role.strip() for role in roles if role.strip()}
    unknown = wanted - set(ROLES)
    if unknown or not wanted:
        raise invalid("roles", "invalid_roles", f"Roles are one or more of {', '.join(ROLES)}.")
    if {"admin", "auditor"} <= wanted:
        raise invalid(
            "roles", "separation_of_duties", "`admin` and `auditor` are never held by one operator."
        )
    return [role for role in ROLES if role in wanted]


@dataclass(frozen=True, slots=True)
class OperatorView:
    username: str
    display_name: str
    email: str | None
    roles: list[str]
    status: str
    totp_enrolled: bool
    must_change_password: bool
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "email": self.email,
            "roles": self.roles,
            "status": self.status,
            "totp_enrolled": self.totp_enrolled,
            "must_change_password": self.must_change_password,
            "locked_until": _iso(self.locked_until),
            "created_at": _iso(self.created_at),
            "last_login_at": _iso(self.last_login_at),
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def view(operator: Operator) -> OperatorView:
    return OperatorView(
        username=operator.username,
        display_name=operator.display_name,
        email=operator.email,
        roles=list(operator.roles),
        status=operator.status,
        totp_enrolled=operator.totp_secret is not None,
        must_change_password=operator.must_change_password,
        locked_until=operator.locked_until,
        created_at=operator.created_at,
        last_login_at=operator.last_login_at,
    )


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """What a login step gave: ``token`` (the new session's cookie value) and its ``stage``, or ``denied``."""

    denied: bool
    token: str | None = None
    stage: Stage | None = None


DENIED: Final = LoginOutcome(denied=True)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A console request's session and operator, as read from the database for this request."""

    session: OperatorSession
    operator: Operator

    @property
    def username(self) -> str:
        return self.operator.username

    @property
    def actor(self) -> str:
        return actor_of(self.operator.username)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.operator.roles)


class OperatorService:
    """Operators' use cases in one transaction (``session``); the caller commits."""

    def __init__(
        self,
        session: AsyncSession,
        fernet: Fernet,
        *,
        actor: str = "cli",
        request_id: str | None = None,
        require_totp: bool = False,
        client_ip: str | None = None,
    ) -> None:
        self.client_ip = client_ip
        """The operator's address (``app.addresses``), recorded on every event this service writes."""
        self.session = session
        self.fernet = fernet
        self.actor = actor
        self.request_id = request_id
        self.require_totp = require_totp

    async def _audit(
        self,
        action: str,
        detail: dict[str, Any] | None,
        *,
        actor: str | None = None,
        outcome: Outcome = "allowed",
        status_code: int = 200,
        reason: str | None = None,
    ) -> None:
        await add_admin_event(
            self.session,
            action=action,
            actor=actor or self.actor,
            client_id=None,
            detail=detail,
            request_id=self.request_id,
            status_code=status_code,
            outcome=outcome,
            reason=reason,
            client_ip=self.client_ip,
        )

    # --- accounts (the CLI) -------------------------------------------------------------------------------

    async def _get(self, username: str) -> Operator | None:
        if not USERNAME.fullmatch(username):
            return None
        return await self.session.scalar(select(Operator).where(Operator.username == username))

    async def _require(self, username: str) -> Operator:
        operator = await self._get(username)
        if operator is None:
            raise OperatorNotFound()
        return operator

    async def get(self, username: str) -> OperatorView:
        return view(await self._require(username))

    async def list(self) -> list[OperatorView]:
        rows = await self.session.scalars(select(Operator).order_by(Operator.username))
        return [view(row) for row in rows]

    async def create(
        self, username: str, display_name: str, roles: Sequence[str], email: str | None = None
    ) -> tuple[OperatorView, str]:
        """A new operator and its initial password (shown once; changed at first login)."""
        if not USERNAME.fullmatch(username):
            raise invalid(
                "username",
                "invalid_username",
                "2-32 characters: lower-case letters, digits, `.`, `_` or `-`, starting with a letter.",
            )
        display_name = display_name.strip()
        if not 1 <= len(display_name) <= 128 or any(ord(ch) < 32 for ch in display_name):
            raise invalid("display_name", "invalid_display_name", "1-128 printable characters.")
        if email is not None and not re.fullmatch(r"[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,189}", email):
            raise invalid("email", "invalid_email", "Not an e-mail address.")
        checked = check_roles(roles)
        await self._serialise()
        if await self._get(username) is not None:
            raise OperatorExists()
        password = credentials.new_initial_password()
        now = utcnow()
        operator = Operator(
            operator_id=str(uuid.uuid4()),
            username=username,
            display_name=display_name,
            email=email,
            roles=checked,
            status="active",
            password_hash=credentials.hash_password(password),
            must_change_password=True,
            password_changed_at=now,
            totp_secret=None,
            totp_last_step=None,
            failed_logins=0,
            locked_until=None,
            created_at=now,
            last_login_at=None,
        )
        self.session.add(operator)
        await self.session.flush()
        await self._audit(
            "operator.create",
            {"operator": username, "after": {"roles": checked, "status": "active"}},
            status_code=201,
        )
        return view(operator), password

    async def _serialise(self) -> None:
        """The chain head's lock, taken before reading what a change is judged against (the last admin)."""
        await lock_chain(self.session)

    async def _other_active_admins(self, operator: Operator) -> int:
        rows = await self.session.scalars(
            select(Operator).where(Operator.status == "active", Operator.operator_id != operator.operator_id)
        )
        return sum(1 for row in rows if "admin" in row.roles)

    async def set_status(self, username: str, status: Literal["active", "disabled"]) -> OperatorView:
        """Disable (its sessions end at once) or enable an operator."""
        await self._serialise()
        operator = await self._require(username)
        before = operator.status
        if (
            status == "disabled"
            and before == "active"
            and "admin" in operator.roles
            and not await self._other_active_admins(operator)
        ):
            raise LastAdminOperator()
        operator.status = status
        if status == "active":
            operator.failed_logins = 0
            operator.locked_until = None
        await self._end_sessions(operator)
        await self._audit(
            "operator.disable" if status == "disabled" else "operator.enable",
            {"operator": username, "before": {"status": before}, "after": {"status": status}},
        )
        return view(operator)

    async def set_roles(self, username: str, roles: Sequence[str]) -> OperatorView:
        checked = check_roles(roles)
        await self._serialise()
        operator = await self._require(username)
        before = list(operator.roles)
        if (
            "admin" in before
            and "admin" not in checked
            and operator.status == "active"
            and not await self._other_active_admins(operator)
        ):
            raise LastAdminOperator()
        operator.roles = checked
        await self._end_sessions(operator)  # a session's navigation and rights follow the roles it began with
        await self._audit(
            "operator.roles", {"operator": username, "before": {"roles": before}, "after": {"roles": checked}}
        )
        return view(operator)

    async def reset_password(self, username: str) -> str:
        """A new initial password (shown once); the operator's sessions end and the lock is lifted."""
        operator = await self._require(username)
        password = credentials.new_initial_password()
        operator.password_hash = credentials.hash_password(password)
        operator.must_change_password = True
        operator.password_changed_at = utcnow()
        operator.failed_logins = 0
        operator.locked_until = None
        await self._end_sessions(operator)
        await self._audit("operator.password_reset", {"operator": username})
        return password

    async def reset_totp(self, username: str) -> None:
        """Forget the authenticator: the operator enrols a new one at its next login."""
        operator = await self._require(username)
        operator.totp_secret = None
        operator.totp_last_step = None
        await self._end_sessions(operator)
        await self._audit("operator.totp_reset", {"operator": username})

    async def _end_sessions(self, operator: Operator, *, keep: str | None = None) -> None:
        query = delete(OperatorSession).where(OperatorSession.operator_id == operator.operator_id)
        if keep is not None:
            query = query.where(OperatorSession.token_hash != keep)
        await self.session.execute(query)

    # --- signing in -----------------------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> LoginOutcome:
        """The first step: username and password. A session of stage ``code`` when a code must follow."""
        now = utcnow()
        operator = await self._get(username)
        matched = credentials.verify_password(operator.password_hash if operator else None, password)
        if operator is None:
            await self._audit(
                "operator.login",
                {"step": "password"},
                actor=UNKNOWN_ACTOR,
                outcome="denied",
                status_code=401,
                reason="bad_credentials",
            )
            return DENIED
        actor = actor_of(operator.username)
        if operator.status != "active":
            await self._denied(operator, "disabled", step="password", count=False)
            return DENIED
        if operator.locked_until is not None and operator.locked_until > now:
            await self._denied(operator, "locked", step="password", count=False)
            return DENIED
        if not matched:
            await self._denied(operator, "bad_credentials", step="password")
            return DENIED
        if operator.totp_secret is not None:
            token = await self._new_session(operator, "code", now)
            await self._audit(
                "operator.login", {"step": "password", "next": "code"}, actor=actor, status_code=200
            )
            return LoginOutcome(denied=False, token=token, stage="code")
        return await self._signed_in(operator, now, step="password")

    async def login_code(self, token: str, code: str) -> LoginOutcome:
        """The second step: the authenticator code, on the session the first step made (stage ``code``)."""
        now = utcnow()
        found = await self.session_for(token, stages=("code",))
        if found is None:
            return DENIED
        operator = found.operator
        if operator.locked_until is not None and operator.locked_until > now:
            await self._denied(operator, "locked", step="code", count=False)
            await self.session.delete(found.session)
            return DENIED
        secret = self._decrypt(operator.totp_secret)
        if not code.strip():
            await self._denied(operator, "totp_required", step="code")
            return DENIED
        step = credentials.matching_step(secret, code) if secret else None
        if step is None:
            await self._denied(operator, "totp_invalid", step="code")
            return DENIED
        if operator.totp_last_step is not None and step <= operator.totp_last_step:
            await self._denied(operator, "totp_invalid", step="code", replay=True)
            return DENIED
        operator.totp_last_step = step
        await self.session.delete(found.session)  # a new session id once signed in
        return await self._signed_in(operator, now, step="code")

    async def _signed_in(self, operator: Operator, now: datetime, *, step: str) -> LoginOutcome:
        operator.failed_logins = 0
        operator.locked_until = None
        operator.last_login_at = now
        if operator.must_change_password:
            stage: Stage = "change_password"
        elif operator.totp_secret is None and self.require_totp:
            stage = "enrol"
        else:
            stage = "ready"
        token = await self._new_session(operator, stage, now)
        await self._audit("operator.login", {"step": step, "next": stage}, actor=actor_of(operator.username))
        return LoginOutcome(denied=False, token=token, stage=stage)

    async def _denied(
        self, operator: Operator, reason: str, *, step: str, count: bool = True, replay: bool = False
    ) -> None:
        detail: dict[str, Any] = {"step": step}
        if replay:
            detail["replay"] = True
        if count:
            operator.failed_logins += 1
            if operator.failed_logins >= MAX_FAILED_LOGINS:
                operator.failed_logins = 0
                operator.locked_until = utcnow() + LOCKOUT
                detail["locked_until"] = _iso(operator.locked_until)
                await self._end_sessions(operator)
        await self._audit(
            "operator.login",
            detail,
            actor=actor_of(operator.username),
            outcome="denied",
            status_code=401,
            reason=reason,
        )

    async def _new_session(self, operator: Operator, stage: Stage, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        self.session.add(
            OperatorSession(
                token_hash=token_hash(token),
                operator_id=operator.operator_id,
                stage=stage,
                csrf_token=secrets.token_urlsafe(32),
                pending_totp_secret=None,
                created_at=now,
                last_seen_at=now,
            )
        )
        await self.session.flush()
        return token

    # --- sessions ---------------------------------------------------------------------------------------------

    async def session_for(self, token: str | None, *, stages: Sequence[str] = ("ready",)) -> SignedIn | None:
        """The live session ``token`` names, with its operator read now; None when there is none, it has
        expired (idle or absolute), its operator is disabled or locked, or its stage is not in ``stages``."""
        if not token or len(token) > 128:
            return None
        row = (
            await self.session.execute(
                select(OperatorSession, Operator)
                .join(Operator, Operator.operator_id == OperatorSession.operator_id)
                .where(OperatorSession.token_hash == token_hash(token))
            )
        ).one_or_none()
        if row is None:
            return None
        found, operator = row[0], row[1]
        now = utcnow()
        if (
            operator.status != "active"
            or found.last_seen_at + IDLE_TIMEOUT <= now
            or found.created_at + ABSOLUTE_TIMEOUT <= now
        ):
            await self.session.delete(found)
            return None
        if found.stage not in stages:
            return None
        if now - found.last_seen_at >= TOUCH_EVERY:
            await self.session.execute(
                update(OperatorSession)
                .where(OperatorSession.token_hash == found.token_hash)
                .values(last_seen_at=now)
            )
        return SignedIn(found, operator)

    async def logout(self, signed_in: SignedIn) -> None:
        await self.session.delete(signed_in.session)
        await self._audit("operator.logout", None, actor=signed_in.actor)

    # --- an operator's own credentials --------------------------------------------------------------------

    async def change_password(self, signed_in: SignedIn, current: str, new: str, confirm: str) -> Stage:
        """Change one's password (the current one is required); the other sessions end. The next stage."""
        operator = signed_in.operator
        if not credentials.verify_password(operator.password_hash, current):
            raise invalid("password_current", "password_wrong", "The current password is wrong.")
        if new != confirm:
            raise invalid("password_confirm", "password_mismatch", "The two new passwords differ.")
        problem = credentials.password_problem(new, operator.username)
        if problem is not None:
            raise invalid("password_new", problem.code, str(problem))
        if credentials.verify_password(operator.password_hash, new):
            raise invalid("password_new", "password_unchanged", "The new password is the current one.")
        operator.password_hash = credentials.hash_password(new)
        operator.must_change_password = False
        operator.password_changed_at = utcnow()
        await self._end_sessions(operator, keep=signed_in.session.token_hash)
        stage: Stage = "enrol" if operator.totp_secret is None and self.require_totp else "ready"
        signed_in.session.stage = stage
        await self._audit("operator.password_change", None, actor=signed_in.actor)
        return stage

    def start_enrolment(self, signed_in: SignedIn) -> str:
        """A new secret for the session's enrolment (kept, encrypted, until a code from it is entered)."""
        secret = credentials.new_totp_secret()
        signed_in.session.pending_totp_secret = self.fernet.encrypt(secret.encode()).decode()
        return secret

    def pending_secret(self, signed_in: SignedIn) -> str | None:
        return self._decrypt(signed_in.session.pending_totp_secret)

    async def finish_enrolment(self, signed_in: SignedIn, code: str) -> bool:
        """Enrol the pending secret when ``code`` is one of its codes; the authenticator replaces any other."""
        secret = self.pending_secret(signed_in)
        step = credentials.matching_step(secret, code) if secret else None
        if secret is None or step is None:
            await self._audit(
                "operator.totp_enrol",
                None,
                actor=signed_in.actor,
                outcome="denied",
                status_code=422,
                reason="totp_invalid",
            )
            return False
        operator = signed_in.operator
        operator.totp_secret = self.fernet.encrypt(secret.encode()).decode()
        operator.totp_last_step = step
        signed_in.session.pending_totp_secret = None
        if signed_in.session.stage == "enrol":
            signed_in.session.stage = "ready"
        await self._end_sessions(operator, keep=signed_in.session.token_hash)
        await self._audit("operator.totp_enrol", None, actor=signed_in.actor)
        return True

    def _decrypt(self, encrypted: str | None) -> str | None:
        if encrypted is None:
            return None
        try:
            return self.fernet.decrypt(encrypted.encode()).decode()
        except InvalidToken:
            return None
