"""JOSE for the gateway: the only module that imports ``jose`` (an import-linter contract enforces it).

Every rule of SECURITY.md "Tokens" is applied here, so that swapping the JOSE library touches one file:

* the algorithm comes from the key that verifies (EC → ES256, RSA → RS256), never from the token's header,
  and is passed to jose as the only allowed one (an HS256 token "signed" with our public key is refused);
* ``exp``, ``aud``, ``iss``, ``iat`` (and ``jti``, ``sub``) are required and checked; ``typ`` must be
  ``at+jwt`` for access tokens, so an attestation (``verification+jwt``) or a checkpoint never passes as one;
* tokens are capped in length before anything is decoded; five-part (JWE) tokens are refused;
* ``kid`` is resolved only in the preloaded key map; ``jku``, ``x5u``, ``x5c`` and ``jwk`` headers are never read;
* every jose failure is caught as ``JOSEError`` (``alg: none`` raises ``JWKError``, which is no ``JWTError``)
  and becomes ``TokenRejected``;
* key objects are built once (``SigningKey``); client JWKs are parsed once per distinct key (an LRU cache).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final, Protocol

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from app.auth.errors import TokenRejected, UnknownSigningKey
from app.auth.replay import ReplayStore
from app.errors import FieldError

GATEWAY_ALG: Final = "ES256"
ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type
ATTESTATION_TYP: Final = "verification+jwt"
CHECKPOINT_TYP: Final = "checkpoint+jwt"
_ACCESS_TOKEN_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4

MAX_ACCESS_TOKEN_CHARS: Final = 4096
MAX_ASSERTION_CHARS: Final = 8192
MAX_JWS_CHARS: Final = 16384
MAX_ASSERTION_LIFETIME_SECONDS: Final = 300
"""RFC 7523 assertions may expire at most this far ahead (API.md)."""
CLOCK_SKEW_SECONDS: Final = 10
"""Leeway for the clocks of the gateway's replicas and its clients (exp, nbf, iat)."""
MAX_JTI_CHARS: Final = 256
MAX_CLIENT_KEYS: Final = 10
MIN_RSA_BITS: Final = 2048

_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_JWK_MEMBERS: Final = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
}


class KeyResolver(Protocol):
    """Resolves a ``kid`` in a preloaded map (never by fetching anything)."""

    def verification_key(self, kid: str) -> SigningKey | None: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an EC or RSA public JWK: a stable, unique ``kid``."""
    members = _PUBLIC_JWK_MEMBERS[str(public_jwk["kty"])]
    canonical = json.dumps({m: public_jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True, eq=False)
class SigningKey:
    """A gateway key with its jose objects built once; ``signer`` is None for a verify-only key."""

    kid: str
    alg: str
    public_jwk: Mapping[str, Any]
    """Published in the JWKS: public members plus ``kid``, ``alg`` and ``use``."""
    verifier: Any
    signer: Any | None

    @classmethod
    def generate(cls) -> tuple[SigningKey, bytes]:
        """A new ES256 (P-256) key and its private key as unencrypted PKCS#8 PEM (encrypt before storing)."""
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls._from_private(private), pem

    @classmethod
    def from_private_pem(cls, pem: bytes) -> SigningKey:
        """The key in ``pem`` (a P-256 private key); parse it once, at load time, never per request."""
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
            raise ValueError("a gateway signing key must be an EC P-256 private key")
        return cls._from_private(private)

    @classmethod
    def from_public_jwk(cls, public_jwk: Mapping[str, Any]) -> SigningKey:
        """A verify-only key (a retired key, or one this process cannot decrypt) from its stored JWK."""
        kid = public_jwk.get("kid")
        if not isinstance(kid, str) or public_jwk.get("kty") != "EC" or public_jwk.get("crv") != "P-256":
            raise ValueError("a gateway public key must be an EC P-256 JWK with a kid")
        try:
            verifier = jwk.construct({m: public_jwk[m] for m in _PUBLIC_JWK_MEMBERS["EC"]}, GATEWAY_ALG)
        except (JOSEError, KeyError, ValueError) as exc:
            raise ValueError("unreadable gateway public key") from exc
        return cls(kid=kid, alg=GATEWAY_ALG, public_jwk=dict(public_jwk), verifier=verifier, signer=None)

    def verify_only(self) -> SigningKey:
        """This key without its private half (a retired key is never decrypted or kept decrypted)."""
        return self if self.signer is None else replace(self, signer=None)

    @classmethod
    def _from_private(cls, private: ec.EllipticCurvePrivateKey) -> SigningKey:
        signer = jwk.construct(private, GATEWAY_ALG)
        verifier = jwk.construct(private.public_key(), GATEWAY_ALG)
        public = {m: verifier.to_dict()[m] for m in _PUBLIC_JWK_MEMBERS["EC"]}
        kid = jwk_thumbprint(public)
        return cls(
            kid=kid,
            alg=GATEWAY_ALG,
            public_jwk={**public, "kid": kid, "alg": GATEWAY_ALG, "use": "sig"},
            verifier=verifier,
            signer=signer,
        )


# --- shared checks -------------------------------------------------------------------------------------------


def _checked_header(token: object, max_chars: int) -> dict[str, Any]:
    """The unverified header of a compact JWS, after the size and shape checks; TokenRejected otherwise."""
    if not isinstance(token, str) or not token or len(token) > max_chars or not token.isascii():
        raise TokenRejected("empty, oversized or non-ASCII token")
    if token.count(".") != 2:
        raise TokenRejected("not a three-part compact JWS (JWE and JSON serialisation are refused)")
    try:
        header = jwt.get_unverified_header(token)
    except JOSEError:
        raise TokenRejected("unreadable header") from None
    if not isinstance(header, dict):
        raise TokenRejected("header is not a JSON object")
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        raise TokenRejected("critical header extensions are not supported")
    return header


def _decode(
    token: str,
    key: Any,
    alg: str,
    *,
    required: Iterable[str],
    audience: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {f"require_{claim}": True for claim in required}
    options.update(leeway=CLOCK_SKEW_SECONDS, verify_at_hash=False, verify_aud=audience is not None)
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer, options=options)
    except JOSEError as exc:
        raise TokenRejected(type(exc).__name__) from None
    except (TypeError, ValueError, KeyError, OverflowError) as exc:  # odd claim types jose does not expect
        raise TokenRejected(type(exc).__name__) from None
    if not isinstance(claims, dict):
        raise TokenRejected("claims are not a JSON object")
    return claims


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
    header = _checked_header(token, MAX_ACCESS_TOKEN_CHARS)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPS:
        raise TokenRejected("typ is not at+jwt")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenRejected("no kid")
    key = keys.verification_key(kid)
    if key is None:
        raise UnknownSigningKey("unknown kid")
    claims = _decode(
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


# --- other signed documents (attestations, checkpoints) ----------------------------------------------------


def sign_jws(claims: Mapping[str, Any], typ: str, key: SigningKey) -> str:
    """A compact JWS over ``claims`` with header ``{alg, kid, typ}`` (RFC 7515, ES256 per RFC 7518 §3.4).

    Signed with the key's ``cryptography`` object directly rather than through ``jose.jws.sign``, which
    rebuilds the header and re-encodes the signature on every call: one attestation per verification makes
    this a hot path (78 → 56 µs per signature here, timeit). Verifiers see the same JWS: access tokens are
    checked with python-jose (``verify_access_token``) and PyJWT in ``tests/auth``, attestations with PyJWT.
    """
    if key.signer is None:
        raise ValueError(f"key {key.kid} is verify-only")
    signing_input = _jws_header(key.kid, typ) + b"." + _b64url_bytes(orjson.dumps(dict(claims)))
    der = key.signer.prepared_key.sign(signing_input, _ES256)
    r, s = decode_dss_signature(der)
    signature = _b64url_bytes(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return (signing_input + b"." + signature).decode("ascii")


_ES256: Final = ec.ECDSA(hashes.SHA256())


def _b64url_bytes(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@lru_cache(maxsize=64)
def _jws_header(kid: str, typ: str) -> bytes:
    header = {"alg": GATEWAY_ALG, "kid": kid, "typ": typ}
    return _b64url_bytes(json.dumps(header, separators=(",", ":"), sort_keys=True).encode("ascii"))


def verify_jws(token: str, keys: KeyResolver, *, typ: str) -> dict[str, Any]:
    """The claims of a JWS the gateway signed with ``typ`` (an attestation, a checkpoint); no claim is required."""
    header = _checked_header(token, MAX_JWS_CHARS)
    if header.get("typ") != typ:
        raise TokenRejected("unexpected typ")
    kid = header.get("kid")
    key = keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise UnknownSigningKey("unknown kid")
    try:
        payload = jws.verify(token, key.verifier, algorithms=[key.alg])
        claims = json.loads(payload)
    except (JOSEError, ValueError) as exc:
        raise TokenRejected(type(exc).__name__) from None
    if not isinstance(claims, dict):
        raise TokenRejected("claims are not a JSON object")
    return claims


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


@lru_cache(maxsize=1024)
def _client_key(canonical_jwk: str, alg: str) -> Any:
    # Keyed by the key's public members: a client that re-registers its keys gets new entries.
    return jwk.construct(json.loads(canonical_jwk), alg)


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
        public = {m: entry[m] for m in _PUBLIC_JWK_MEMBERS[str(entry["kty"])] if m in entry}
        try:
            found.append((alg, _client_key(json.dumps(public, sort_keys=True), alg)))
        except JOSEError:
            continue
    return found


def unverified_assertion_subject(assertion: str) -> str | None:
    """The client an assertion claims to come from (``sub``), to pick the keys that will verify it.

    Nothing else is decided on it: the signature, ``iss == sub == client_id`` and the rest are checked by
    ``verify_client_assertion``.
    """
    try:
        _checked_header(assertion, MAX_ASSERTION_CHARS)
        claims = jwt.get_unverified_claims(assertion)
    except (TokenRejected, JOSEError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and 0 < len(sub) <= 64 else None


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
    header = _checked_header(assertion, MAX_ASSERTION_CHARS)
    candidates = _assertion_keys(registered_jwks, header.get("kid"))
    if not candidates:
        raise TokenRejected("no registered key matches the assertion")
    claims: dict[str, Any] | None = None
    for alg, key in candidates:
        try:
            claims = _decode(assertion, key, alg, required=("exp", "iss", "sub", "jti"))
        except TokenRejected:
            continue
        break
    if claims is None:
        raise TokenRejected("no registered key verifies the assertion")
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
            {m: key[m] for m in (*_PUBLIC_JWK_MEMBERS[key["kty"]], *kept) if m in key} for key in jwks["keys"]
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
    if kty not in _PUBLIC_JWK_MEMBERS:
        return "unsupported_key", "Only EC P-256 and RSA keys are supported."
    alg = _alg_for(entry)
    if alg is None:
        return "unsupported_key", "EC keys must be P-256 (ES256), RSA keys RS256, for signatures."
    if not all(isinstance(entry.get(m), str) for m in _PUBLIC_JWK_MEMBERS[kty] if m != "kty"):
        return "invalid_jwk", "A public member is missing."
    try:
        key = jwk.construct({m: entry[m] for m in _PUBLIC_JWK_MEMBERS[kty]}, alg)
        public = key.public_key().prepared_key if hasattr(key, "public_key") else key.prepared_key
    except (JOSEError, ValueError, TypeError) as exc:
        return "invalid_jwk", f"Unreadable key ({type(exc).__name__})."
    key_size = getattr(public, "key_size", 0)
    if kty == "RSA" and key_size < MIN_RSA_BITS:
        return "weak_key", f"RSA keys must have at least {MIN_RSA_BITS} bits."
    return None
