"""Key material: the dev encryption key, signing keys stored encrypted, rotation across processes."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from app.audit.dependencies import CHECKPOINTS
from app.audit.writer import AdminLog
from app.auth.errors import KeyConfigurationError
from app.auth.keys import ENCRYPTION_KEY_FILE, REFRESH_SECONDS, KeyStore, SecretHasher, load_encryption_key
from app.auth.models import SigningKey as SigningKeyRow
from app.auth.service import AuthService
from app.config import KeysSettings, Settings
from app.jws import verify_jws
from tests.harness import Gateway

NET = 10.0
"""The most a step that must not wait may take before the test calls it stuck (a safety net, not a limit)."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dev_generates_the_encryption_key_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)

    first = load_encryption_key(settings)
    second = load_encryption_key(settings)

    path = tmp_path / ENCRYPTION_KEY_FILE
    assert first == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    Fernet(first)  # a usable Fernet key
    assert [p.name for p in path.parent.iterdir()] == ["encryption.key"]


def test_prod_refuses_to_generate_a_key(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="DANCU_KEYS__ENCRYPTION_KEY"):
        load_encryption_key(Settings(_env_file=None, profile="prod"))
    assert not (tmp_path / ENCRYPTION_KEY_FILE).exists()


def test_a_configured_key_is_used_and_checked() -> None:
    key = Fernet.generate_key()
    configured = Settings(_env_file=None, keys=KeysSettings(encryption_key=SecretStr(key.decode())))
    standard_b64 = key.decode().replace("-", "+").replace("_", "/")
    also = Settings(_env_file=None, keys=KeysSettings(encryption_key=SecretStr(standard_b64)))

    assert load_encryption_key(configured) == key
    assert load_encryption_key(also) == key
    with pytest.raises(KeyConfigurationError) as raised:
        load_encryption_key(Settings(_env_file=None, keys=KeysSettings(encryption_key=SecretStr("changeme"))))
    assert "changeme" not in str(raised.value)


def test_secret_hasher_is_keyed_by_the_encryption_key() -> None:
    one, two = SecretHasher(Fernet.generate_key()), SecretHasher(Fernet.generate_key())

    assert one.hash("s") != two.hash("s")
    assert len(one.hash("s")) == 64
    assert one.matches("s", one.hash("s"), one.kid)
    assert not one.matches("s", one.hash("s"), two.kid)
    assert not two.matches("s", one.hash("s"), one.kid)


async def test_first_use_creates_one_key_stored_encrypted(gateway: Gateway) -> None:
    await gateway.http.get("/.well-known/jwks.json")
    await gateway.http.get("/.well-known/jwks.json")

    async with gateway.state.sessionmaker() as session:
        rows = (await session.scalars(select(SigningKeyRow))).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.active
    assert row.retired_at is None
    assert row.alg == "ES256"
    assert "PRIVATE KEY" not in row.private_key_encrypted
    assert "d" not in row.public_jwk
    assert row.public_jwk["kid"] == row.kid


async def test_rotation_keeps_old_keys_published_and_their_tokens_valid(gateway: Gateway) -> None:
    client = await gateway.register()
    old_token = await gateway.token(client)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    attestation = await gateway.keys.sign_jws({"verification_id": "v1", "match": True}, "verification+jwt")

    for _ in range(2):
        async with gateway.state.sessionmaker() as session:
            await AuthService(
                session, gateway.keys.secrets, AdminLog(session, actor="test")
            ).rotate_signing_key(gateway.keys)
            await session.commit()

    new_token = await gateway.token(client)
    jwks = (await gateway.http.get("/.well-known/jwks.json")).json()
    kids = [key["kid"] for key in jwks["keys"]]
    new_kid = jwt.get_unverified_header(new_token)["kid"]
    assert new_kid != old_kid
    assert kids[0] == new_kid  # newest first, the rotating process signs with it at once
    assert kids[-1] == gateway.state[CHECKPOINTS].key.kid  # the audit checkpoint key comes after them
    assert len(kids) == 3 + 1
    assert old_kid in kids
    for token in (old_token, new_token):
        response = await gateway.http.get("/_t/read", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    assert verify_jws(attestation, gateway.keys, typ="verification+jwt")["verification_id"] == "v1"
    async with gateway.state.sessionmaker() as session:
        rows = (await session.scalars(select(SigningKeyRow))).all()
    assert sorted(r.active for r in rows) == [False, False, True]
    assert all(r.retired_at is not None for r in rows if not r.active)


async def test_a_rolled_back_rotation_changes_nothing(gateway: Gateway) -> None:
    before = await gateway.keys.signing_key()

    async with gateway.state.sessionmaker() as session:
        await gateway.keys.rotate(session)
        await session.rollback()
        await session.commit()  # a later commit of the same session must not install the discarded key

    assert await gateway.keys.signing_key() is before
    assert len((await gateway.keys.jwks())["keys"]) == 1 + 1  # and the audit checkpoint key


async def test_another_process_picks_up_a_rotation(gateway: Gateway) -> None:
    clock = Clock()
    other = KeyStore(gateway.state.sessionmaker, load_encryption_key(gateway.state.settings), clock=clock)
    first = await other.signing_key()
    assert first.kid == (await gateway.keys.signing_key()).kid

    async with gateway.state.sessionmaker() as session:
        rotated = await gateway.keys.rotate(session)
        await session.commit()

    assert (await other.signing_key()).kid == first.kid  # not stale yet
    assert other.verification_key(rotated.kid) is None
    assert await other.reload_for_unknown_kid()  # a token with the new kid arrived
    assert other.verification_key(rotated.kid) is not None
    assert not await other.reload_for_unknown_kid()  # at most once a second
    clock.now += REFRESH_SECONDS
    assert (await other.signing_key()).kid == rotated.kid
    # Verify-only copies for retired keys, the active one decrypted.
    assert other.verification_key(first.kid) is not None
    assert other.verification_key(first.kid).signer is None  # type: ignore[union-attr]


async def test_a_different_encryption_key_cannot_sign(gateway: Gateway) -> None:
    await gateway.keys.signing_key()
    stranger = KeyStore(gateway.state.sessionmaker, Fernet.generate_key())

    with pytest.raises(KeyConfigurationError, match="cannot be decrypted"):
        await stranger.signing_key()


async def test_a_stale_key_table_is_reloaded_without_making_the_caller_wait(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once keys are loaded, the 5-second reload runs beside the request that noticed it (under load the
    reload took 200-450 ms, all of it that request's); a rotation elsewhere lands when the reload does."""
    clock = Clock()
    other = KeyStore(gateway.state.sessionmaker, load_encryption_key(gateway.state.settings), clock=clock)
    first = await other.signing_key()
    async with gateway.state.sessionmaker() as session:
        rotated = await gateway.keys.rotate(session)
        await session.commit()
    release = asyncio.Event()
    load = other._load_rows

    async def slow_load() -> list[SigningKeyRow]:
        await release.wait()
        return await load()

    monkeypatch.setattr(other, "_load_rows", slow_load)
    clock.now += REFRESH_SECONDS
    # The reload waits for `release`: a caller held up by it would wait for ever (NET is only the safety net).
    assert (await asyncio.wait_for(other.signing_key(), NET)).kid == first.kid  # not held up by the reload
    reloading = other._reloading
    assert (await asyncio.wait_for(other.signing_key(), NET)).kid == first.kid  # one reload at a time
    assert other._reloading is reloading is not None
    release.set()
    await asyncio.wait_for(asyncio.shield(reloading), NET)  # the reload lands ...
    assert (await other.signing_key()).kid == rotated.kid  # ... and the next caller signs with the new key
    # A reload still running at shutdown is stopped, not left behind.
    clock.now += REFRESH_SECONDS
    release.clear()
    await other.signing_key()
    await asyncio.wait_for(other.close(), NET)
    assert other._reloading is None
