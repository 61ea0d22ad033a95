"""The ids the gateway makes: valid UUIDs of the version they claim, and time-ordered where promised."""

from __future__ import annotations

import time
import uuid

from app.db import new_time_uuid, new_uuid


def test_random_ids_are_version_4_uuids_in_the_usual_text() -> None:
    made = {new_uuid() for _ in range(2000)}
    assert len(made) == 2000
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text


def test_audit_event_ids_are_version_7_and_ordered_by_millisecond() -> None:
    first = new_time_uuid()
    time.sleep(0.002)
    second = new_time_uuid()
    for text in (first, second):
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == text
    assert first < second  # a later id sorts after: new keys go to the end of the index
    stamp = int(uuid.UUID(second).hex[:12], 16)
    assert abs(stamp - time.time_ns() // 1_000_000) < 5_000
