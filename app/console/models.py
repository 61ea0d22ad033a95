"""The console's own tables (docs/contract.md, section 15): results kept behind opaque tokens, and the
dashboard's per-day access counts.

**Results.** A search or report that names a resident is POSTed; what the result page needs to show it again (the
personal ID among it) is kept here, encrypted with ``DANCU_KEYS__ENCRYPTION_KEY`` and bound to the session
that asked, so the page's URL carries only a random token. Ending the session removes its results (foreign
key, ``ON DELETE CASCADE``); the row stores a SHA-256 of the token, never the token.

**Access days.** The dashboard counts accesses over 30 Vietnam days. Scanning a month of the audit log on
every page view grows with the log (a million events is hundreds of milliseconds), so the accesses are counted
once, incrementally, into ``console_access_days``: one row per (day, client, outcome), and one row (``day``
``seq``, ``client_id`` and ``outcome`` ``*``) whose ``count`` is the ``seq`` of the last event counted. Each
dashboard adds the events after it (an index range on ``seq``; the head's ``seq`` bounds what is committed).
The rows are a cache of the log: delete them all and the next dashboard counts the window again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class ConsoleResult(Base):
    __tablename__ = "console_results"
    __table_args__ = (Index("ix_console_results_session_hash", "session_hash"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_hash: Mapped[str] = mapped_column(
        String(64), ForeignKey("operator_sessions.token_hash", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    """Which page the result belongs to (``report``, ``audit``...): a token opens only its own kind."""
    payload: Mapped[str] = mapped_column(Text)
    """The page's inputs as JSON, Fernet-encrypted."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


DAY_COUNTED = "*"
"""``client_id`` and ``outcome`` of the row that holds the last counted ``seq``."""
WATERMARK_DAY = "seq"
"""``day`` of that row."""
NO_CLIENT = ""
"""``client_id`` of events without a client."""


class AccessDay(Base):
    __tablename__ = "console_access_days"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    """``YYYY-MM-DD`` in Vietnam time."""
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime())
