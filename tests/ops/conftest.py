"""Operations tests run the gateway the way the citizen suite does: its fixtures, re-exported here."""

from __future__ import annotations

from tests.citizens.conftest import (
    gateway,
    live_mock,
    migrated_sqlite,
    mock_db,
    sqlite_gateway,
)

__all__ = ["gateway", "live_mock", "migrated_sqlite", "mock_db", "sqlite_gateway"]
