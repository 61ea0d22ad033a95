"""`POST /oauth2/token`, the JWKS and the metadata document, driven by standard clients (Authlib, PyJWT)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
    OAuthError,
)
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from app.audit.dependencies import CHECKPOINTS
from app.auth.context import SCOPES
from app.config import Settings
from app.db import utcnow
from tests.auth.conftest import protected_app
from tests.harness import AUDIENCE, BASE_URL, TOKEN_URL, Gateway, Registered


class ShortPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's private_key_jwt with an assertion that lives 2 minutes (its default is an hour; the
    gateway accepts at most 5)."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            expires_in=120,
        )


def oauth_client(gateway: Gateway, **options: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(transport=httpx.ASGITransport(gateway.app), base_url=BASE_URL, **options)


def pem(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_jwk(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    exported = (
        jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        if isinstance(private, ec.EllipticCurvePrivateKey)
        else jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    )
    return {**exported, "kid": kid}


async def verify_with_pyjwt(gateway: Gateway, token: str) -> dict[str, Any]:
    """What any resource server would do: fetch the JWKS, pick the kid, verify ES256 with aud and iss."""
    jwks = (await gateway.http.get("/.well-known/jwks.json")).json()
    key_set = jwt.PyJWKSet.from_dict(jwks)
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key_set[header["kid"]].key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=BASE_URL,
        options={"require": ["exp", "iat", "iss", "aud", "jti", "sub"]},
    )
    return claims


async def test_client_secret_basic_with_authlib(gateway: Gateway) -> None:
    client = await gateway.register(scopes=["citizen.verify", "citizen.read"])

    async with oauth_client(
        gateway,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method="client_secret_basic",
    ) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        answer = await oauth.get("/_t/read")

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "citizen.verify citizen.read"
    assert answer.status_code == 200
    assert answer.json()["client_id"] == client.client_id
    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = await verify_with_pyjwt(gateway, token["access_token"])
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["scope"] == "citizen.verify citizen.read"
    assert claims["exp"] - claims["iat"] == 300


async def test_client_secret_post_with_authlib(gateway: Gateway) -> None:
    client = await gateway.register()

    async with oauth_client(
        gateway,
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method="client_secret_post",
    ) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

    assert (await verify_with_pyjwt(gateway, token["access_token"]))["client_id"] == client.client_id


@pytest.mark.parametrize("kind", ["ec", "rsa"])
async def test_private_key_jwt_with_authlib(gateway: Gateway, kind: str) -> None:
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    )
    client = await gateway.register(jwks={"keys": [public_jwk(private, "k1")]})
    method = ShortPrivateKeyJWT(TOKEN_URL, alg="ES256" if kind == "ec" else "RS256")

    key = ECKey.import_key(pem(private)) if kind == "ec" else RSAKey.import_key(pem(private))

    async with oauth_client(
        gateway, client_id=client.client_id, client_secret=key, token_endpoint_auth_method=method
    ) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
        answer = await oauth.get("/_t/read")

    assert answer.status_code == 200
    assert (await verify_with_pyjwt(gateway, token["access_token"]))["client_id"] == client.client_id


async def test_token_answers_are_not_cached(gateway: Gateway) -> None:
    client = await gateway.register()

    ok = await gateway.token_response(client)
    refused = await gateway.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "wrong")
    )

    for response in (ok, refused):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


async def test_scope_subset_default_and_invalid_scope(gateway: Gateway) -> None:
    client = await gateway.register(scopes=["citizen.verify", "citizen.read", "household.read"])

    subset = await gateway.token_response(client, "household.read citizen.verify")
    default = await gateway.token_response(client)
    outside = await gateway.token_response(client, "citizen.read admin")
    unknown = await gateway.token_response(client, "citizen.write")

    assert subset.json()["scope"] == "household.read citizen.verify"
    assert default.json()["scope"] == "citizen.verify citizen.read household.read"
    for response in (outside, unknown):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_scope"
    # A token for a subset does not open the other scopes' routes.
    token = subset.json()["access_token"]
    forbidden = await gateway.http.get("/_t/read", headers={"Authorization": f"Bearer {token}"})
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "insufficient_scope"


async def test_a_grant_without_scopes_gets_invalid_scope(gateway: Gateway) -> None:
    client = await gateway.register(scopes=[])

    response = await gateway.token_response(client)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_client_authentication_failures_are_401_invalid_client(gateway: Gateway) -> None:
    client = await gateway.register()
    form = {"grant_type": "client_credentials"}

    bad_secret = await gateway.http.post("/oauth2/token", data=form, auth=(client.client_id, "x" * 43))
    unknown = await gateway.http.post("/oauth2/token", data=form, auth=("c_unknown", client.client_secret))
    post_bad = await gateway.http.post(
        "/oauth2/token", data={**form, "client_id": client.client_id, "client_secret": "nope"}
    )
    none = await gateway.http.post("/oauth2/token", data=form)
    garbled = await gateway.http.post("/oauth2/token", data=form, headers={"Authorization": "Basic %%%"})

    for response in (bad_secret, unknown, post_bad, none, garbled):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert set(response.json()) == {"error", "error_description"}
        assert client.client_secret not in response.text
    for basic in (bad_secret, unknown, garbled):
        assert basic.headers["www-authenticate"].startswith("Basic")
    for other in (post_bad, none):
        assert "www-authenticate" not in other.headers


async def test_request_errors_are_400(gateway: Gateway) -> None:
    client = await gateway.register()
    auth = (client.client_id, client.client_secret)
    basic = "Basic " + base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()

    unsupported = await gateway.http.post("/oauth2/token", data={"grant_type": "password"}, auth=auth)
    missing = await gateway.http.post("/oauth2/token", data={"scope": "citizen.read"}, auth=auth)
    two_methods = await gateway.http.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        headers={"Authorization": basic},
    )
    json_body = await gateway.http.post("/oauth2/token", json={"grant_type": "client_credentials"}, auth=auth)
    repeated = await gateway.http.post(
        "/oauth2/token",
        content="grant_type=client_credentials&scope=citizen.read&scope=admin",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic},
    )
    bad_assertion_type = await gateway.http.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:other",
            "client_assertion": "a.b.c",
        },
    )

    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"
    for response in (missing, two_methods, json_body, repeated, bad_assertion_type):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


async def test_suspended_client_gets_invalid_client(gateway: Gateway) -> None:
    client = await gateway.register()
    await gateway.set_status(client.client_id, "suspended")

    refused = await gateway.token_response(client)
    await gateway.set_status(client.client_id, "active")
    reinstated = await gateway.token_response(client)

    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert reinstated.status_code == 200


async def test_a_grant_outside_its_validity_window_is_invalid_client(gateway: Gateway) -> None:
    expired = await gateway.register(valid_until=utcnow() - timedelta(seconds=1))
    future = await gateway.register(valid_from=utcnow() + timedelta(hours=1))
    current = await gateway.register(
        valid_from=utcnow() - timedelta(hours=1), valid_until=utcnow() + timedelta(hours=1)
    )

    for client in (expired, future):
        response = await gateway.token_response(client)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    assert (await gateway.token_response(current)).status_code == 200


async def test_authlib_reports_the_oauth_error(gateway: Gateway) -> None:
    client = await gateway.register()

    async with oauth_client(gateway, client_id=client.client_id, client_secret="wrong") as oauth:
        with pytest.raises(OAuthError) as raised:
            await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

    assert raised.value.error == "invalid_client"


async def test_metadata_document(gateway: Gateway) -> None:
    response = await gateway.http.get("/.well-known/oauth-authorization-server")

    assert response.status_code == 200
    assert response.json() == {
        "issuer": BASE_URL,
        "token_endpoint": TOKEN_URL,
        "jwks_uri": BASE_URL + "/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "scopes_supported": list(SCOPES),
        "audience": AUDIENCE,
    }


async def test_configured_issuer_names_every_endpoint_and_token(sqlite_url: str) -> None:
    app = protected_app(
        Settings(_env_file=None, database_url=sqlite_url, issuer="https://dancu.gialai.gov.vn", audience="gw")
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        gateway = Gateway(app, http)
        client = await gateway.register()
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
        token = await gateway.token(client)
        accepted = await http.get("/_t/read", headers={"Authorization": f"Bearer {token}"})

    assert metadata["issuer"] == "https://dancu.gialai.gov.vn"
    assert metadata["token_endpoint"] == "https://dancu.gialai.gov.vn/oauth2/token"
    assert metadata["audience"] == "gw"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://dancu.gialai.gov.vn", "gw")
    assert accepted.status_code == 200


async def test_jwks_publishes_public_keys_only(gateway: Gateway) -> None:
    response = await gateway.http.get("/.well-known/jwks.json")

    keys = response.json()["keys"]
    assert len(keys) == 2  # the token and attestation key, then the audit checkpoint key
    assert keys[1]["kid"] == gateway.state[CHECKPOINTS].key.kid
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")


async def test_jwks_may_be_cached_for_a_while(gateway: Gateway) -> None:
    # docs/contract.md, Keys and metadata: verifiers cache the key set; every other answer stays no-store.
    jwks = await gateway.http.get("/.well-known/jwks.json")
    metadata = await gateway.http.get("/.well-known/oauth-authorization-server")

    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert metadata.headers["cache-control"] == "no-store"


async def test_issued_token_names_the_active_kid(gateway: Gateway) -> None:
    client: Registered = await gateway.register()

    token = await gateway.token(client)
    active = await gateway.keys.signing_key()

    assert jwt.get_unverified_header(token)["kid"] == active.kid
