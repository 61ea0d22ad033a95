"""The auth context's request and response shapes (the CLI and, later, the admin API share them).

Request models forbid unknown members (no mass assignment) and never echo a submitted value in an error.
Semantic checks that need the database or the domain tables (registered purposes, province codes,
separation of duties) are the service's, not these models'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from app.inputs import RequestModel, in_range_utc

PURPOSE_CODE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
Token = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Status = Literal["active", "suspended"]


UTCTimestamp = Annotated[AwareDatetime, AfterValidator(in_range_utc)]
"""Any offset in, UTC out: answers and audit events say the same instant the same way. Years 1900-9999 only
(in UTC), so every database stores it and no comparison overflows."""

MAX_LIMIT_VALUE = 1_000_000_000
"""The largest ``rate_limit_per_minute`` and ``distinct_subjects_per_day``: a billion is "no practical limit",
and it fits every database's integer column (PostgreSQL's ``integer`` ends at 2,147,483,647)."""
Limit = Annotated[int, Field(gt=0, le=MAX_LIMIT_VALUE)]


class _Request(RequestModel, BaseModel):  # BaseModel named too: linters see the pydantic model
    model_config = ConfigDict(frozen=True)


class ClientCreate(_Request):
    name: Name
    description: Text | None = None
    contact_email: Email | None = None


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ClientUpdate(_Request):
    name: Name | None = None
    description: Text | None = None
    contact_email: Email | None = None
    status: Status | None = None
    reason: Reason | None = None
    """Why (a suspension or reinstatement above all): recorded in the change's audit event, not on the client."""


class GrantIn(_Request):
    """A whole grant (``PUT`` replaces it); defaults allow nothing."""

    scopes: Annotated[list[Token], Field(max_length=16)] = []
    fields: Annotated[list[Token], Field(max_length=64)] = []
    """Field names; ``"*"`` stands for every non-sensitive field and may be combined with sensitive ones."""
    provinces: Annotated[list[Token], Field(max_length=64)] = []
    """Two-digit 2025 province codes, or ``["*"]``."""
    purposes: Annotated[list[Token], Field(max_length=1000)] = []
    verify_details: bool = False
    rate_limit_per_minute: Limit = 600
    distinct_subjects_per_day: Limit = 5000
    require_end_user: bool = False
    """True: every citizen, statistics and confirmation call must name its end user in ``X-End-User``."""
    valid_from: UTCTimestamp | None = None
    valid_until: UTCTimestamp | None = None


class GrantOut(BaseModel):
    client_id: str
    scopes: list[str]
    fields: list[str]
    provinces: list[str]
    purposes: list[str]
    verify_details: bool
    rate_limit_per_minute: int
    distinct_subjects_per_day: int
    require_end_user: bool = False
    valid_from: datetime | None
    valid_until: datetime | None
    updated_at: datetime


class ClientOut(BaseModel):
    client_id: str
    name: str
    description: str | None
    contact_email: str | None
    status: Status
    jwks: dict[str, Any] | None
    """The public keys registered for ``private_key_jwt``."""
    secret_enabled: bool = True
    """False: the client secret is refused; the client authenticates with ``private_key_jwt`` only."""
    previous_secret_until: datetime | None = None
    """After a rotation with ``grace_seconds``: until when the previous secret is still accepted."""
    created_at: datetime
    updated_at: datetime


class ClientCreated(ClientOut):
    client_secret: str
    """Shown this once; the gateway keeps only a keyed hash of it."""


MAX_SECRET_GRACE_SECONDS = 86400


class SecretRotationIn(_Request):
    """``POST /v1/admin/clients/{client_id}/secret``: the body is optional."""

    grace_seconds: Annotated[int, Field(ge=0, le=MAX_SECRET_GRACE_SECONDS)] = 0
    """How long the previous secret keeps working (0: it stops at once; at most 24 hours)."""


class ClientSecretOut(BaseModel):
    client_id: str
    client_secret: str
    previous_secret_until: datetime | None = None
    """Until when the previous secret is still accepted (null: it no longer is)."""


class JWKSetIn(_Request):
    keys: Annotated[list[dict[str, Any]], Field(max_length=10)]


class PurposeIn(_Request):
    code: Annotated[str, StringConstraints(pattern=PURPOSE_CODE_PATTERN)]
    title: Text
    """Vietnamese; stored in NFC."""
    legal_basis: Text
    """The legal document and article."""


class PurposeOut(BaseModel):
    code: str
    title: str
    legal_basis: str
    created_at: datetime
    retired_at: datetime | None = None
    """When it was retired (``DELETE /v1/admin/purposes/{code}``); null while in use."""


# --- the OAuth endpoints -------------------------------------------------------------------------------------


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class OAuthErrorResponse(BaseModel):
    """RFC 6749 §5.2."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "invalid_scope",
        "unsupported_grant_type",
        "temporarily_unavailable",
    ]
    error_description: str


class JWKSet(BaseModel):
    keys: list[dict[str, Any]]


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414, plus ``audience``: the ``aud`` of every access token."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    audience: str
