"""JOSE for the gateway: the only module that imports ``jose`` (an import-linter contract enforces it).

Compact JWS, signed and checked: the gateway's own ES256 keys (``SigningKey``) and what they sign (access
tokens, attestations, audit checkpoints), and the decoding of client assertions. It sits below every
context: ``app.auth.tokens`` applies the token rules on top of it, ``app.audit.checkpoints`` signs the audit
log's checkpoints with it, and neither has to import the other. Swapping the JOSE library touches this file.

What holds for every JWS read here:

* tokens are capped in length before anything is decoded; five-part (JWE) tokens are refused; a ``crit``
  header is refused;
* the algorithm comes from the key that verifies (EC → ES256, RSA → RS256), never from the token's header,
  and is passed to jose as the only allowed one (an HS256 token "signed" with our public key is refused);
* ``kid`` is resolved only in a preloaded key map (``KeyResolver``); ``jku``, ``x5u``, ``x5c`` and ``jwk``
  headers are never read;
* every jose failure is caught as ``JOSEError`` (``alg: none`` raises ``JWKError``, which is no ``JWTError``)
  and becomes ``TokenRejected``;
* key objects are built once (``SigningKey``); client JWKs are parsed once per distinct key (an LRU cache).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final, Protocol

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

GATEWAY_ALG: Final = "ES256"
MAX_JWS_CHARS: Final = 16384
CLOCK_SKEW_SECONDS: Final = 10
"""Leeway for the clocks of the gateway's replicas and its clients (exp, nbf, iat)."""

PUBLIC_JWK_MEMBERS: Final = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
}
"""The members that make up a public key, by key type (what a thumbprint and a verifier are built from)."""


class TokenRejected(Exception):
    """A token, assertion or signed document failed a check; the message is for logs and never reaches a caller."""


class UnknownSigningKey(TokenRejected):
    """The token names a ``kid`` that is not in the preloaded key map (the caller may reload it once)."""


class UnreadableKey(ValueError):
    """A JWK that no key object can be built from; the message names the failure's type only."""


class KeyResolver(Protocol):
    """Resolves a ``kid`` in a preloaded map (never by fetching anything)."""

    def verification_key(self, kid: str) -> SigningKey | None: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an EC or RSA public JWK: a stable, unique ``kid``."""
    members = PUBLIC_JWK_MEMBERS[str(public_jwk["kty"])]
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
            verifier = jwk.construct({m: public_jwk[m] for m in PUBLIC_JWK_MEMBERS["EC"]}, GATEWAY_ALG)
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
        public = {m: verifier.to_dict()[m] for m in PUBLIC_JWK_MEMBERS["EC"]}
        kid = jwk_thumbprint(public)
        return cls(
            kid=kid,
            alg=GATEWAY_ALG,
            public_jwk={**public, "kid": kid, "alg": GATEWAY_ALG, "use": "sig"},
            verifier=verifier,
            signer=signer,
        )


# --- reading ---------------------------------------------------------------------------------------------


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def checked_header(token: object, max_chars: int) -> dict[str, Any]:
    """The unverified header of a compact JWS, after the size and shape checks; TokenRejected otherwise."""
    if not isinstance(token, str) or not token or len(token) > max_chars or not token.isascii():
        raise TokenRejected("empty, oversized or non-ASCII token")
    if token.count(".") != 2:
        raise TokenRejected("not a three-part compact JWS (JWE and JSON serialisation are refused)")
    if not _COMPACT_JWS.fullmatch(token):
        # RFC 7515 §2: base64url without padding. jose's decoder pads and ignores a trailing "=", so one token
        # would have many spellings, and anything keyed by its text (the verified-token cache) would miss them.
        raise TokenRejected("not base64url without padding")
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


def unverified_claims(token: str) -> object:
    """The claims of a JWS whose header passed ``checked_header``, signature unchecked: only to pick the
    keys that will verify it. TokenRejected when they cannot be read."""
    try:
        claims: object = jwt.get_unverified_claims(token)
    except JOSEError:
        raise TokenRejected("unreadable claims") from None
    return claims


def decode_jwt(
    token: str,
    key: Any,
    alg: str,
    *,
    required: Iterable[str],
    audience: str | None = None,
    issuer: str | None = None,
    check_claims: bool = True,
) -> dict[str, Any]:
    """The claims of a JWT verified with ``key`` and ``alg`` only, ``required`` claims present, ``exp``,
    ``nbf`` and ``iat`` within ``CLOCK_SKEW_SECONDS``, and ``aud``/``iss`` when given; TokenRejected otherwise.

    ``check_claims=False`` checks the signature alone (to tell a log line why a signed token was refused)."""
    options: dict[str, Any] = {f"require_{claim}": True for claim in required}
    options.update(leeway=CLOCK_SKEW_SECONDS, verify_at_hash=False, verify_aud=audience is not None)
    if not check_claims:
        options = {f"verify_{claim}": False for claim in ("aud", "iat", "exp", "nbf", "iss", "sub", "jti")}
        options["verify_at_hash"] = False
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer, options=options)
    except JOSEError as exc:
        raise TokenRejected(type(exc).__name__) from None
    except (TypeError, ValueError, KeyError, OverflowError) as exc:  # odd claim types jose does not expect
        raise TokenRejected(type(exc).__name__) from None
    if not isinstance(claims, dict):
        raise TokenRejected("claims are not a JSON object")
    return claims


def verify_jws(token: str, keys: KeyResolver, *, typ: str) -> dict[str, Any]:
    """The claims of a JWS the gateway signed with ``typ`` (an attestation, a checkpoint); no claim is required."""
    header = checked_header(token, MAX_JWS_CHARS)
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


# --- clients' public keys ----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _client_key(canonical_jwk: str, alg: str) -> Any:
    # Keyed by the key's public members: a client that re-registers its keys gets new entries.
    return jwk.construct(json.loads(canonical_jwk), alg)


def client_key(public: Mapping[str, Any], alg: str) -> Any:
    """The verifier of a client's public key (its public members only), built once per distinct key;
    UnreadableKey when none can be built."""
    try:
        return _client_key(json.dumps(dict(public), sort_keys=True), alg)
    except JOSEError as exc:
        raise UnreadableKey(type(exc).__name__) from None


def public_key_size(public: Mapping[str, Any], alg: str) -> int:
    """The size in bits of a public key given by its public members (0 when the key type has none);
    UnreadableKey, naming the failure's type, when it is no key."""
    try:
        key = jwk.construct(dict(public), alg)
        prepared = key.public_key().prepared_key if hasattr(key, "public_key") else key.prepared_key
    except (JOSEError, ValueError, TypeError) as exc:
        raise UnreadableKey(type(exc).__name__) from None
    size: int = getattr(prepared, "key_size", 0)
    return size


# --- signing ---------------------------------------------------------------------------------------------


def sign_jws(claims: Mapping[str, Any], typ: str, key: SigningKey) -> str:
    """A compact JWS over ``claims`` with header ``{alg, kid, typ}`` (RFC 7515, ES256 per RFC 7518 §3.4).

    Signed with the key's ``cryptography`` object directly rather than through ``jose.jws.sign``, which
    rebuilds the header and re-encodes the signature on every call: one attestation per verification makes
    this a hot path (78 → 56 µs per signature here, timeit). Verifiers see the same JWS: access tokens are
    checked with python-jose (``app.auth.tokens.verify_access_token``) and PyJWT in ``tests/auth``,
    attestations with PyJWT.
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
