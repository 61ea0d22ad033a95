"""Signed checkpoints: ``{log_id, seq, hash, at, kid, jws}``, kept in the database and written as files.

A checkpoint states "the log named ``log_id`` had, at ``at``, ``seq`` events, the last one hashed ``hash``",
signed (ES256, compact JWS, ``typ: checkpoint+jwt``) with a key the database never holds: the PEM file
``DANCU_AUDIT__CHECKPOINT_KEY_FILE`` (generated with mode 0600 in ``dev`` when missing; the ``prod`` profile
requires it). Whoever can rewrite the database cannot make a checkpoint, so a cut tail or a recomputed chain
no longer matches the last one. Each checkpoint is also written, atomically, as a JSON file to
``DANCU_AUDIT__CHECKPOINT_DIR``, which should live outside the database's reach (another volume, a WORM bucket
synchronised from it).

``Checkpointer`` makes one every ``..._EVERY_EVENTS`` events or ``..._EVERY_SECONDS`` seconds (a background
task of the lifespan; the request path only bumps a counter), on demand, and at a clean shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.chain import Head, ensure_head, format_timestamp, read_head
from app.audit.errors import CheckpointKeyError
from app.audit.models import AuditCheckpointRow
from app.audit.sqlite_appender import insert_checkpoint
from app.config import AuditSettings, Settings
from app.db import sqlite_file, utcnow
from app.files import write_private_file
from app.jws import GATEWAY_ALG, SigningKey, TokenRejected, jwk_thumbprint, sign_jws, verify_jws

logger = logging.getLogger(__name__)

FILE_PREFIX: Final = "checkpoint-"
ANCHOR_FILE: Final = "anchor.json"
"""In the checkpoint directory: the checkpoint an archived log is verified from (docs/operations.md)."""
MAX_POLL_SECONDS: Final = 5.0
SHUTDOWN_TIMEOUT_SECONDS: Final = 5.0
CHECKPOINT_TYP: Final = "checkpoint+jwt"
MEMBERS: Final = ("log_id", "seq", "hash", "at", "kid")
"""What the JWS signs (every member of a checkpoint but ``jws``)."""


# --- the key ------------------------------------------------------------------------------------------------


def load_checkpoint_key(settings: Settings, *, create: bool = True) -> SigningKey:
    """The checkpoint key from ``DANCU_AUDIT__CHECKPOINT_KEY_FILE``: a P-256 private key (signs and verifies)
    or, for a verifier, a public key. In ``dev`` a missing file is generated (0600) when ``create``."""
    path = settings.audit.checkpoint_key_file
    if not path.exists():
        if settings.profile == "prod" or not create:
            raise CheckpointKeyError(f"DANCU_AUDIT__CHECKPOINT_KEY_FILE: {path} does not exist")
        _generate_key_file(path)
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise CheckpointKeyError(f"DANCU_AUDIT__CHECKPOINT_KEY_FILE: cannot read {path}") from err
    try:
        if b"PRIVATE KEY" in pem:
            return SigningKey.from_private_pem(pem)
        return public_key_from_pem(pem)
    except ValueError:
        raise CheckpointKeyError(
            f"DANCU_AUDIT__CHECKPOINT_KEY_FILE: {path} is not an EC P-256 key in PEM"
        ) from None


def public_key_from_pem(pem: bytes) -> SigningKey:
    """A verify-only key from a P-256 public key in PEM (what an auditor is given)."""
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        raise ValueError("not an EC P-256 public key")
    numbers = public.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    kid = jwk_thumbprint(jwk)
    return SigningKey.from_public_jwk({**jwk, "kid": kid, "alg": GATEWAY_ALG, "use": "sig"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _generate_key_file(path: Path) -> None:
    """A new P-256 key, created atomically with mode 0600 (a concurrent worker's key wins if it was first)."""
    _key, pem = SigningKey.generate()
    write_private_file(path, pem, replace=False)
    logger.warning("generated a development checkpoint key in %s (refused by the prod profile)", path)


# --- checkpoints --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log_id: str
    seq: int
    hash: str
    at: str
    """RFC 3339, UTC, six fraction digits, ``Z`` (exactly as signed)."""
    kid: str
    jws: str

    def document(self) -> dict[str, Any]:
        """The JSON form: in API answers and in checkpoint files."""
        return {
            "log_id": self.log_id,
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "kid": self.kid,
            "jws": self.jws,
        }

    def file_name(self) -> str:
        """Sorts by ``seq``, then time: the last name in the directory is the latest checkpoint."""
        stamp = self.at.replace("-", "").replace(":", "").replace(".", "")
        return f"{FILE_PREFIX}{self.seq:016d}-{stamp}.json"

    @classmethod
    def from_row(cls, row: AuditCheckpointRow) -> Checkpoint:
        return cls(row.log_id, row.seq, row.hash, format_timestamp(row.at), row.kid, row.jws)


def sign_checkpoint(head: Head, key: SigningKey, at: datetime) -> Checkpoint:
    """A checkpoint of ``head``: the JWS signs ``{log_id, seq, hash, at, kid}``."""
    stamp = format_timestamp(at)
    claims = {"log_id": head.log_id, "seq": head.seq, "hash": head.hash, "at": stamp, "kid": key.kid}
    return Checkpoint(head.log_id, head.seq, head.hash, stamp, key.kid, sign_jws(claims, CHECKPOINT_TYP, key))


def write_checkpoint_file(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``directory`` atomically (``app.files.write_private_file``)."""
    path = directory / checkpoint.file_name()
    write_private_file(
        path, (json.dumps(checkpoint.document(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    )
    return path


def latest_checkpoint_file(directory: Path) -> Path | None:
    """The checkpoint file with the highest ``seq`` (then the latest time) in ``directory``, if any."""
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(directory)
            if entry.name.startswith(FILE_PREFIX) and entry.name.endswith(".json")
        )
    except FileNotFoundError:
        return None
    return directory / names[-1] if names else None


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    """The stored checkpoint with the highest ``seq`` (the most recent of those)."""
    row = await session.scalar(
        select(AuditCheckpointRow)
        .order_by(AuditCheckpointRow.seq.desc(), AuditCheckpointRow.id.desc())
        .limit(1)
    )
    return None if row is None else Checkpoint.from_row(row)


class Checkpointer:
    """Makes checkpoints: every N events or T seconds (a background task), on demand, and at shutdown."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key: SigningKey,
        settings: AuditSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if key.signer is None:
            raise CheckpointKeyError("DANCU_AUDIT__CHECKPOINT_KEY_FILE holds a public key: it cannot sign")
        self._sessionmaker = sessionmaker
        self._sqlite_path = sqlite_file(sessionmaker.kw["bind"])
        self.key = key
        # Resolved now: a later change of the working directory must not move where checkpoints go.
        self.directory = settings.checkpoint_dir.absolute()
        self._every_events = settings.checkpoint_every_events
        self._every_seconds = settings.checkpoint_every_seconds
        self._clock = clock
        self._started = clock()
        self._appended = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()

    def note_appended(self, count: int) -> None:
        """Called by the audit writer after each commit: the only cost on the request path."""
        self._appended += count
        if self._appended >= self._every_events:
            self._wake.set()

    async def make(self) -> Checkpoint:
        """A checkpoint of the head as it is now (made even if the head has not moved): stored and written."""
        async with self._lock, self._sessionmaker() as session:
            return await self._store(session, await ensure_head(session))

    async def make_if_due(self, *, final: bool = False) -> Checkpoint | None:
        """A checkpoint when N events or T seconds have passed since the latest one (any process's);
        ``final``: whenever the head has moved past it (a clean shutdown)."""
        async with self._lock, self._sessionmaker() as session:
            head = await read_head(session)
            if head is None or head.seq == 0:
                return None
            latest = await latest_checkpoint(session)
            behind = head.seq - (latest.seq if latest is not None else 0)
            if behind <= 0:
                self._appended = 0
                return None
            if latest is None:
                elapsed = self._clock() - self._started
            else:
                elapsed = (utcnow() - datetime.fromisoformat(latest.at)).total_seconds()
            if not final and behind < self._every_events and elapsed < self._every_seconds:
                return None
            return await self._store(session, head)

    async def _store(self, session: AsyncSession, head: Head) -> Checkpoint:
        checkpoint = sign_checkpoint(head, self.key, utcnow())
        # The file first: a checkpoint that is not outside the database too is not committed either. And
        # before the insert: the insert takes the database's write lock until the commit, and the file's two
        # fsyncs under it held every audit append (so every answer) for milliseconds, several times a second
        # under load (checkpoints come every 1,000 events). A file whose row then fails to commit is still a
        # true signed statement of the head at its seq.
        await asyncio.to_thread(write_checkpoint_file, self.directory, checkpoint)
        row = {
            "log_id": checkpoint.log_id,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "at": datetime.fromisoformat(checkpoint.at),
            "kid": checkpoint.kid,
            "jws": checkpoint.jws,
        }
        if self._sqlite_path is not None:  # insert and commit in one call: see insert_checkpoint
            await asyncio.to_thread(insert_checkpoint, self._sqlite_path, row)
        else:
            session.add(AuditCheckpointRow(**row))
            await session.commit()
        self._appended = 0
        return checkpoint

    # the background task

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="audit-checkpoints")

    async def stop(self) -> None:
        """Stop the task, then make a last checkpoint if the head moved (errors are logged, not raised).

        The task is told twice, by a flag and by cancelling it: on Python 3.11 a cancellation that meets a
        wake-up in the same tick could be lost inside ``asyncio.wait_for``, and the task ran on (and this
        waited for it forever: a shutdown under load hung). ``asyncio.wait`` waits for the task without
        taking its CancelledError for ours: a caller cancelled meanwhile is cancelled, as it should be.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            task.cancel()
            await asyncio.wait([task])
        try:
            await asyncio.wait_for(self.make_if_due(final=True), SHUTDOWN_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.warning("final audit checkpoint failed: %s", type(exc).__qualname__)

    async def _run(self) -> None:
        poll = min(float(self._every_seconds), MAX_POLL_SECONDS)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):  # not wait_for: see stop()
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.make_if_due()
            except Exception as exc:  # the next round tries again; the request path never waits for this
                logger.warning("audit checkpoint failed: %s", type(exc).__qualname__)


class _OneKey:
    """Resolves the checkpoint key's ``kid`` and nothing else."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    def verification_key(self, kid: str) -> SigningKey | None:
        return self._key if kid == self._key.kid else None


_HEX = frozenset("0123456789abcdef")


def verify_checkpoint(document: object, key: SigningKey) -> Checkpoint | None:
    """``document`` as a Checkpoint when its JWS verifies with ``key`` and signs exactly its members;
    None otherwise (a forged, altered or malformed checkpoint)."""
    if not isinstance(document, Mapping):
        return None
    try:
        claims = verify_jws(document.get("jws"), _OneKey(key), typ=CHECKPOINT_TYP)  # type: ignore[arg-type]
    except TokenRejected:
        return None
    log_id, seq, hash_, at, kid = (claims.get(name) for name in MEMBERS)
    if not (
        isinstance(log_id, str)
        and isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 0
        and isinstance(hash_, str)
        and len(hash_) == 64
        and set(hash_) <= _HEX
        and isinstance(at, str)
        and kid == key.kid
    ):
        return None
    if any(document.get(name) != claims.get(name) for name in MEMBERS):
        return None
    return Checkpoint(log_id, seq, hash_, at, kid, str(document["jws"]))
