"""The public OAuth endpoints: ``POST /oauth2/token``, the JWKS and the RFC 8414 metadata document.

The token endpoint answers errors in RFC 6749 §5.2 form (``{"error", "error_description"}``), not as problems.
Its form is parsed here (``application/x-www-form-urlencoded``; a repeated parameter is ``invalid_request``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.auth.context import SCOPES
from app.auth.dependencies import KEYS, REPLAY, issuer_for
from app.auth.errors import InvalidClient, InvalidRequest, OAuthError, UnsupportedGrantType
from app.auth.schemas import AuthorizationServerMetadata, JWKSet, OAuthErrorResponse, TokenResponse
from app.auth.service import (
    ASSERTION_ALGS,
    AUTH_METHODS,
    JWKS_PATH,
    METADATA_PATH,
    TOKEN_PATH,
    AssertionCredentials,
    ClientCredentials,
    SecretCredentials,
    TokenService,
    token_endpoint,
)
from app.db import DbSession
from app.routing import GatewayRoute
from app.state import AppStateDep

router = APIRouter(tags=["auth"], route_class=GatewayRoute)

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_PARAMETERS: Final = frozenset(
    {"grant_type", "scope", "client_id", "client_secret", "client_assertion_type", "client_assertion"}
)
_MAX_FORM_FIELDS: Final = 32
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_TOKEN_REQUEST: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        FORM_MEDIA_TYPE: {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "scope": {
                        "type": "string",
                        "description": "Space-separated subset of the granted scopes.",
                    },
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string", "description": "client_secret_post"},
                    "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
                    "client_assertion": {"type": "string", "description": "private_key_jwt (RFC 7523)"},
                },
            }
        }
    },
}


def _oauth_error_response(error: OAuthError) -> JSONResponse:
    body = OAuthErrorResponse.model_validate({"error": error.error, "error_description": error.description})
    return JSONResponse(body.model_dump(), status_code=error.status, headers={**error.headers(), **_NO_STORE})


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"The body must be {FORM_MEDIA_TYPE}.")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form cannot be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in _PARAMETERS:
            continue  # RFC 6749 §3.2: unrecognised parameters are ignored
        if name in form:
            raise InvalidRequest(f"The parameter `{name}` is repeated.")
        form[name] = value
    return form


def _basic(authorization: str) -> SecretCredentials:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Unsupported client authentication scheme.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed Basic credentials.", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials.", basic=True)
    # RFC 6749 §2.3.1: both parts are form-encoded before they are joined.
    return SecretCredentials(unquote_plus(client_id), unquote_plus(secret), basic=True)


def _credentials(form: dict[str, str], authorization: str | None) -> ClientCredentials:
    """The one client authentication method the request uses; more than one is ``invalid_request``."""
    methods: list[ClientCredentials] = []
    if authorization is not None:
        methods.append(_basic(authorization))
    if "client_secret" in form:
        methods.append(SecretCredentials(form.get("client_id", ""), form["client_secret"], basic=False))
    if "client_assertion" in form or "client_assertion_type" in form:
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise InvalidRequest(
                f"private_key_jwt needs client_assertion_type={ASSERTION_TYPE} and client_assertion."
            )
        methods.append(AssertionCredentials(form["client_assertion"], form.get("client_id")))
    if len(methods) > 1:
        raise InvalidRequest("Use exactly one client authentication method.")
    if not methods:
        raise InvalidClient("Client authentication is required.")
    method = methods[0]
    if (
        isinstance(method, SecretCredentials)
        and method.basic
        and form.get("client_id", method.client_id) != method.client_id
    ):
        raise InvalidRequest("client_id differs from the authenticated client.")
    return method


@router.post(
    TOKEN_PATH,
    response_model=TokenResponse,
    responses={
        400: {
            "model": OAuthErrorResponse,
            "description": "`invalid_request`, `invalid_scope`, `unsupported_grant_type`",
        },
        401: {"model": OAuthErrorResponse, "description": "`invalid_client`"},
        503: {
            "model": OAuthErrorResponse,
            "description": "`temporarily_unavailable` (private_key_jwt replay store)",
        },
    },
    openapi_extra={"requestBody": _TOKEN_REQUEST},
)
async def issue_token(request: Request, session: DbSession, state: AppStateDep) -> JSONResponse:
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4): an access token for the authenticated client."""
    try:
        form = await _form(request)
        credentials = _credentials(form, request.headers.get("authorization"))
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required.")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType("Only client_credentials is supported.")
        service = TokenService(session, state[KEYS], state[REPLAY], state.settings)
        issued = await service.issue(
            credentials, scope=form.get("scope"), issuer=issuer_for(request, state.settings)
        )
    except OAuthError as error:
        return _oauth_error_response(error)
    answer = TokenResponse(
        access_token=issued.token,
        token_type="Bearer",  # noqa: S106 - the token type, not a password
        expires_in=issued.expires_in,
        scope=issued.scope,
    )
    return JSONResponse(answer.model_dump(), headers=_NO_STORE)


@router.get(JWKS_PATH, response_model=JWKSet)
async def jwks(state: AppStateDep) -> JSONResponse:
    """The gateway's public keys (tokens, attestations), retired ones included, each with ``kid``."""
    return JSONResponse(dict(await state[KEYS].jwks()))


@router.get(METADATA_PATH)
async def authorization_server_metadata(request: Request, state: AppStateDep) -> AuthorizationServerMetadata:
    """RFC 8414 metadata, plus ``audience`` (the ``aud`` of every access token)."""
    issuer = issuer_for(request, state.settings)
    return AuthorizationServerMetadata(
        issuer=issuer,
        token_endpoint=token_endpoint(issuer),
        jwks_uri=issuer.rstrip("/") + JWKS_PATH,
        grant_types_supported=["client_credentials"],
        response_types_supported=[],
        token_endpoint_auth_methods_supported=list(AUTH_METHODS),
        token_endpoint_auth_signing_alg_values_supported=list(ASSERTION_ALGS),
        scopes_supported=list(SCOPES),
        audience=state.settings.audience,
    )
