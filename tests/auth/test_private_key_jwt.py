"""private_key_jwt (RFC 7523): assertion checks, single use of `jti`, and the Redis replay store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.auth.errors import ReplayStoreUnavailable
from app.auth.replay import MemoryReplayStore, RedisReplayStore
from app.config import Settings
from tests.auth.conftest import protected_app
from tests.harness import BASE_URL, TOKEN_URL, Gateway

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def jwk_of(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    exported = (
        jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        if isinstance(private, ec.EllipticCurvePrivateKey)
        else jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    )
    return {**exported, "kid": kid}


class FromNow(int):
    """Seconds to add to the time an assertion is made: a NumericDate fixed at collection would drift, and a
    suite that takes more than five minutes to reach a test turned "600 s ahead" into "under 5 minutes"."""


class Holder:
    """A client holding an EC key, making assertions the way RFC 7523 says (or not, when asked)."""

    def __init__(self, client_id: str, key: ec.EllipticCurvePrivateKey, kid: str = "k1") -> None:
        self.client_id = client_id
        self.key = key
        self.kid = kid

    def assertion(self, **changes: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(
            {name: now + value if isinstance(value, FromNow) else value for name, value in changes.items()}
        )
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


def form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


@pytest.fixture
async def holder(gateway: Gateway) -> Holder:
    key = ec.generate_private_key(ec.SECP256R1())
    client = await gateway.register(jwks={"keys": [jwk_of(key, "k1")]})
    return Holder(client.client_id, key)


async def post(gateway: Gateway, data: dict[str, str]) -> httpx.Response:
    return await gateway.http.post("/oauth2/token", data=data)


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


async def test_a_good_assertion_gets_a_token(gateway: Gateway, holder: Holder) -> None:
    response = await post(gateway, form(holder.assertion(), client_id=holder.client_id))

    assert response.status_code == 200, response.text
    assert (
        jwt.decode(response.json()["access_token"], options={"verify_signature": False})["sub"]
        == holder.client_id
    )


async def test_the_issuer_is_an_accepted_audience(gateway: Gateway, holder: Holder) -> None:
    assert (await post(gateway, form(holder.assertion(aud=[BASE_URL, "other"])))).status_code == 200


async def test_a_replayed_jti_is_refused(gateway: Gateway, holder: Holder) -> None:
    assertion = holder.assertion()

    first = await post(gateway, form(assertion))
    replay = await post(gateway, form(assertion))
    same_jti = await post(
        gateway, form(holder.assertion(jti=jwt.decode(assertion, options={"verify_signature": False})["jti"]))
    )

    assert first.status_code == 200
    assert_invalid_client(replay)
    assert_invalid_client(same_jti)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"aud": "https://elsewhere.example/oauth2/token"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": "c_someone_else"}, id="iss-not-sub"),
        pytest.param({"exp": FromNow(600)}, id="exp-beyond-5-minutes"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"exp": FromNow(-60)}, id="expired"),
        pytest.param({"jti": None}, id="no-jti"),
        pytest.param({"jti": "x" * 300}, id="jti-too-long"),
        pytest.param({"iat": FromNow(3600), "exp": FromNow(3700)}, id="iat-in-the-future"),
        pytest.param({"nbf": FromNow(3600)}, id="not-yet-valid"),
    ],
)
async def test_bad_assertions_are_invalid_client(
    gateway: Gateway, holder: Holder, changes: dict[str, Any]
) -> None:
    assert_invalid_client(await post(gateway, form(holder.assertion(**changes))))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"exp": FromNow(-60)}, "expired", id="expired"),
        pytest.param({"jti": None}, "claim missing: jti", id="no-jti"),
        pytest.param({"exp": None}, "claim missing: exp", id="no-exp"),
        pytest.param({"nbf": FromNow(3600)}, "not valid yet", id="not-yet-valid"),
        pytest.param({"aud": "https://elsewhere.example/"}, "aud names neither", id="wrong-aud"),
    ],
)
async def test_the_log_says_why_a_signed_assertion_was_refused(
    gateway: Gateway, holder: Holder, changes: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    # docs/contract.md, Token endpoint: the caller learns only `invalid_client`; the operator's log says why.
    with caplog.at_level(logging.INFO, logger="app.auth.service"):
        assert_invalid_client(await post(gateway, form(holder.assertion(**changes))))

    refusals = [r.getMessage() for r in caplog.records if "client assertion refused" in r.getMessage()]
    assert len(refusals) == 1
    assert reason in refusals[0]
    assert "no registered key" not in refusals[0]


async def test_the_log_says_when_no_key_verifies_the_signature(
    gateway: Gateway, holder: Holder, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = Holder(holder.client_id, ec.generate_private_key(ec.SECP256R1()))

    with caplog.at_level(logging.INFO, logger="app.auth.service"):
        assert_invalid_client(await post(gateway, form(stranger.assertion(exp=FromNow(-60)))))

    assert any("verifies the assertion's signature" in r.getMessage() for r in caplog.records)


async def test_sub_naming_another_client_is_refused(gateway: Gateway, holder: Holder) -> None:
    other = await gateway.register()

    # Signed by the holder but claiming to be the other client (whose keys do not verify it, and it has none).
    assert_invalid_client(
        await post(gateway, form(holder.assertion(iss=other.client_id, sub=other.client_id)))
    )
    # The form's client_id must agree with the assertion.
    assert_invalid_client(await post(gateway, form(holder.assertion(), client_id=other.client_id)))


async def test_an_unregistered_key_is_refused(gateway: Gateway, holder: Holder) -> None:
    stranger = Holder(holder.client_id, ec.generate_private_key(ec.SECP256R1()))

    assert_invalid_client(await post(gateway, form(stranger.assertion())))
    stranger.kid = "unknown"
    assert_invalid_client(await post(gateway, form(stranger.assertion())))


async def test_the_algorithm_comes_from_the_registered_key_not_the_header(gateway: Gateway) -> None:
    # An RS256 key is registered; the attacker "signs" HS256 with that public key as the HMAC secret.
    registered = rsa.generate_private_key(65537, 2048)
    client = await gateway.register(jwks={"keys": [jwk_of(registered, "rsa")]})
    public_pem = registered.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": TOKEN_URL,
        "exp": now + 60,
        "jti": "j1",
    }

    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{segment({'alg': 'HS256', 'kid': 'rsa'})}.{segment(claims)}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    genuine = jwt.encode({**claims, "jti": "j2"}, registered, algorithm="RS256", headers={"kid": "rsa"})
    es_header = jwt.encode(
        {**claims, "jti": "j3"},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "rsa"},
    )

    assert_invalid_client(await post(gateway, form(forged)))
    assert_invalid_client(await post(gateway, form(es_header)))
    assert (await post(gateway, form(genuine))).status_code == 200


async def test_a_client_without_registered_keys_cannot_use_private_key_jwt(gateway: Gateway) -> None:
    client = await gateway.register()
    holder = Holder(client.client_id, ec.generate_private_key(ec.SECP256R1()))

    assert_invalid_client(await post(gateway, form(holder.assertion())))


async def test_a_suspended_client_with_a_good_assertion_is_refused(gateway: Gateway, holder: Holder) -> None:
    await gateway.set_status(holder.client_id, "suspended")

    assert_invalid_client(await post(gateway, form(holder.assertion())))


# --- the replay stores --------------------------------------------------------------------------------------


async def test_memory_store_remembers_until_expiry() -> None:
    store = MemoryReplayStore(max_entries=2)
    now = int(time.time())

    assert await store.claim("c:1", now + 60)
    assert not await store.claim("c:1", now + 60)
    assert await store.claim("c:2", now - 1)  # already expired: forgotten at the next prune
    assert await store.claim("c:3", now + 60)
    with pytest.raises(ReplayStoreUnavailable):
        await store.claim("c:4", now + 60)  # full of live ids: refuse rather than forget one


@pytest.fixture
async def redis_stores(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[RedisReplayStore, RedisReplayStore]]:
    """Two stores on one Redis, as two worker processes would have."""
    first = RedisReplayStore.from_url(redis_url, redis_prefix)
    second = RedisReplayStore.from_url(redis_url, redis_prefix)
    yield first, second
    await first.close()
    await second.close()


async def test_redis_store_refuses_a_replay_in_another_process(
    redis_stores: tuple[RedisReplayStore, RedisReplayStore], redis_url: str, redis_prefix: str
) -> None:
    first, second = redis_stores
    key = "c_x:" + secrets.token_hex(8)
    expires_at = int(time.time()) + 30

    assert await first.claim(key, expires_at)
    assert not await second.claim(key, expires_at)
    assert not await first.claim(key, expires_at)

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{redis_prefix}jti:*")]
        ttl = await client.ttl(keys[0])
    finally:
        await client.aclose()
    assert keys
    assert all(k.decode().startswith(redis_prefix) for k in keys)
    assert 0 < ttl <= 32
    assert key.encode() not in b"".join(keys)  # stored as a digest


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_store_fails_closed() -> None:
    store = RedisReplayStore.from_url(f"redis://127.0.0.1:{closed_port()}/0", "dancu_t_down:")
    try:
        with pytest.raises(ReplayStoreUnavailable):
            await store.claim("c:1", int(time.time()) + 30)
    finally:
        await store.close()


async def test_gateway_with_redis_shares_the_jti_store(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = Settings(
        _env_file=None, database_url=sqlite_url, redis_url=redis_url, redis_key_prefix=redis_prefix
    )
    app = protected_app(settings)
    other = RedisReplayStore.from_url(redis_url, redis_prefix)  # another replica's store
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        gateway = Gateway(app, http)
        key = ec.generate_private_key(ec.SECP256R1())
        client = await gateway.register(jwks={"keys": [jwk_of(key, "k1")]})
        holder = Holder(client.client_id, key)
        used_elsewhere = holder.assertion()
        claims = jwt.decode(used_elsewhere, options={"verify_signature": False})
        assert await other.claim(f"{client.client_id}:{claims['jti']}", claims["exp"])

        fresh = await post(gateway, form(holder.assertion()))
        replayed = await post(gateway, form(used_elsewhere))
    await other.close()

    assert fresh.status_code == 200
    assert_invalid_client(replayed)


async def test_redis_down_is_503_for_private_key_jwt_only(sqlite_url: str) -> None:
    settings = Settings(
        _env_file=None, database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{closed_port()}/0"
    )
    app = protected_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as http,
    ):
        gateway = Gateway(app, http)
        key = ec.generate_private_key(ec.SECP256R1())
        client = await gateway.register(jwks={"keys": [jwk_of(key, "k1")]})
        down = await post(gateway, form(Holder(client.client_id, key).assertion()))
        with_secret = await gateway.token_response(client)

    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
    assert down.headers["cache-control"] == "no-store"
    assert with_secret.status_code == 200
