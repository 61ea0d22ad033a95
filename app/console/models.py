"""The console's own table: results kept behind opaque tokens (docs/contract.md, section 15).

A search or report that names a resident is POSTed; what the result page needs to show it again (the
personal ID among it) is kept here, encrypted with ``DANCU_KEYS__ENCRYPTION_KEY`` and bound to the session
that asked, so the page's URL carries only a random token. Ending the session removes its results (foreign
key, ``ON DELETE CASCADE``); the row stores a SHA-256 of the token, never the token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
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
