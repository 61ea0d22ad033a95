"""The token rules: access tokens, client assertions (``private_key_jwt``) and the keys clients register.

Every promise of docs/security.md, Tokens, is kept here, on the JWS primitives of ``app.jws`` (the only module
that imports ``jose``: what holds for every JWS, such as the algorithm coming from the key and never from
the header, is done there):

* ``exp``, ``aud``, ``iss``, ``iat`` (and ``jti``, ``sub``) are required and checked; ``typ`` must be
  ``at+jwt`` for access tokens, so an attestation (``verification+jwt``) or a checkpoint never passes as one;
* access tokens and assertions are capped in length before anything is decoded;
* an access token's signature is checked once (``VerifiedTokenCache``); its time, issuer and audience on
  every use;
* a client assertion is used once (its ``jti`` is claimed in the replay store) and expires within 5 minutes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.auth.replay import ReplayStore
from app.errors import FieldError
from app.jws import (
    CLOCK_SKEW_SECONDS,
    PUBLIC_JWK_MEMBERS,
    KeyResolver,
    SigningKey,
    TokenRejected,
    UnknownSigningKey,
    UnreadableKey,
    checked_header,
    client_key,
    decode_jwt,
    public_key_size,
    sign_jws,
    unverified_claims,
)

ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type
_ACCESS_TOKEN_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4

MAX_ACCESS_TOKEN_CHARS: Final = 4096
MAX_ASSERTION_CHARS: Final = 8192
MAX_ASSERTION_LIFETIME_SECONDS: Final = 300
"""RFC 7523 assertions may expire at most this far ahead (docs/contract.md, Access tokens)."""
MAX_JTI_CHARS: Final = 256
MAX_CLIENT_KEYS: Final = 10
MIN_RSA_BITS: Final = 2048

_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


# --- shared checks -------------------------------------------------------------------------------------------


def _numeric(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(f"{name} is not a NumericDate")
    return int(value)


def _not_issued_in_the_future(claims: Mapping[str, Any], now: float) -> None:
    if "iat" in claims and _numeric(claims, "iat") > now + CLOCK_SKEW_SECONDS:
        raise TokenRejected("iat is in the future")


# --- access tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """A verified access token: only what the gateway decides on."""

    client_id: str
    scopes: frozenset[str]
    jti: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    expires_in: int
    scope: str
    jti: str


def issue_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    client_id: str,
    scopes: Sequence[str],
    ttl_seconds: int,
    now: float | None = None,
) -> IssuedAccessToken:
    """An RFC 9068 access token: ES256, ``typ: at+jwt``, ``kid``; ``iss aud sub client_id scope iat exp jti``."""
    issued_at = int(time.time() if now is None else now)
    jti = secrets.token_urlsafe(16)
    scope = " ".join(scopes)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "scope": scope,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": jti,
    }
    return IssuedAccessToken(
        token=sign_jws(claims, ACCESS_TOKEN_TYP, key), expires_in=ttl_seconds, scope=scope, jti=jti
    )


class VerifiedTokenCache:
    """Signature checks already done, by token. Holds nothing else: expiry, issuer and audience are checked
    again on every use, and the client's status and grant are read by the caller on every request."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[str, AccessTokenClaims] = {}
        self._max_entries = max_entries

    def get(self, token: str) -> AccessTokenClaims | None:
        return self._entries.get(token)

    def put(self, token: str, claims: AccessTokenClaims) -> None:
        if len(self._entries) >= self._max_entries:
            # Expired tokens go first, then the oldest down to three quarters, so that a full cache of live
            # tokens is swept once per quarter of its size rather than on every new token.
            now = time.time()
            self._entries = {t: c for t, c in self._entries.items() if c.expires_at > now}
            while len(self._entries) > self._max_entries * 3 // 4:
                del self._entries[next(iter(self._entries))]
        self._entries[token] = claims

    def clear(self) -> None:
        self._entries.clear()


def cached_access_token(
    token: str, cache: VerifiedTokenCache, *, issuer: str, audience: str
) -> AccessTokenClaims | None:
    """The claims of a token whose signature ``cache`` holds as checked, after the checks that depend on the
    time and the request (expiry, issuer, audience); None when it is not cached; TokenRejected otherwise."""
    cached = cache.get(token)
    if cached is None:
        return None
    if cached.expires_at + CLOCK_SKEW_SECONDS <= time.time():
        raise TokenRejected("expired")
    if cached.issuer != issuer or audience not in cached.audience:
        raise TokenRejected("wrong issuer or audience")
    return cached


def verify_access_token(
    token: str,
    keys: KeyResolver,
    *,
    issuer: str,
    audience: str,
    cache: VerifiedTokenCache | None = None,
) -> AccessTokenClaims:
    """The claims of a valid access token; TokenRejected (UnknownSigningKey for an unknown kid) otherwise."""
    if cache is not None:
        cached = cached_access_token(token, cache, issuer=issuer, audience=audience)
        if cached is not None:
            return cached
    now = time.time()
    header = checked_header(token, MAX_ACCESS_TOKEN_CHARS)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPS:
        raise TokenRejected("typ is not at+jwt")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenRejected("no kid")
    key = keys.verification_key(kid)
    if key is None:
        raise UnknownSigningKey("unknown kid")
    claims = decode_jwt(
        token,
        key.verifier,
        key.alg,
        required=("exp", "aud", "iss", "iat", "jti", "sub"),
        audience=audience,
        issuer=issuer,
    )
    _not_issued_in_the_future(claims, now)
    client_id, scope, jti, aud = (claims.get(n) for n in ("client_id", "scope", "jti", "aud"))
    if not isinstance(client_id, str) or claims.get("sub") != client_id:
        raise TokenRejected("sub and client_id disagree")
    if not isinstance(scope, str) or not isinstance(jti, str):
        raise TokenRejected("scope or jti is not a string")
    verified = AccessTokenClaims(
        client_id=client_id,
        scopes=frozenset(scope.split()),
        jti=jti,
        issuer=issuer,
        audience=(aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str)),
        issued_at=_numeric(claims, "iat"),
        expires_at=_numeric(claims, "exp"),
    )
    if cache is not None:
        cache.put(token, verified)
    return verified


# --- private_key_jwt (RFC 7523) ----------------------------------------------------------------------------


def _alg_for(public_jwk: Mapping[str, Any]) -> str | None:
    """The one algorithm a registered key verifies with (from its type); None for a key we do not use."""
    match public_jwk.get("kty"), public_jwk.get("crv"):
        case "EC", "P-256":
            alg = "ES256"
        case "RSA", _:
            alg = "RS256"
        case _:
            return None
    declared = public_jwk.get("alg")
    if declared is not None and declared != alg:
        return None
    if public_jwk.get("use", "sig") != "sig":
        return None
    return alg


def _assertion_keys(registered: Mapping[str, Any] | None, kid: object) -> list[tuple[str, Any]]:
    keys = registered.get("keys") if registered else None
    if not isinstance(keys, list):
        return []
    found: list[tuple[str, Any]] = []
    for entry in keys:
        if not isinstance(entry, dict) or (kid is not None and entry.get("kid") != kid):
            continue
        alg = _alg_for(entry)
        if alg is None:
            continue
        public = {m: entry[m] for m in PUBLIC_JWK_MEMBERS[str(entry["kty"])] if m in entry}
        try:
            found.append((alg, client_key(public, alg)))
        except UnreadableKey:
            continue
    return found


def unverified_assertion_subject(assertion: str) -> str | None:
    """The client an assertion claims to come from (``sub``), to pick the keys that will verify it.

    Nothing else is decided on it: the signature, ``iss == sub == client_id`` and the rest are checked by
    ``verify_client_assertion``.
    """
    try:
        checked_header(assertion, MAX_ASSERTION_CHARS)
        claims = unverified_claims(assertion)
    except TokenRejected:
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and 0 < len(sub) <= 64 else None


_ASSERTION_CLAIMS: Final = ("exp", "iss", "sub", "jti")


def _refused_claims(claims: Mapping[str, Any], now: float) -> str | None:
    """Why a well-signed assertion's claims were refused, for the log line (no claim value in it)."""
    missing = [name for name in _ASSERTION_CLAIMS if name not in claims]
    if missing:
        return f"claim missing: {', '.join(missing)}"
    for name in ("exp", "nbf", "iat"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name} is not a NumericDate"
    if claims["exp"] < now - CLOCK_SKEW_SECONDS:
        return f"expired {int(now - claims['exp'])} s ago"
    if "nbf" in claims and claims["nbf"] > now + CLOCK_SKEW_SECONDS:
        return "not valid yet (nbf is in the future)"
    if "iat" in claims and claims["iat"] > now + CLOCK_SKEW_SECONDS:
        return "iat is in the future"
    return None


async def verify_client_assertion(
    assertion: str,
    registered_jwks: Mapping[str, Any] | None,
    *,
    client_id: str,
    audiences: Sequence[str],
    replay: ReplayStore,
) -> dict[str, Any]:
    """The claims of a valid, first-use client assertion; TokenRejected otherwise.

    ReplayStoreUnavailable (from ``replay``) propagates: the caller cannot tell a first use from a replay.
    """
    now = time.time()
    header = checked_header(assertion, MAX_ASSERTION_CHARS)
    candidates = _assertion_keys(registered_jwks, header.get("kid"))
    if not candidates:
        raise TokenRejected("no registered key matches the assertion")
    claims: dict[str, Any] | None = None
    for alg, key in candidates:
        try:
            claims = decode_jwt(assertion, key, alg, required=_ASSERTION_CLAIMS)
        except TokenRejected as exc:
            # Signed by this key but its claims refused? Then say why (the log line is all an operator has).
            try:
                signed = decode_jwt(assertion, key, alg, required=(), check_claims=False)
            except TokenRejected:
                continue
            raise TokenRejected(_refused_claims(signed, now) or str(exc)) from None
        break
    if claims is None:
        raise TokenRejected("no registered key verifies the assertion's signature")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise TokenRejected("iss and sub must both be the client_id")
    aud = claims.get("aud")
    audience = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in audience):
        raise TokenRejected("aud names neither the token endpoint nor the issuer")
    expires_at = _numeric(claims, "exp")
    if expires_at > now + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise TokenRejected("exp is more than 5 minutes ahead")
    _not_issued_in_the_future(claims, now)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise TokenRejected("jti missing or too long")
    if not await replay.claim(f"{client_id}:{jti}", expires_at + CLOCK_SKEW_SECONDS):
        raise TokenRejected("jti already used")
    return claims


def public_jwks_problems(jwks: object) -> list[FieldError]:
    """Why ``jwks`` cannot be registered for ``private_key_jwt`` (empty when it can).

    Accepted: ``{"keys": [...]}`` with up to 10 EC P-256 or RSA (≥ 2048-bit) public keys. A private or
    symmetric key is refused, so is a kid used twice.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return [{"loc": ["keys"], "code": "invalid_jwks", "message": 'Expected a JWK Set {"keys": [...]}.'}]
    keys: list[Any] = jwks["keys"]
    problems: list[FieldError] = []
    if set(jwks) - {"keys"}:
        problems.append({"loc": [], "code": "extra_forbidden", "message": "Only `keys` is allowed."})
    if len(keys) > MAX_CLIENT_KEYS:
        problems.append({"loc": ["keys"], "code": "too_long", "message": f"At most {MAX_CLIENT_KEYS} keys."})
    kids: set[str] = set()
    for index, entry in enumerate(keys):
        loc: list[str | int] = ["keys", index]
        problem = _public_key_problem(entry)
        if problem is not None:
            problems.append({"loc": loc, "code": problem[0], "message": problem[1]})
            continue
        kid = entry.get("kid")
        if kid is not None:
            if kid in kids:
                problems.append({"loc": [*loc, "kid"], "code": "duplicate_kid", "message": "Kid used twice."})
            kids.add(kid)
    return problems


def registrable_jwks(jwks: Mapping[str, Any]) -> dict[str, Any]:
    """A JWK Set that passed ``public_jwks_problems``, reduced to the members the gateway reads."""
    kept = ("kid", "alg", "use")
    return {
        "keys": [
            {m: key[m] for m in (*PUBLIC_JWK_MEMBERS[key["kty"]], *kept) if m in key} for key in jwks["keys"]
        ]
    }


def _public_key_problem(entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return "invalid_jwk", "Expected a JWK object."
    if entry.get("kty") == "oct" or _PRIVATE_JWK_MEMBERS & set(entry):
        return "private_key", "Only public keys may be registered."
    kid = entry.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= 128):
        return "invalid_jwk", "`kid` must be a string of at most 128 characters."
    kty = entry.get("kty")
    if kty not in PUBLIC_JWK_MEMBERS:
        return "unsupported_key", "Only EC P-256 and RSA keys are supported."
    alg = _alg_for(entry)
    if alg is None:
        return "unsupported_key", "EC keys must be P-256 (ES256), RSA keys RS256, for signatures."
    if not all(isinstance(entry.get(m), str) for m in PUBLIC_JWK_MEMBERS[kty] if m != "kty"):
        return "invalid_jwk", "A public member is missing."
    try:
        key_size = public_key_size({m: entry[m] for m in PUBLIC_JWK_MEMBERS[kty]}, alg)
    except UnreadableKey as exc:
        return "invalid_jwk", f"Unreadable key ({exc})."
    if kty == "RSA" and key_size < MIN_RSA_BITS:
        return "weak_key", f"RSA keys must have at least {MIN_RSA_BITS} bits."
    return None
