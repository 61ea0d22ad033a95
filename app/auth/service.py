"""The auth context's use cases: client, grant, purpose and key administration, and issuing access tokens.

The CLI calls these today and the admin API will call the same methods. Services flush, never commit: the
caller commits once. Every administrative change writes its audit event in the same transaction, through the
``ChangeLog`` it is given (``app.audit.writer.AdminLog``), with ``detail: {before, after}`` that never holds
a secret or its hash.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import vnid
from app.auth.context import CITIZEN_SCOPES, SCOPES, Grant
from app.auth.errors import (
    AdminExists,
    ClientNotFound,
    InvalidClient,
    InvalidScope,
    LastAdministrator,
    NoKeysRegistered,
    PurposeExists,
    PurposeInUse,
    PurposeNotFound,
    ReplayStoreUnavailable,
    TemporarilyUnavailable,
)
from app.auth.keys import KeyStore, SecretHasher, new_client_secret
from app.auth.models import Client, ClientGrant, Purpose
from app.auth.replay import ReplayStore
from app.auth.repository import ClientRepository, PurposeRepository
from app.auth.schemas import (
    MAX_SECRET_GRACE_SECONDS,
    ClientCreate,
    ClientCreated,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
    GrantIn,
    GrantOut,
    JWKSetIn,
    PurposeIn,
    PurposeOut,
)
from app.auth.tokens import (
    IssuedAccessToken,
    issue_access_token,
    public_jwks_problems,
    registrable_jwks,
    unverified_assertion_subject,
    verify_client_assertion,
)
from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from app.config import Settings
from app.db import utcnow
from app.errors import FieldError, ValidationFailed
from app.jws import TokenRejected, jwk_thumbprint
from app.problems import field_errors

logger = logging.getLogger(__name__)

CLI_ACTOR: Final = "cli"
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path
JWKS_PATH: Final = "/.well-known/jwks.json"
JWKS_MAX_AGE_SECONDS: Final = 300
"""How long a verifier may cache the JWKS (``Cache-Control: public, max-age``); a ``kid`` it does not know
means "fetch again" (a key rotated in this window), docs/contract.md, Keys and metadata."""
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "private_key_jwt")
ASSERTION_ALGS: Final = ("ES256", "RS256")

DEFAULT_FIELDS: Final = frozenset(
    f for f in RESIDENT_FIELDS if f not in SENSITIVE_FIELDS and f != "personal_id"
)
"""What ``"*"`` in a grant's ``fields`` stands for: every field that is not sensitive (``personal_id`` is
always returned and never granted)."""

_EXCLUSIVE_SCOPES: Final = {
    "admin": frozenset({"audit.read", "audit.subject_report", "stats.read", *CITIZEN_SCOPES}),
    "audit.read": frozenset({"admin", "stats.read", *CITIZEN_SCOPES}),
    "stats.read": frozenset({"admin", "audit.read"}),
    "audit.subject_report": frozenset({"admin", *CITIZEN_SCOPES}),
}
"""Separation of duties: ``admin`` and ``audit.read`` never share a grant with each other or citizen scopes;
``stats.read`` (statistics) may sit with citizen scopes but never with ``admin`` or ``audit.read``;
``audit.subject_report`` belongs to the audit side (with ``audit.read`` if need be), never with ``admin`` or a
citizen scope: an administrator could otherwise grant itself every resident's access report, and a portal that
reads residents would also read who else looked at them."""

_DUMMY_SECRET_HASH: Final = "0" * 64

Model = TypeVar("Model", bound=BaseModel)


def parse(model: type[Model], data: Mapping[str, Any], *, language: str = "en") -> Model:
    """``data`` as ``model``; ValidationFailed (with ``errors``, never echoing a value) otherwise."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationFailed(
            field_errors(exc.errors(), language="vi" if language == "vi" else "en")
        ) from None


def _error(loc: Sequence[str | int], code: str, message: str) -> FieldError:
    return {"loc": list(loc), "code": code, "message": message}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _purpose_view(purpose: Purpose) -> PurposeOut:
    return PurposeOut(
        code=purpose.code,
        title=purpose.title,
        legal_basis=purpose.legal_basis,
        created_at=purpose.created_at,
        retired_at=purpose.retired_at,
    )


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- views --------------------------------------------------------------------------------------------------


def client_view(client: Client) -> ClientOut:
    return ClientOut(
        client_id=client.client_id,
        name=client.name,
        description=client.description,
        contact_email=client.contact_email,
        status="suspended" if client.status == "suspended" else "active",
        jwks=client.jwks,
        secret_enabled=client.secret_enabled is not False,
        previous_secret_until=_grace_until(client, utcnow()),
        created_at=client.created_at,
        updated_at=client.updated_at,
    )


def _grace_until(client: Client, now: datetime) -> datetime | None:
    """Until when the client's previous secret is accepted; None when it is not (any more)."""
    until = client.previous_secret_until
    return until if client.previous_secret_hash and until is not None and now < until else None


def grant_view(grant: ClientGrant) -> GrantOut:
    return GrantOut(
        client_id=grant.client_id,
        scopes=list(grant.scopes),
        fields=list(grant.fields),
        provinces=list(grant.provinces),
        purposes=list(grant.purposes),
        verify_details=grant.verify_details,
        rate_limit_per_minute=grant.rate_limit_per_minute,
        distinct_subjects_per_day=grant.distinct_subjects_per_day,
        require_end_user=grant.require_end_user,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        updated_at=grant.updated_at,
    )


def _client_audit(client: Client) -> dict[str, Any]:
    """What an audit event records about a client: never the secret or its hash."""
    return {
        "name": client.name,
        "description": client.description,
        "contact_email": client.contact_email,
        "status": client.status,
    }


def _grant_audit(grant: ClientGrant) -> dict[str, Any]:
    return grant_view(grant).model_dump(mode="json", exclude={"client_id", "updated_at"})


def jwks_audit(jwks: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not jwks:
        return None
    return {
        "keys": [
            {"kid": k.get("kid"), "kty": k.get("kty"), "thumbprint": jwk_thumbprint(k)} for k in jwks["keys"]
        ]
    }


class StoredGrant(Protocol):
    """The columns of a stored grant that ``expand_grant`` reads: a ``ClientGrant``, or a row of the same
    columns (the access cache selects them without the ORM)."""

    @property
    def scopes(self) -> Sequence[str]: ...
    @property
    def fields(self) -> Sequence[str]: ...
    @property
    def provinces(self) -> Sequence[str]: ...
    @property
    def purposes(self) -> Sequence[str]: ...
    @property
    def verify_details(self) -> bool: ...
    @property
    def rate_limit_per_minute(self) -> int: ...
    @property
    def distinct_subjects_per_day(self) -> int: ...
    @property
    def require_end_user(self) -> bool: ...
    @property
    def valid_from(self) -> datetime | None: ...
    @property
    def valid_until(self) -> datetime | None: ...


def expand_grant(grant: StoredGrant) -> Grant:
    """The grant as the citizen, audit and admin code receive it: ``"*"`` fields expanded, ``["*"]``
    provinces as None. Unknown names stored by an older version are dropped (deny by default)."""
    fields: set[str] = set()
    for name in grant.fields:
        if name == "*":
            fields |= DEFAULT_FIELDS
        elif name in RESIDENT_FIELDS and name != "personal_id":
            fields.add(name)
    return Grant(
        scopes=frozenset(s for s in grant.scopes if s in SCOPES),
        fields=frozenset(fields),
        provinces=None if list(grant.provinces) == ["*"] else frozenset(grant.provinces),
        purposes=frozenset(grant.purposes),
        verify_details=grant.verify_details,
        rate_limit_per_minute=grant.rate_limit_per_minute,
        distinct_subjects_per_day=grant.distinct_subjects_per_day,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        require_end_user=grant.require_end_user,
    )


def grant_in_force(grant: ClientGrant | Grant | GrantIn, now: datetime) -> bool:
    return (grant.valid_from is None or grant.valid_from <= now) and (
        grant.valid_until is None or now < grant.valid_until
    )


def grant_problems(spec: GrantIn, registered_purposes: set[str]) -> list[FieldError]:
    """Why ``spec`` cannot be a grant (empty when it can). Messages name the rule, never the value."""
    problems: list[FieldError] = []
    for index, scope in enumerate(spec.scopes):
        if scope not in SCOPES:
            problems.append(_error(["scopes", index], "unknown_scope", "Unknown scope."))
    scopes = set(spec.scopes)
    for scope, excluded in _EXCLUSIVE_SCOPES.items():
        if scope in scopes and scopes & excluded:
            problems.append(
                _error(
                    ["scopes"],
                    "separation_of_duties",
                    f"`{scope}` may not share a grant with {', '.join(f'`{s}`' for s in sorted(scopes & excluded))}.",
                )
            )
            break
    for index, name in enumerate(spec.fields):
        if name == "personal_id":
            problems.append(
                _error(
                    ["fields", index],
                    "personal_id_not_grantable",
                    "`personal_id` is always returned; do not name it.",
                )
            )
        elif name != "*" and name not in RESIDENT_FIELDS:
            problems.append(_error(["fields", index], "unknown_field", "Unknown field."))
    if "*" in spec.provinces:
        if spec.provinces != ["*"]:
            problems.append(_error(["provinces"], "invalid_province", "`*` must stand alone."))
    else:
        for index, code in enumerate(spec.provinces):
            if code not in vnid.PROVINCES_2025:
                problems.append(
                    _error(["provinces", index], "invalid_province", "Not a two-digit 2025 province code.")
                )
    for index, purpose in enumerate(spec.purposes):
        if purpose not in registered_purposes:
            problems.append(_error(["purposes", index], "unknown_purpose", "Purpose is not registered."))
    if spec.valid_from and spec.valid_until and spec.valid_until <= spec.valid_from:
        problems.append(_error(["valid_until"], "invalid_window", "Must be after `valid_from`."))
    return problems


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: ClientOut
    client_secret: str

    def created(self) -> ClientCreated:
        return ClientCreated(**self.client.model_dump(), client_secret=self.client_secret)


class ChangeLog(Protocol):
    """Where administrative changes are recorded: in the audit log, in the change's own transaction, on
    behalf of whoever makes them (``app.audit.writer.AdminLog``). Named here rather than imported: the audit
    package sits above auth (its routes authenticate through auth), so auth never imports it."""

    async def record(self, action: str, client_id: str | None, detail: Mapping[str, Any] | None) -> None: ...
    async def serialise(self) -> None:
        """From now until the transaction ends, other administrative changes wait for this one."""
        ...


class AuthService:
    """Administration of clients, grants, purposes and signing keys; each change recorded in ``changes``."""

    def __init__(self, session: AsyncSession, hasher: SecretHasher, changes: ChangeLog) -> None:
        self.session = session
        self.hasher = hasher
        self.changes = changes
        self.clients = ClientRepository(session)
        self.purposes = PurposeRepository(session)

    async def _audit(self, action: str, client_id: str | None, before: Any, after: Any) -> None:
        await self.changes.record(action, client_id, {"before": before, "after": after})

    async def _client(self, client_id: str) -> Client:
        client = await self.clients.get(client_id)
        if client is None:
            raise ClientNotFound()
        return client

    # clients

    async def create_client(self, data: ClientCreate) -> CreatedClient:
        """A new active client with a grant that allows nothing; the secret is returned this once."""
        secret = new_client_secret()
        now = utcnow()
        client = Client(
            client_id="c_" + secrets.token_hex(12),
            name=unicodedata.normalize("NFC", data.name),
            description=unicodedata.normalize("NFC", data.description) if data.description else None,
            contact_email=data.contact_email,
            status="active",
            secret_hash=self.hasher.hash(secret),
            secret_kid=self.hasher.kid,
            secret_enabled=True,
            jwks=None,
            created_at=now,
            updated_at=now,
        )
        grant = ClientGrant(
            client_id=client.client_id,
            scopes=[],
            fields=[],
            provinces=[],
            purposes=[],
            verify_details=False,
            rate_limit_per_minute=600,
            distinct_subjects_per_day=5000,
            require_end_user=False,
            valid_from=None,
            valid_until=None,
            updated_at=now,
        )
        await self.clients.add(client, grant)
        await self._audit("admin.client.create", client.client_id, None, _client_audit(client))
        return CreatedClient(client_view(client), secret)

    async def get_client(self, client_id: str) -> ClientOut:
        return client_view(await self._client(client_id))

    async def list_clients(self, *, after: str | None = None, limit: int = 50) -> list[ClientOut]:
        return [client_view(c) for c in await self.clients.page(after=after, limit=limit)]

    async def update_client(self, client_id: str, data: ClientUpdate) -> ClientOut:
        """Edit, suspend or reinstate; a suspended client's tokens stop working at the next request.

        Nobody suspends the last active administrator (409 ``conflict``)."""
        client = await self._client(client_id)
        before = _client_audit(client)
        changes = data.model_dump(exclude_unset=True, exclude={"reason"})
        if changes.get("status") == "suspended" and client.status != "suspended":
            await self._keep_an_administrator(client_id)
        for name in ("name", "description"):
            if isinstance(changes.get(name), str):
                changes[name] = unicodedata.normalize("NFC", changes[name])
        for name, value in changes.items():
            if name == "name" and value is None:
                continue  # the name is required: null leaves it as it is
            setattr(client, name, value)
        after = _client_audit(client)
        if after != before:
            client.updated_at = utcnow()
            await self.session.flush()
            detail = {"before": before, "after": after, **({"reason": data.reason} if data.reason else {})}
            await self.changes.record("admin.client.update", client_id, detail)
        return client_view(client)

    async def _keep_an_administrator(self, client_id: str) -> None:
        """LastAdministrator when ``client_id`` is the only active client whose grant holds ``admin`` in force
        (it is about to be suspended or to lose ``admin``).

        Judged under the change log's lock (``ChangeLog.serialise``: the audit chain's, which every
        administrative change takes before it commits): two administrators suspending each other at the same
        moment are judged one after the other, and the second sees the first's change (on PostgreSQL, each
        statement after the lock reads what is committed; on SQLite, the lock is the database's write lock,
        taken before anything is read here)."""
        await self.changes.serialise()
        now = utcnow()
        admins = {
            row.client_id
            for row in await self.clients.active_grants()
            if "admin" in row.scopes
            and (row.valid_from is None or row.valid_from <= now)
            and (row.valid_until is None or now < row.valid_until)
        }
        if admins == {client_id}:
            raise LastAdministrator()

    async def set_status(self, client_id: str, status: str) -> ClientOut:
        return await self.update_client(
            client_id, ClientUpdate(status="suspended" if status == "suspended" else "active")
        )

    async def rotate_secret(self, client_id: str, grace_seconds: int = 0) -> ClientSecretOut:
        """A new secret (turning secret authentication on again if it was off). The old one stops working
        when this commits, or with ``grace_seconds`` (at most 24 hours) at the end of that window, so a portal
        can be redeployed with the new one without an outage. A secret that was off gets no grace."""
        if not 0 <= grace_seconds <= MAX_SECRET_GRACE_SECONDS:
            raise ValidationFailed(
                [_error(["body", "grace_seconds"], "less_than_equal", "Must be at most 86400.")]
            )
        client = await self._client(client_id)
        now = utcnow()
        before = {
            "secret_enabled": client.secret_enabled is not False,
            "previous_secret_until": _iso(_grace_until(client, now)),
        }
        secret = new_client_secret()
        if grace_seconds and client.secret_enabled is not False:
            client.previous_secret_hash = client.secret_hash
            client.previous_secret_kid = client.secret_kid
            client.previous_secret_until = now + timedelta(seconds=grace_seconds)
        else:
            client.previous_secret_hash = client.previous_secret_kid = client.previous_secret_until = None
        client.secret_hash = self.hasher.hash(secret)
        client.secret_kid = self.hasher.kid
        client.secret_enabled = True
        client.updated_at = now
        await self.session.flush()
        after = {
            "secret_enabled": True,
            "previous_secret_until": _iso(_grace_until(client, now)),
            "grace_seconds": grace_seconds,
        }
        await self._audit("admin.client.secret_rotate", client_id, before, after)
        return ClientSecretOut(
            client_id=client_id, client_secret=secret, previous_secret_until=_grace_until(client, now)
        )

    async def disable_secret(self, client_id: str) -> ClientOut:
        """Turn secret authentication off: the client keeps only ``private_key_jwt`` (it must have registered
        keys: 409 ``conflict`` otherwise, it would be locked out). Any grace of a previous secret ends too."""
        client = await self._client(client_id)
        if not client.jwks or not client.jwks.get("keys"):
            raise NoKeysRegistered()
        now = utcnow()
        before = {
            "secret_enabled": client.secret_enabled is not False,
            "previous_secret_until": _iso(_grace_until(client, now)),
        }
        client.secret_enabled = False
        client.previous_secret_hash = client.previous_secret_kid = client.previous_secret_until = None
        client.updated_at = now
        await self.session.flush()
        await self._audit(
            "admin.client.secret_disable",
            client_id,
            before,
            {"secret_enabled": False, "previous_secret_until": None},
        )
        return client_view(client)

    async def set_jwks(self, client_id: str, jwks: JWKSetIn | Mapping[str, Any]) -> ClientOut:
        """Register the client's public keys for ``private_key_jwt`` (a private or symmetric key is 422)."""
        document = jwks.model_dump() if isinstance(jwks, JWKSetIn) else dict(jwks)
        problems = public_jwks_problems(document)
        if problems:
            raise ValidationFailed(problems)
        client = await self._client(client_id)
        before = jwks_audit(client.jwks)
        client.jwks = registrable_jwks(document) if document["keys"] else None
        client.updated_at = utcnow()
        await self.session.flush()
        await self._audit("admin.client.jwks", client_id, before, jwks_audit(client.jwks))
        return client_view(client)

    # grants

    async def get_grant(self, client_id: str) -> GrantOut:
        grant = await self.clients.get_grant(client_id)
        if grant is None:
            raise ClientNotFound()
        return grant_view(grant)

    async def replace_grant(self, client_id: str, spec: GrantIn) -> GrantOut:
        """Replace the whole grant; unknown scope, field, province or purpose, or mixed duties, is 422."""
        grant = await self.clients.get_grant(client_id)
        if grant is None:
            raise ClientNotFound()
        problems = grant_problems(spec, await self.purposes.registered(set(spec.purposes)))
        if problems:
            raise ValidationFailed(problems)
        if "admin" in grant.scopes and not ("admin" in spec.scopes and grant_in_force(spec, utcnow())):
            await self._keep_an_administrator(client_id)
        before = _grant_audit(grant)
        grant.scopes = [s for s in SCOPES if s in spec.scopes]
        grant.fields = _unique(spec.fields)
        grant.provinces = _unique(spec.provinces)
        grant.purposes = _unique(spec.purposes)
        grant.verify_details = spec.verify_details
        grant.rate_limit_per_minute = spec.rate_limit_per_minute
        grant.distinct_subjects_per_day = spec.distinct_subjects_per_day
        grant.require_end_user = spec.require_end_user
        grant.valid_from = spec.valid_from
        grant.valid_until = spec.valid_until
        grant.updated_at = utcnow()
        await self.session.flush()
        await self._audit("admin.grant.replace", client_id, before, _grant_audit(grant))
        return grant_view(grant)

    # purposes

    async def add_purpose(self, data: PurposeIn) -> PurposeOut:
        """Register a purpose of use; registering a code twice, in any mix of case, is 409 ``conflict``
        (``p1`` and ``P1`` side by side would read as one purpose in every report)."""
        if await self.purposes.get_folded(data.code) is not None:
            raise PurposeExists()
        purpose = Purpose(
            code=data.code,
            code_folded=data.code.lower(),
            title=unicodedata.normalize("NFC", data.title),
            legal_basis=unicodedata.normalize("NFC", data.legal_basis),
            created_at=utcnow(),
        )
        try:
            await self.purposes.add(purpose)
        except IntegrityError:  # registered by another request since the check above
            raise PurposeExists() from None
        after = {"code": purpose.code, "title": purpose.title, "legal_basis": purpose.legal_basis}
        await self._audit("admin.purpose.create", None, None, after)
        return _purpose_view(purpose)

    async def retire_purpose(self, code: str) -> PurposeOut:
        """Retire a purpose: kept for the events and reports that name it, refused from now on in grants and
        calls. 404 for an unknown code; 409 ``conflict`` while a grant still names it (narrow the grants
        first). Retiring a retired purpose changes nothing and writes no event."""
        purpose = await self.purposes.get(code)
        if purpose is None:
            raise PurposeNotFound()
        if purpose.retired_at is not None:
            return _purpose_view(purpose)
        if await self.purposes.granted_to(code):
            raise PurposeInUse()
        purpose.retired_at = utcnow()
        await self.session.flush()
        await self._audit(
            "admin.purpose.retire",
            None,
            {"code": purpose.code, "retired_at": None},
            {"code": purpose.code, "retired_at": _iso(purpose.retired_at)},
        )
        return _purpose_view(purpose)

    async def list_purposes(self) -> list[PurposeOut]:
        return [_purpose_view(p) for p in await self.purposes.all()]

    # keys

    async def rotate_signing_key(self, keys: KeyStore) -> str:
        """A new active signing key; the old ones stay published. Returns the new ``kid``."""
        before = (await keys.signing_key()).kid
        key = await keys.rotate(self.session)
        await self._audit("admin.key.rotate", None, {"active_kid": before}, {"active_kid": key.kid})
        return key.kid

    # bootstrap

    async def bootstrap_admin(self, name: str) -> CreatedClient:
        """The first admin client (scope ``admin`` alone); refused once any grant holds ``admin``."""
        if any("admin" in scopes for scopes in await self.clients.all_grant_scopes()):
            raise AdminExists()
        created = await self.create_client(parse(ClientCreate, {"name": name}))
        await self.replace_grant(created.client.client_id, GrantIn(scopes=["admin"]))
        return created


# --- issuing access tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretCredentials:
    """``client_secret_basic`` (``basic`` true) or ``client_secret_post``."""

    client_id: str
    client_secret: str
    basic: bool


@dataclass(frozen=True, slots=True)
class AssertionCredentials:
    """``private_key_jwt``; ``client_id`` is the form's optional ``client_id``."""

    assertion: str
    client_id: str | None


ClientCredentials = SecretCredentials | AssertionCredentials


def token_endpoint(issuer: str) -> str:
    return issuer.rstrip("/") + TOKEN_PATH


class TokenService:
    """``client_credentials``: authenticate the client, check its status and grant, sign a token."""

    def __init__(
        self, session: AsyncSession, keys: KeyStore, replay: ReplayStore, settings: Settings
    ) -> None:
        self.session = session
        self.clients = ClientRepository(session)
        self.keys = keys
        self.replay = replay
        self.settings = settings

    async def issue(
        self, credentials: ClientCredentials, *, scope: str | None, issuer: str
    ) -> IssuedAccessToken:
        """A signed access token; InvalidClient, InvalidScope or TemporarilyUnavailable otherwise."""
        basic = isinstance(credentials, SecretCredentials) and credentials.basic
        client, grant = await self._authenticate(credentials, issuer=issuer)
        if client.status != "active":
            raise InvalidClient("The client is suspended.", basic=basic)
        if not grant_in_force(grant, utcnow()):
            raise InvalidClient("The client's grant is not in force.", basic=basic)
        scopes = self._scopes(grant, scope)
        client_id = client.client_id
        # Give the connection back before the key store may need one (it reloads keys with its own
        # session): holding it here deadlocks the pool when many token requests arrive at once.
        await self.session.rollback()
        key = await self.keys.signing_key()
        issued = issue_access_token(
            key,
            issuer=issuer,
            audience=self.settings.audience,
            client_id=client_id,
            scopes=scopes,
            ttl_seconds=self.settings.token_ttl_seconds,
        )
        logger.info("issued access token client_id=%s jti=%s scope=%s", client_id, issued.jti, issued.scope)
        return issued

    async def _authenticate(
        self, credentials: ClientCredentials, *, issuer: str
    ) -> tuple[Client, ClientGrant]:
        if isinstance(credentials, SecretCredentials):
            found = (
                await self.clients.get_with_grant(credentials.client_id)
                if 0 < len(credentials.client_id) <= 64
                else None
            )
            # The HMAC is computed for unknown clients too, so both failures take the same time.
            stored_hash, stored_kid = (
                (found[0].secret_hash, found[0].secret_kid) if found else (_DUMMY_SECRET_HASH, "")
            )
            matches = self.keys.secrets.matches(credentials.client_secret, stored_hash, stored_kid)
            if found is not None and not matches and _grace_until(found[0], utcnow()) is not None:
                previous = found[0]
                matches = self.keys.secrets.matches(
                    credentials.client_secret,
                    previous.previous_secret_hash or "",
                    previous.previous_secret_kid or "",
                )
                if matches:
                    logger.info(
                        "client_id=%s authenticated with its previous secret (grace period)",
                        previous.client_id,
                    )
            if found is None or not matches:
                raise InvalidClient(basic=credentials.basic)
            if found[0].secret_enabled is False:
                logger.info(
                    "client_id=%s sent a secret, but its secret authentication is off", found[0].client_id
                )
                raise InvalidClient(basic=credentials.basic)
            return found
        subject = unverified_assertion_subject(credentials.assertion)
        if subject is None or (credentials.client_id is not None and credentials.client_id != subject):
            raise InvalidClient()
        found = await self.clients.get_with_grant(subject)
        if found is None or not found[0].jwks:
            raise InvalidClient()
        try:
            await verify_client_assertion(
                credentials.assertion,
                found[0].jwks,
                client_id=subject,
                audiences=(token_endpoint(issuer), issuer),
                replay=self.replay,
            )
        except TokenRejected as exc:
            logger.info("client assertion refused for client_id=%s: %s", subject, exc)
            raise InvalidClient() from None
        except ReplayStoreUnavailable:
            raise TemporarilyUnavailable(
                "The assertion replay store is unavailable; try again later or use a client secret."
            ) from None
        return found

    @staticmethod
    def _scopes(grant: ClientGrant, requested: str | None) -> list[str]:
        granted = [s for s in SCOPES if s in grant.scopes]
        if requested is None or not requested.strip():
            if not granted:
                raise InvalidScope("The client's grant allows no scope.")
            return granted
        wanted = _unique(requested.split())
        if any(s not in granted for s in wanted):
            raise InvalidScope("A requested scope is not in the client's grant.")
        return wanted
