"""Who is calling: the scope dependencies every non-public route is included with.

``require_scope(...)`` reads the Bearer token, verifies it (``app.auth.tokens``; a token seen before costs a
dict lookup and its time checks), then checks the client's status and grant on every request, as held by the
access cache (``app.auth.access``: dropped when they change, so a suspended client, a grant past its
``valid_until`` or a scope taken out of the grant stops working at once: 401 ``invalid_token``). A valid token
without the scope the route needs is 403 ``insufficient_scope``. Routes receive an ``AuthContext``. Nothing
here opens a database session: a request whose client is cached touches no connection.
"""

# No `from __future__ import annotations` here: FastAPI must see the Security(...) built inside
# require_scope as an object, and a string annotation could not reach the closure's variables.
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2

from app.auth.access import AccessCache
from app.auth.context import AuthContext
from app.auth.keys import KeyStore
from app.auth.replay import ReplayStore
from app.auth.service import TOKEN_PATH, grant_in_force
from app.auth.tokens import AccessTokenClaims, cached_access_token, verify_access_token
from app.config import Settings
from app.db import utcnow
from app.errors import InsufficientScope, InvalidToken
from app.jws import TokenRejected, UnknownSigningKey
from app.middleware import record_client
from app.state import AppState, StateKey

KEYS: Final = StateKey[KeyStore]("keys")
"""Signing keys and the client-secret hasher; loads the key table on first use, not at start-up."""
ACCESS: Final = StateKey[AccessCache]("access")
"""Clients, grants and purposes in memory, dropped when they change here or in another process."""
REPLAY: Final = StateKey[ReplayStore]("replay")
"""Used ``private_key_jwt`` assertion ids: Redis when configured, else this process's memory."""

SCOPE_DESCRIPTIONS: Final = {
    "citizen.verify": "Verify a resident's identity.",
    "citizen.read": "Retrieve a resident's record (granted fields and provinces).",
    "household.read": "Retrieve a resident's household.",
    "citizen.confirm": "Have a resident confirm a declaration with a code sent to the registered mobile.",
    "stats.read": "Population statistics of the granted provinces (perturbed counts, never a resident).",
    "audit.read": "Search, export and check the audit log.",
    "audit.subject_report": "Fetch the access report of one resident.",
    "admin": "Manage clients, grants, purposes and signing keys.",
}

oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_PATH, scopes=SCOPE_DESCRIPTIONS)
    ),
    scheme_name="OAuth2",
    description="OAuth 2.0 client credentials; send the access token as `Authorization: Bearer <token>`.",
    auto_error=False,
)


def issuer_for(request: Request, settings: Settings) -> str:
    """``DANCU_ISSUER``, or else the base URL this request reached (``dancu serve`` always sets the former;
    behind a proxy, set it to the public URL)."""
    return settings.issuer or str(request.base_url).rstrip("/")


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken(token_sent=False)
    return token


async def verified_token(request: Request, token: str) -> AccessTokenClaims:
    """The token's claims after every check of ``verify_access_token``; InvalidToken otherwise."""
    state: AppState = request.app.state.dancu
    keys = state[KEYS]
    issuer = issuer_for(request, state.settings)
    audience = state.settings.audience
    try:
        claims = cached_access_token(token, keys.token_cache, issuer=issuer, audience=audience)
        if claims is not None:
            return claims  # its signature was checked before: no key is needed
        await keys.maybe_refresh()
        try:
            return verify_access_token(token, keys, issuer=issuer, audience=audience, cache=keys.token_cache)
        except UnknownSigningKey:
            # A key another process has just made; reloading is rate-limited, kids never come from elsewhere.
            if not await keys.reload_for_unknown_kid():
                raise
            return verify_access_token(token, keys, issuer=issuer, audience=audience, cache=keys.token_cache)
    except TokenRejected:
        raise InvalidToken("The access token is invalid or has expired.") from None


def require_scope(*accepted: str) -> Callable[..., Awaitable[AuthContext]]:
    """A dependency admitting tokens that carry any of ``accepted`` for an active client whose grant, checked
    now, is in force and still holds that scope."""
    wanted = frozenset(accepted)

    async def authorised(
        request: Request,
        authorization: Annotated[str | None, Security(oauth2_scheme, scopes=list(accepted))],
    ) -> AuthContext:
        claims = await verified_token(request, _bearer_token(authorization))
        state: AppState = request.app.state.dancu
        client = await state[ACCESS].client(claims.client_id)
        if client is None:
            raise InvalidToken("The client no longer exists.")
        if not client.active:
            raise InvalidToken("The client is suspended.")
        grant = client.grant
        if not grant_in_force(grant, utcnow()):
            raise InvalidToken("The client's grant is not in force.")
        if not claims.scopes & wanted:
            raise InsufficientScope()
        scopes = claims.scopes & grant.scopes
        if not scopes & wanted:
            raise InvalidToken("The client's grant no longer allows this scope.")
        record_client(request.scope, client.client_id)  # labels this request's log lines and metrics
        return AuthContext(
            client_id=client.client_id,
            client_name=client.name,
            token_scopes=scopes,
            grant=grant,
            token_id=claims.jti,
        )

    authorised.__name__ = "require_" + "_or_".join(s.replace(".", "_") for s in accepted)
    return authorised


# One function per alias, so that a router included with ``dependencies=[Depends(require_admin)]`` and a
# route that takes ``AdminClient`` share one (cached) check per request.
require_verify = require_scope("citizen.verify")
require_read = require_scope("citizen.read")
require_household = require_scope("household.read")
require_confirm = require_scope("citizen.confirm")
require_stats = require_scope("stats.read")
require_audit_read = require_scope("audit.read")
require_subject_report = require_scope("audit.read", "audit.subject_report")
require_admin = require_scope("admin")

VerifyClient = Annotated[AuthContext, Depends(require_verify)]
ReadClient = Annotated[AuthContext, Depends(require_read)]
AuditReader = Annotated[AuthContext, Depends(require_audit_read)]
SubjectReportReader = Annotated[AuthContext, Depends(require_subject_report)]
AdminClient = Annotated[AuthContext, Depends(require_admin)]
