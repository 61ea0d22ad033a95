"""The gateway's key material: the Fernet key, the client-secret HMAC key, and the signing keys.

``DANCU_KEYS__ENCRYPTION_KEY`` (Fernet) encrypts the signing keys stored in the database; in ``dev`` it is
generated once into ``./var/keys/encryption.key`` (mode 0600) when unset (``prod`` refuses that). The key that
hashes client secrets (HMAC-SHA256) is derived from it with HKDF under its own label, so no extra setting is
needed; changing the encryption key therefore invalidates every client secret as well.

``KeyStore`` is built once per process in the lifespan and touches the database only on first use. It holds
every signing key as a ready-made key object, by ``kid``: tokens resolve their ``kid`` in that map and
nowhere else. The map is reloaded from the database every ``REFRESH_SECONDS`` and, at most once a second,
when a token names a ``kid`` it does not know (a key another process has just made). The process that
rotates installs its new key as soon as the rotation commits.

Retired keys are never deleted and stay published in the JWKS: access tokens expire after
``DANCU_TOKEN_TTL_SECONDS``, but attestations travel with dossiers and must stay verifiable offline for as
long as the dossier lives, and nothing records when the last of them stops mattering. Only the active key is
ever decrypted; retired keys are loaded from their public JWK.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from app.auth.errors import KeyConfigurationError
from app.auth.models import SigningKey as SigningKeyRow
from app.auth.repository import SigningKeyRepository
from app.auth.tokens import VerifiedTokenCache
from app.config import Settings
from app.db import utcnow
from app.files import write_private_file
from app.jws import GATEWAY_ALG, SigningKey, sign_jws

logger = logging.getLogger(__name__)

ENCRYPTION_KEY_FILE = Path("var/keys/encryption.key")
"""Where ``dev`` keeps its generated Fernet key (relative to the working directory, like ``./var``)."""
REFRESH_SECONDS = 5.0
UNKNOWN_KID_RELOAD_INTERVAL_SECONDS = 1.0
_SECRET_HMAC_LABEL = b"dancu-gateway client-secret hmac v1"
_CURSOR_MAC_LABEL = b"dancu-gateway cursor mac v1"
_CURSOR_TAG_BYTES = 16


# --- the Fernet key and what is derived from it --------------------------------------------------------------


def load_encryption_key(settings: Settings) -> bytes:
    """The Fernet key (urlsafe base64): from the settings, or generated once under ./var/keys in ``dev``."""
    configured = settings.keys.encryption_key
    if configured is not None:
        return _fernet_key(configured.get_secret_value(), "DANCU_KEYS__ENCRYPTION_KEY")
    if settings.profile == "prod":
        raise KeyConfigurationError("DANCU_KEYS__ENCRYPTION_KEY is required in the prod profile")
    return _dev_encryption_key(ENCRYPTION_KEY_FILE)


def _fernet_key(text: str, source: str) -> bytes:
    compact = text.strip().replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        raise KeyConfigurationError(f"{source} is not base64") from None
    if len(raw) != 32:
        raise KeyConfigurationError(f"{source} is not a Fernet key (32 bytes, base64)")
    return base64.urlsafe_b64encode(raw)


def _dev_encryption_key(path: Path) -> bytes:
    """Read the dev key, or create it atomically (0600) so that concurrent workers end up with the same one."""
    if not path.exists():
        # If another worker got there first, its key wins.
        write_private_file(path, Fernet.generate_key() + b"\n", replace=False)
        logger.warning("generated a development encryption key in %s (refused by the prod profile)", path)
    return _fernet_key(path.read_text(encoding="ascii"), str(path))


class SecretHasher:
    """Client secrets as HMAC-SHA256 under a key derived from the encryption key; ``kid`` names that key."""

    def __init__(self, encryption_key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SECRET_HMAC_LABEL).derive(
            base64.urlsafe_b64decode(encryption_key)
        )
        self.kid = "h1-" + hashlib.sha256(b"kid:" + self._key).hexdigest()[:16]

    def hash(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, stored_hash: str, stored_kid: str) -> bool:
        """Constant-time comparison; the HMAC is computed whatever the stored values are."""
        computed = self.hash(secret)
        return hmac.compare_digest(computed, stored_hash) & (stored_kid == self.kid)


class CursorSigner:
    """Keyed MACs for the opaque cursors the gateway hands out (pages of the admin and audit APIs).

    A cursor carries where the next page starts; an unkeyed checksum over it can be recomputed by anyone who
    has seen one, so an edited or forged cursor would pass. Under this key (HKDF of the encryption key, its own
    label; every replica derives the same) only the gateway can make one. A cursor stays valid until the
    encryption key changes."""

    def __init__(self, encryption_key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CURSOR_MAC_LABEL).derive(
            base64.urlsafe_b64decode(encryption_key)
        )

    def tag(self, data: bytes) -> str:
        """128 bits of HMAC-SHA256 over ``data``, base64url without padding."""
        digest = hmac.new(self._key, data, hashlib.sha256).digest()[:_CURSOR_TAG_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def valid(self, data: bytes, tag: str) -> bool:
        """Whether ``tag`` is this key's tag of ``data`` (constant time)."""
        return hmac.compare_digest(self.tag(data).encode("ascii"), tag.encode("ascii", "replace"))

    def seal(self, data: bytes) -> str:
        """``data`` as an opaque cursor: base64url of it, a dot, its tag."""
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") + "." + self.tag(data)

    def open(self, cursor: str) -> bytes | None:
        """The data of a cursor ``seal`` made; None for anything else (edited, forged, garbled)."""
        body, dot, tag = cursor.partition(".")
        if not dot or not _CURSOR_TEXT.fullmatch(body) or not _CURSOR_TEXT.fullmatch(tag):
            return None
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        return data if self.valid(data, tag) else None


_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]{1,1024}")


def new_client_secret() -> str:
    """256 bits from the OS's CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


# --- signing keys ------------------------------------------------------------------------------------------


class KeyStore:
    """The process's signing keys: the active one signs, every one (retired included) verifies and is published."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        encryption_key: bytes,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._fernet = Fernet(encryption_key)
        self.secrets = SecretHasher(encryption_key)
        self.cursors = CursorSigner(encryption_key)
        """MACs for the admin and audit APIs' page cursors."""
        self.token_cache = VerifiedTokenCache()
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._active: SigningKey | None = None
        self._jwks: dict[str, Any] = {"keys": []}
        self._loaded_at: float | None = None
        self._forced_at = float("-inf")
        self._lock = asyncio.Lock()
        self._reloading: asyncio.Task[None] | None = None
        self.extra_public_jwks: list[Mapping[str, Any]] = []
        """Other gateway keys published beside these (the audit checkpoint key); never used for tokens."""

    @classmethod
    def from_settings(cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> KeyStore:
        """The store for these settings; reads (or in dev creates) the encryption key, not the database."""
        return cls(sessionmaker, load_encryption_key(settings))

    # reading

    def verification_key(self, kid: str) -> SigningKey | None:
        """The key with this ``kid`` in the preloaded map (never fetched from anywhere)."""
        return self._keys.get(kid)

    async def signing_key(self) -> SigningKey:
        """The active key, refreshed if stale (another process may have rotated)."""
        await self.maybe_refresh()
        if self._active is None:
            raise RuntimeError("no active signing key")
        return self._active

    async def jwks(self) -> Mapping[str, Any]:
        """``{"keys": [...]}``: every key the gateway has signed with, newest first, then the extra ones."""
        await self.maybe_refresh()
        if not self.extra_public_jwks:
            return self._jwks
        return {"keys": [*self._jwks["keys"], *(dict(jwk) for jwk in self.extra_public_jwks)]}

    async def sign_jws(self, claims: Mapping[str, Any], typ: str) -> str:
        """A compact JWS by the active key (attestations: ``verification+jwt``)."""
        return sign_jws(claims, typ, await self.signing_key())

    # loading

    async def maybe_refresh(self) -> None:
        """Reload the key table when it is older than REFRESH_SECONDS (one reload at a time).

        Once keys are loaded, the reload runs in the background and the caller goes on with the keys it has
        (they were good a moment ago; a rotation elsewhere is picked up when the reload lands, milliseconds
        later). The caller used to wait: under load the reload's round trips through aiosqlite took 200-450
        ms, and the request that happened to trigger it every 5 s took that long.
        """
        if self._loaded_at is not None and (
            self._clock() - self._loaded_at < REFRESH_SECONDS or self._lock.locked()
        ):
            return
        if self._active is None:
            await self._refresh_or_keep()  # nothing to sign with yet: wait for it
            return
        loop = asyncio.get_running_loop()
        running = self._reloading
        if running is None or running.done() or running.get_loop() is not loop:
            self._reloading = loop.create_task(self._refresh_or_keep(), name="signing-key-reload")

    async def _refresh_or_keep(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            if self._active is None:
                raise
            # Keep serving with the keys already loaded; try again after another REFRESH_SECONDS.
            self._loaded_at = self._clock()
            logger.warning("signing key reload failed: %s", type(exc).__qualname__)

    async def close(self) -> None:
        """Stop a background reload still running (the lifespan's shutdown, before the engine goes)."""
        running, self._reloading = self._reloading, None
        if running is not None and not running.done() and running.get_loop() is asyncio.get_running_loop():
            running.cancel()
            await asyncio.wait([running])

    async def reload_for_unknown_kid(self) -> bool:
        """Reload at most once a second for a ``kid`` nobody here knows; True when it reloaded."""
        if self._clock() - self._forced_at < UNKNOWN_KID_RELOAD_INTERVAL_SECONDS:
            return False
        self._forced_at = self._clock()
        await self.refresh()
        return True

    async def refresh(self) -> None:
        """Load the key table; on the very first start (no active key) make and store one."""
        async with self._lock:
            rows = await self._load_rows()
            if not any(row.active for row in rows):
                await self._create_first_key()
                rows = await self._load_rows()
            self._install(rows)
            self._loaded_at = self._clock()

    async def _load_rows(self) -> list[SigningKeyRow]:
        async with self._sessionmaker() as session:
            return list(await SigningKeyRepository(session).all())

    async def _create_first_key(self) -> None:
        # Two processes starting at once on an empty table may both get here: both keys are kept, both are
        # published, and every process signs with the newest (``_install``).
        key, pem = SigningKey.generate()
        async with self._sessionmaker() as session:
            await SigningKeyRepository(session).add(self._row(key, pem))
            await session.commit()
        logger.info("created the first signing key %s", key.kid)

    def _install(self, rows: list[SigningKeyRow]) -> None:
        rows = sorted(rows, key=lambda r: (r.created_at, r.kid), reverse=True)
        newest_active = next(row for row in rows if row.active)
        keys: dict[str, SigningKey] = {}
        for row in rows:
            known = self._keys.get(row.kid)
            if known is None:
                known = SigningKey.from_public_jwk(row.public_jwk)
            keys[row.kid] = known if row.kid == newest_active.kid else known.verify_only()
        active = keys[newest_active.kid]
        if active.signer is None:
            # Decrypted once, when a key becomes the active one in this process.
            active = keys[active.kid] = self._decrypt(newest_active)
        self._set(keys, active)

    def _set(self, keys: dict[str, SigningKey], active: SigningKey) -> None:
        self._keys = keys
        self._active = active
        self._jwks = {"keys": [dict(key.public_jwk) for key in keys.values()]}

    def _decrypt(self, row: SigningKeyRow) -> SigningKey:
        try:
            pem = self._fernet.decrypt(row.private_key_encrypted.encode("ascii"))
        except InvalidToken:
            raise KeyConfigurationError(
                f"signing key {row.kid} cannot be decrypted: DANCU_KEYS__ENCRYPTION_KEY is not the key it was "
                "stored with"
            ) from None
        key = SigningKey.from_private_pem(pem)
        if key.kid != row.kid:
            raise KeyConfigurationError(f"signing key {row.kid} does not match its stored kid")
        return key

    def _row(self, key: SigningKey, pem: bytes) -> SigningKeyRow:
        return SigningKeyRow(
            kid=key.kid,
            alg=GATEWAY_ALG,
            private_key_encrypted=self._fernet.encrypt(pem).decode("ascii"),
            public_jwk=dict(key.public_jwk),
            active=True,
            created_at=utcnow(),
            retired_at=None,
        )

    # rotating

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Make a new active key in ``session`` (flushed, not committed) and retire the others.

        This process signs with the new key as soon as ``session`` commits; other processes within
        REFRESH_SECONDS, or at once when they meet its ``kid``.
        """
        key, pem = SigningKey.generate()
        repository = SigningKeyRepository(session)
        await repository.retire_active(utcnow())
        await repository.add(self._row(key, pem))
        pending = [key]  # emptied by the first commit or rollback of ``session``

        def committed(_session: Session) -> None:
            if pending:
                pending.clear()
                self._set({key.kid: key, **{kid: k.verify_only() for kid, k in self._keys.items()}}, key)

        def rolled_back(_session: Session) -> None:
            pending.clear()

        event.listen(session.sync_session, "after_commit", committed, once=True)
        event.listen(session.sync_session, "after_rollback", rolled_back, once=True)
        return key
