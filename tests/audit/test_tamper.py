"""The tamper suite: edit the stored events and checkpoints directly, as someone holding the database would,
and expect the verifier to say exactly what happened and where (docs/audit-format.md, section 6).

Every case runs on SQLite and on PostgreSQL. The log: 35 events, a signed checkpoint at seq 30 (in the
database and as a file). The attacker switches the append-only triggers off first (they are the owner) and,
where it helps them hide, moves the head row along.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError

from app.audit.chain import event_hash
from app.audit.checkpoints import ANCHOR_FILE, latest_checkpoint_file, sign_checkpoint
from app.audit.integrity import verify_chain
from app.audit.models import AuditChainHead, AuditCheckpointRow, AuditEventRow
from app.jws import SigningKey
from tests.audit.conftest import Log

CHECKPOINT_SEQ = 30
EVENTS = 35


@pytest.fixture
async def damaged(log: Log) -> Log:
    """The log before the attack: intact, checkpointed at seq 30, five events after it."""
    await log.write(CHECKPOINT_SEQ)
    await log.checkpoints.make()
    await log.write(EVENTS - CHECKPOINT_SEQ)
    return log


def expect(report: Any, problem: str, first_bad_seq: int | None) -> None:
    assert (report.ok, report.problem, report.first_bad_seq) == (False, problem, first_bad_seq), report


async def move_head(log: Log, seq: int, hash_: str) -> None:
    async with log.engine.begin() as connection:
        await connection.execute(update(AuditChainHead).values(seq=seq, hash=hash_))


async def test_an_untouched_log_verifies(damaged: Log) -> None:
    report = await damaged.verify()
    assert (report.ok, report.checked, report.first_bad_seq, report.problem) == (True, EVENTS, None, None)
    assert report.checkpoint_seq == CHECKPOINT_SEQ
    # Read in small batches, the answer is the same (the verifier streams; its memory stays flat).
    streamed = await verify_chain(damaged.sessionmaker, key=damaged.checkpoints.key, batch_size=4)
    assert (streamed.ok, streamed.checked) == (True, EVENTS)


async def test_the_database_refuses_updates_and_deletes(damaged: Log) -> None:
    for statement in (
        "UPDATE audit_events SET outcome = 'denied' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 35",
        "UPDATE audit_checkpoints SET seq = 31",
        "DELETE FROM audit_checkpoints",
        *(["TRUNCATE audit_events", "TRUNCATE audit_checkpoints"] if damaged.dialect == "postgresql" else []),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with damaged.engine.begin() as connection:
                await connection.exec_driver_sql(statement)
    assert (await damaged.verify()).ok


async def test_a_changed_field_is_modified(damaged: Log) -> None:
    await damaged.tamper("UPDATE audit_events SET outcome = 'denied', reason = 'out_of_scope' WHERE seq = 12")
    expect(await damaged.verify(), "modified", 12)


async def test_a_changed_field_with_its_hash_recomputed_is_modified(damaged: Log) -> None:
    event = (await damaged.stored())[11]
    event.update(fields=["full_name"], sensitive_fields=[])  # hide that ethnicity was released
    new_hash = event_hash(event)
    async with damaged.owner() as connection:
        await connection.execute(
            update(AuditEventRow)
            .where(AuditEventRow.seq == 12)
            .values(fields=["full_name"], sensitive_fields=[], hash=new_hash)
        )
    report = await damaged.verify()
    expect(report, "modified", 12)
    assert report.checked == 11


async def test_an_event_deleted_in_the_middle_is_deleted(damaged: Log) -> None:
    await damaged.tamper("DELETE FROM audit_events WHERE seq = 17")
    report = await damaged.verify()
    expect(report, "deleted", 17)
    assert report.checked == 16


async def test_an_event_deleted_and_the_rest_renumbered_is_deleted(damaged: Log) -> None:
    rows = await damaged.stored()
    await damaged.tamper(
        "DELETE FROM audit_events WHERE seq = 17",
        "UPDATE audit_events SET seq = -seq WHERE seq > 17",
        "UPDATE audit_events SET seq = -seq - 1 WHERE seq < 0",
    )
    await move_head(damaged, EVENTS - 1, rows[-1]["hash"])
    expect(await damaged.verify(), "deleted", 17)


async def test_two_swapped_events_are_reordered(damaged: Log) -> None:
    await damaged.tamper(
        "UPDATE audit_events SET seq = -1 WHERE seq = 20",
        "UPDATE audit_events SET seq = 20 WHERE seq = 21",
        "UPDATE audit_events SET seq = 21 WHERE seq = -1",
    )
    expect(await damaged.verify(), "reordered", 20)


async def test_an_event_moved_to_the_end_is_reordered(damaged: Log) -> None:
    await damaged.tamper("UPDATE audit_events SET seq = 36 WHERE seq = 8")  # past the last, 35
    expect(await damaged.verify(), "reordered", 8)


def forged(after: dict[str, Any], seq: int) -> dict[str, Any]:
    """A well-formed event that says a denied read happened, hashed and linked to ``after``."""
    event = {
        **after,
        "event_id": "f0f0f0f0-0000-4000-8000-000000000000",
        "seq": seq,
        "request_id": "forged",
        "outcome": "denied",
        "status_code": 404,
        "reason": "out_of_scope",
        "fields": [],
        "sensitive_fields": [],
        "prev_hash": after["hash"],
    }
    event["hash"] = event_hash(event)
    return event


async def test_a_forged_event_put_in_the_middle_is_inserted(damaged: Log) -> None:
    rows = await damaged.stored()
    fake = forged(rows[23], 25)  # linked to event 24, so it passes itself; event 25 no longer follows it
    async with damaged.owner() as connection:
        # The unique index on prev_hash refuses a second event after 24: the attacker drops it too.
        await connection.exec_driver_sql("DROP INDEX ix_audit_events_prev_hash")
        await connection.exec_driver_sql("UPDATE audit_events SET seq = -seq WHERE seq >= 25")
        await connection.exec_driver_sql("UPDATE audit_events SET seq = -seq + 1 WHERE seq < 0")
        await connection.execute(insert(AuditEventRow).values(fake))
    await move_head(damaged, EVENTS + 1, rows[-1]["hash"])
    report = await damaged.verify()
    expect(report, "inserted", 25)
    assert report.checked == 24


async def test_a_forged_event_with_a_made_up_link_is_inserted(damaged: Log) -> None:
    rows = await damaged.stored()
    fake = forged(rows[-1], EVENTS + 1)
    fake["prev_hash"] = "ab" * 32
    fake["hash"] = event_hash(fake)
    async with damaged.owner() as connection:
        await connection.execute(insert(AuditEventRow).values(fake))
    await move_head(damaged, EVENTS + 1, fake["hash"])
    expect(await damaged.verify(), "inserted", EVENTS + 1)


async def test_a_forged_event_appended_behind_the_head_is_inserted(damaged: Log) -> None:
    fake = forged((await damaged.stored())[-1], EVENTS + 1)  # perfectly chained; the head row not moved
    async with damaged.owner() as connection:
        await connection.execute(insert(AuditEventRow).values(fake))
    expect(await damaged.verify(), "inserted", EVENTS + 1)


async def test_a_tail_cut_back_before_the_checkpoint_is_truncated(damaged: Log) -> None:
    await damaged.write(5)  # 40 events; a checkpoint at 40
    await damaged.checkpoints.make()
    rows = await damaged.stored()
    await damaged.tamper("DELETE FROM audit_events WHERE seq > 36")
    await move_head(damaged, 36, rows[35]["hash"])  # the attacker hides the cut from the head row too
    report = await damaged.verify()
    expect(report, "truncated", 37)
    assert (report.checked, report.checkpoint_seq) == (36, 40)


async def test_a_tail_cut_after_the_checkpoint_shows_only_in_the_head(damaged: Log) -> None:
    await damaged.tamper("DELETE FROM audit_events WHERE seq > 32")
    expect(await damaged.verify(), "truncated", 33)  # the head row still says 35


async def test_a_chain_recomputed_without_the_key_is_rewritten(damaged: Log) -> None:
    rows = await damaged.stored()
    rows[9].update(outcome="denied", reason="out_of_scope", fields=[], sensitive_fields=[])
    for index in range(9, len(rows)):
        if index > 9:
            rows[index]["prev_hash"] = rows[index - 1]["hash"]
        rows[index]["hash"] = event_hash(rows[index])
    async with damaged.owner() as connection:
        for row in rows[9:]:
            await connection.execute(
                update(AuditEventRow)
                .where(AuditEventRow.seq == row["seq"])
                .values({k: v for k, v in row.items() if k != "seq"})
            )
    await move_head(damaged, EVENTS, rows[-1]["hash"])
    report = await damaged.verify()
    expect(report, "rewritten", CHECKPOINT_SEQ)
    assert report.checkpoint_seq == CHECKPOINT_SEQ


async def test_an_altered_checkpoint_row_is_a_bad_signature(damaged: Log) -> None:
    await damaged.tamper("UPDATE audit_checkpoints SET seq = 20")  # "the log was checkpointed earlier"
    report = await damaged.verify()
    expect(report, "bad_checkpoint_signature", None)
    assert report.checkpoint_seq == 20


async def test_a_checkpoint_row_signed_with_another_key_is_a_bad_signature(damaged: Log) -> None:
    rows = await damaged.stored()
    other, _pem = SigningKey.generate()
    head = await _head(damaged)
    fake = sign_checkpoint(type(head)(head.log_id, 33, rows[32]["hash"]), other, rows[32]["at"])
    async with damaged.engine.begin() as connection:  # inserting needs no owner rights
        await connection.execute(
            insert(AuditCheckpointRow).values(
                log_id=fake.log_id,
                seq=fake.seq,
                hash=fake.hash,
                at=rows[32]["at"],
                kid=fake.kid,
                jws=fake.jws,
            )
        )
    expect(await damaged.verify(), "bad_checkpoint_signature", None)


async def test_an_altered_checkpoint_file_is_a_bad_signature(damaged: Log) -> None:
    path = latest_checkpoint_file(damaged.directory)
    assert path is not None
    document = json.loads(path.read_text())
    document["hash"] = "0" * 64
    path.write_text(json.dumps(document))
    report = await damaged.verify()
    expect(report, "bad_checkpoint_signature", None)
    assert report.detail is not None
    assert path.name in report.detail


async def test_a_checkpoint_given_on_the_command_line_is_checked_too(damaged: Log) -> None:
    path = latest_checkpoint_file(damaged.directory)
    assert path is not None
    assert (await damaged.verify(checkpoint_file=path)).ok
    rows = await damaged.stored()
    await damaged.tamper("DELETE FROM audit_events WHERE seq > 25", "DELETE FROM audit_checkpoints")
    await move_head(damaged, 25, rows[24]["hash"])
    expect(await damaged.verify(checkpoint_file=path), "truncated", 26)


async def test_an_archived_log_verifies_from_its_anchor_and_only_from_it(damaged: Log) -> None:
    await damaged.tamper("DELETE FROM audit_events WHERE seq <= 30")  # up to the checkpoint
    expect(await damaged.verify(), "deleted", 1)  # an unannounced removal

    anchor = latest_checkpoint_file(damaged.directory)
    assert anchor is not None
    (damaged.directory / ANCHOR_FILE).write_bytes(anchor.read_bytes())
    report = await damaged.verify()
    assert (report.ok, report.checked, report.checkpoint_seq) == (True, EVENTS - CHECKPOINT_SEQ, 30), report

    await damaged.write(3)  # the log goes on after archiving
    assert (await damaged.verify()).ok
    await damaged.tamper("DELETE FROM audit_events WHERE seq = 31")
    expect(await damaged.verify(), "deleted", 31)


async def _head(log: Log) -> Any:
    from app.audit.chain import read_head

    async with log.sessionmaker() as session:
        return await read_head(session)
