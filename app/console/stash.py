"""Results behind opaque tokens (docs/contract.md, section 15): a POSTed search or report keeps its inputs
here and redirects to a page whose URL holds only a random token, so a personal ID never reaches a URL, the
browser's history, a referrer or an access log.

The inputs are stored Fernet-encrypted (``DANCU_KEYS__ENCRYPTION_KEY``) under a SHA-256 of the token, bound
to the session that asked (another session, even of the same operator, gets nothing) and to a ``kind``;
ending the session removes them, and each new result removes those older than a session can live (8 hours), so
the inputs of a session that merely expired are not kept either. Opening the page again runs the read again, audited again, as an API
client asking twice would be.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any, Final

import orjson
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.console.models import ConsoleResult
from app.db import utcnow
from app.operators.service import ABSOLUTE_TIMEOUT

TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{32}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


async def keep(db: AsyncSession, fernet: Fernet, session_hash: str, kind: str, data: dict[str, Any]) -> str:
    """Store ``data`` for the session; the token that opens it (URL-safe, 192 random bits)."""
    token = secrets.token_urlsafe(24)
    now = utcnow()
    # No session outlives ABSOLUTE_TIMEOUT: what older ones kept can never be opened again.
    await db.execute(delete(ConsoleResult).where(ConsoleResult.created_at <= now - ABSOLUTE_TIMEOUT))
    db.add(
        ConsoleResult(
            token_hash=_hash(token),
            session_hash=session_hash,
            kind=kind,
            payload=fernet.encrypt(orjson.dumps(data)).decode("ascii"),
            created_at=now,
        )
    )
    await db.flush()
    return token


async def read(
    db: AsyncSession, fernet: Fernet, session_hash: str, kind: str, token: str
) -> dict[str, Any] | None:
    """What ``keep`` stored under ``token`` for this session and kind; None otherwise."""
    if not TOKEN.fullmatch(token):
        return None
    row = await db.scalar(select(ConsoleResult).where(ConsoleResult.token_hash == _hash(token)))
    if row is None or row.session_hash != session_hash or row.kind != kind:
        return None
    try:
        data = orjson.loads(fernet.decrypt(row.payload.encode("ascii")))
    except (InvalidToken, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
