"""One test per rule of docs/security.md, Tokens, each sent to a route behind `ReadClient` (401, not 500)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jose.jwt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose.exceptions import JWKError

from app.jws import SigningKey, TokenRejected, sign_jws, verify_jws
from tests.harness import AUDIENCE, BASE_URL, Gateway


class FromNow(int):
    """Seconds to add to the time a token is made: a NumericDate in a parameter is fixed when the tests are
    collected, and drifts by as long as the suite takes to reach the test (as in test_private_key_jwt)."""


def b64(data: bytes | Mapping[str, Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(client_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": BASE_URL,
        "aud": AUDIENCE,
        "sub": client_id,
        "client_id": client_id,
        "scope": "citizen.read",
        "iat": now,
        "exp": now + 300,
        "jti": "t-" + str(now),
    }
    claims.update(
        {name: now + value if isinstance(value, FromNow) else value for name, value in changes.items()}
    )
    return {name: value for name, value in claims.items() if value is not None}


def hs256(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def call(gateway: Gateway, token: str) -> httpx.Response:
    return await gateway.http.get("/_t/read", headers={"Authorization": f"Bearer {token}"})


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.fixture
async def signer(gateway: Gateway) -> SigningKey:
    return await gateway.keys.signing_key()


@pytest.fixture
async def reader(gateway: Gateway) -> str:
    return (await gateway.register(scopes=["citizen.read"])).client_id


async def test_a_token_the_gateway_signed_passes(gateway: Gateway, signer: SigningKey, reader: str) -> None:
    response = await call(gateway, sign_jws(claims_for(reader), "at+jwt", signer))

    assert response.status_code == 200
    assert response.json()["client_id"] == reader


async def test_alg_none_is_refused(gateway: Gateway, signer: SigningKey, reader: str) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": signer.kid}

    for signature in ("", b64(b"x")):
        assert_invalid_token(await call(gateway, f"{b64(header)}.{b64(claims_for(reader))}.{signature}"))


@pytest.mark.parametrize("encoding", ["der", "pem"])
async def test_hs256_forged_with_the_public_key_is_refused(
    gateway: Gateway, signer: SigningKey, reader: str, encoding: str
) -> None:
    # The CVE-2024-33663 family: the attacker knows the public key (it is published) and uses it as an HMAC secret.
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(signer.public_jwk["x"] + "==")),
        int.from_bytes(base64.urlsafe_b64decode(signer.public_jwk["y"] + "==")),
        ec.SECP256R1(),
    ).public_key()
    secret = public.public_bytes(
        serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": signer.kid}

    assert_invalid_token(await call(gateway, hs256(header, claims_for(reader), secret)))


async def test_rs256_token_under_an_es256_kid_is_refused(
    gateway: Gateway, signer: SigningKey, reader: str
) -> None:
    attacker = rsa.generate_private_key(65537, 2048)
    token = jwt.encode(
        claims_for(reader), attacker, algorithm="RS256", headers={"typ": "at+jwt", "kid": signer.kid}
    )

    assert_invalid_token(await call(gateway, token))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"exp": FromNow(-60), "iat": FromNow(-400)}, id="expired"),
        pytest.param({"aud": "another-gateway"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="missing-aud"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"iat": None}, id="missing-iat"),
        pytest.param({"iat": FromNow(3600)}, id="iat-in-the-future"),
        pytest.param({"jti": None}, id="missing-jti"),
        pytest.param({"sub": "c_someone_else"}, id="sub-not-client"),
        pytest.param({"exp": "tomorrow"}, id="exp-not-a-number"),
        pytest.param({"exp": [1]}, id="exp-a-list"),
    ],
)
async def test_claims_are_required_and_checked(
    gateway: Gateway, signer: SigningKey, reader: str, changes: dict[str, Any]
) -> None:
    assert_invalid_token(await call(gateway, sign_jws(claims_for(reader, **changes), "at+jwt", signer)))


def signed_by_gateway_key(signer: SigningKey, claims: Mapping[str, Any], headers: dict[str, Any]) -> str:
    """Signed with the gateway's own private key but with headers of the test's choosing."""
    assert signer.signer is not None
    return jwt.encode(
        dict(claims), signer.signer.prepared_key, algorithm="ES256", headers={"kid": signer.kid, **headers}
    )


@pytest.mark.parametrize("typ", ["verification+jwt", "checkpoint+jwt", "JWT", None])
async def test_typ_must_be_at_jwt(gateway: Gateway, signer: SigningKey, reader: str, typ: str | None) -> None:
    # An attestation carries the gateway's signature too: it must never pass as an access token.
    token = signed_by_gateway_key(signer, claims_for(reader), {"typ": typ})

    assert_invalid_token(await call(gateway, token))
    if typ is None:
        assert "typ" not in jwt.get_unverified_header(token)


async def test_the_rfc_9068_media_type_form_of_typ_passes(
    gateway: Gateway, signer: SigningKey, reader: str
) -> None:
    token = signed_by_gateway_key(signer, claims_for(reader), {"typ": "application/at+jwt"})

    assert (await call(gateway, token)).status_code == 200


async def test_an_attestation_with_every_claim_is_no_access_token(gateway: Gateway, reader: str) -> None:
    attestation = await gateway.keys.sign_jws(claims_for(reader), "verification+jwt")

    assert_invalid_token(await call(gateway, attestation))


async def test_an_oversized_token_is_refused_before_decoding(
    gateway: Gateway, signer: SigningKey, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def get_unverified_header(token: str) -> dict[str, Any]:
        decoded.append(token)
        return {}

    monkeypatch.setattr(jose.jwt, "get_unverified_header", get_unverified_header)
    token = sign_jws(claims_for(reader, padding="x" * 4096), "at+jwt", signer)

    assert_invalid_token(await call(gateway, token))
    assert decoded == []


async def test_a_five_part_jwe_is_refused(gateway: Gateway, signer: SigningKey) -> None:
    header = b64({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt", "kid": signer.kid})

    assert_invalid_token(await call(gateway, f"{header}.{b64(b'k')}.{b64(b'iv')}.{b64(b'ct')}.{b64(b'tag')}"))


async def test_an_unknown_kid_is_refused(gateway: Gateway, reader: str) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims_for(reader), attacker, algorithm="ES256", headers={"typ": "at+jwt", "kid": "attacker"}
    )

    assert_invalid_token(await call(gateway, token))


async def test_jku_x5u_and_embedded_jwk_are_never_used(
    gateway: Gateway, signer: SigningKey, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[object] = []
    monkeypatch.setattr(httpx.AsyncClient, "send", lambda *args, **kw: fetched.append(args))
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    for kid in (signer.kid, "attacker"):
        headers = {
            "typ": "at+jwt",
            "kid": kid,
            "jku": "http://127.0.0.1:9/jwks.json",
            "x5u": "http://127.0.0.1:9/cert.pem",
            "jwk": attacker_jwk,
        }
        token = jwt.encode(claims_for(reader), attacker, algorithm="ES256", headers=headers)
        response = await httpx.ASGITransport(gateway.app).handle_async_request(
            httpx.Request("GET", BASE_URL + "/_t/read", headers={"Authorization": f"Bearer {token}"})
        )
        assert response.status_code == 401
    assert fetched == []


async def test_a_tampered_payload_is_refused(gateway: Gateway, signer: SigningKey, reader: str) -> None:
    header, _, signature = sign_jws(claims_for(reader), "at+jwt", signer).split(".")
    tampered = b64(claims_for(reader, scope="citizen.read admin"))

    assert_invalid_token(await call(gateway, f"{header}.{tampered}.{signature}"))


async def test_a_jwk_error_is_a_401_not_a_500(
    gateway: Gateway, signer: SigningKey, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `alg: none` makes jose raise JWKError, which is not a JWTError: it must be caught all the same.
    def raises(*args: object, **kwargs: object) -> None:
        raise JWKError("Algorithm none not supported")

    monkeypatch.setattr(jose.jwt, "decode", raises)

    assert_invalid_token(await call(gateway, sign_jws(claims_for(reader), "at+jwt", signer)))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "ey.ey.ey",
        "Zm9v.YmFy.YmF6",
        "e30.e30.",
        "WyJhIl0.e30.e30",
        "e30.e30.e30.e30",
    ],
)
async def test_garbage_is_a_401(gateway: Gateway, token: str) -> None:
    response = await gateway.http.get("/_t/read", headers={"Authorization": f"Bearer {token}".strip()})

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize(("part", "padding"), [(2, "="), (2, "=="), (1, "="), (0, "=")])
async def test_base64_padding_in_any_part_is_refused(
    gateway: Gateway, signer: SigningKey, reader: str, part: int, padding: str
) -> None:
    # JWS compact serialisation is base64url without padding (RFC 7515 §2); a decoder that tolerates "="
    # accepts many spellings of one token, which a cache or a deny list keyed by the token text then misses.
    parts = sign_jws(claims_for(reader), "at+jwt", signer).split(".")
    parts[part] += padding

    assert_invalid_token(await call(gateway, ".".join(parts)))


def test_an_attestation_with_padding_is_refused(signer_key: SigningKey) -> None:
    token = sign_jws({"verification_id": "v1"}, "verification+jwt", signer_key)

    class Keys:
        def verification_key(self, kid: str) -> SigningKey | None:
            return signer_key if kid == signer_key.kid else None

    assert verify_jws(token, Keys(), typ="verification+jwt")["verification_id"] == "v1"
    with pytest.raises(TokenRejected):
        verify_jws(token + "=", Keys(), typ="verification+jwt")


@pytest.fixture
def signer_key() -> SigningKey:
    return SigningKey.generate()[0]
