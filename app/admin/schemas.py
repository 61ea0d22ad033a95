"""The admin API's own shapes: pages, pending changes and signing keys.

Request bodies are the auth context's models (``ClientCreate``, ``ClientUpdate``, ``GrantIn``, ``JWKSetIn``,
``PurposeIn``), which forbid unknown members: the CLI and the REST API accept exactly the same things.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from app.auth.schemas import ClientOut, PurposeOut

ChangeStatus = Literal["pending", "approved", "rejected"]
ChangeAction = Literal[
    "admin.grant.replace", "admin.client.update", "admin.client.secret_rotate", "admin.client.jwks"
]


class ClientPage(BaseModel):
    items: list[ClientOut]
    next_cursor: str | None


class PurposePage(BaseModel):
    items: list[PurposeOut]
    next_cursor: str | None


class ChangeOut(BaseModel):
    """A change that widens access, recorded while ``DANCU_ADMIN__REQUIRE_APPROVAL`` is on."""

    change_id: str
    status: ChangeStatus
    action: ChangeAction
    """The audit action it becomes when approved."""
    target_client_id: str | None
    payload: dict[str, Any]
    """The request body as sent (``PUT .../grant``, ``PATCH .../clients/{id}``, ``PUT .../jwks``; empty for a
    secret rotation)."""
    base: dict[str, Any] | None
    """The target's state when the change was requested; approval is refused (409) once it differs."""
    widens: list[str]
    """What the change would widen: grant members, ``status`` for a reinstatement, ``client_secret`` or
    ``jwks`` for another client's credentials."""
    requested_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class ChangePage(BaseModel):
    items: list[ChangeOut]
    next_cursor: str | None


class SigningKeyOut(BaseModel):
    """A token and attestation signing key (public facts only; the key itself never leaves the database)."""

    kid: str
    alg: str
    active: bool
    created_at: datetime
    retired_at: datetime | None


class SigningKeyPage(BaseModel):
    items: list[SigningKeyOut]
    next_cursor: str | None
