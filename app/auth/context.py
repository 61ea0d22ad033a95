"""Who is calling and what their grant allows: what the citizen, audit and admin routes receive.

Built per request by the scope dependencies (``app.auth.dependencies``) from a verified access token and the
client's row and grant as the access cache holds them (``app.auth.access``: a suspension or a grant change is
seen by the process that made it on its next request and by every other process within 1 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SCOPES: tuple[str, ...] = (
    "citizen.verify",
    "citizen.read",
    "household.read",
    "citizen.confirm",
    "stats.read",
    "audit.read",
    "audit.subject_report",
    "admin",
    "metrics.read",
)
CITIZEN_SCOPES = frozenset({"citizen.verify", "citizen.read", "household.read", "citizen.confirm"})


@dataclass(frozen=True, slots=True)
class Grant:
    """A client's grant, with ``fields`` already expanded (``"*"`` → every non-sensitive field)."""

    scopes: frozenset[str]
    fields: frozenset[str]
    provinces: frozenset[str] | None
    """2025 province codes; None means every province (``["*"]``)."""
    purposes: frozenset[str]
    verify_details: bool
    rate_limit_per_minute: int
    distinct_subjects_per_day: int
    valid_from: datetime | None
    valid_until: datetime | None
    require_end_user: bool = False
    """Every citizen, statistics and confirmation call must carry ``X-End-User`` (else 400
    ``end_user_required``)."""

    def covers_province(self, province: str | None) -> bool:
        return self.provinces is None or (province is not None and province in self.provinces)

    def lacks_end_user(self, end_user: str | None) -> bool:
        """Whether a call with this ``X-End-User`` (None: not sent) is refused with 400 ``end_user_required``:
        the one rule of the citizen, statistics, prefill and confirmation routes."""
        return end_user is None and self.require_end_user


@dataclass(frozen=True, slots=True)
class AuthContext:
    client_id: str
    client_name: str
    token_scopes: frozenset[str]
    """The scopes in the access token (a subset of the grant's)."""
    grant: Grant
    token_id: str
    """The access token's ``jti``."""
